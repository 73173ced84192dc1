package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
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

// StreamInfo is the info of stream (its state: messages, last sequence;
// its cluster), failing the test when the stream does not answer.
func StreamInfo(t testing.TB, js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// LaggingReplica gives kv's bucket a replica that answers direct gets
// (kv.Get) and holds only key held, which must exist: a mirror with
// MirrorDirect filtered to that key joins the bucket's direct-get queue
// group once it has mirrored it, as a stream follower still catching up
// after a restart does, and answers "not found" for every other key. On one
// server the answerer is drawn at random per request, so about half of the
// direct gets miss. It returns once a direct get of key has missed; the
// mirror goes with the server.
func LaggingReplica(t testing.TB, js jetstream.JetStream, kv jetstream.KeyValue, held, key string) {
	t.Helper()
	ctx := context.Background()
	bucket := kv.Bucket()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:         names.KVStream(bucket) + "_lagging",
		Mirror:       &jetstream.StreamSource{Name: names.KVStream(bucket), FilterSubject: names.KVSubjectPrefix(bucket) + held},
		MirrorDirect: true,
	})
	if err != nil {
		t.Fatalf("lagging replica of bucket %s: %v", bucket, err)
	}
	Eventually(t, "a direct get of "+key+" answered by the lagging replica", 30*time.Second, func() bool {
		_, err := kv.Get(ctx, key)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}
