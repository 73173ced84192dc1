package testkit

import (
	"encoding/json"
	"testing"

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
