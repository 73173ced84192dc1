package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

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
