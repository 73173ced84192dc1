package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// JSON is v encoded as JSON, failing the test when it does not encode.
func JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// NewKey makes a key pair with create (nkeys.CreateUser,
// nkeys.CreateCurveKeys, …) and returns it with its public key.
func NewKey(t testing.TB, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

// GetJSON reads key from kv and decodes its value, JSON, into a T: for
// waits that look at a record until it is there and in the awaited state.
func GetJSON[T any](kv jetstream.KeyValue, key string) (T, error) {
	var v T
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

// MustGetJSON is GetJSON failing the test when the record is not there or
// does not decode.
func MustGetJSON[T any](t testing.TB, kv jetstream.KeyValue, key string) T {
	t.Helper()
	v, err := GetJSON[T](kv, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
