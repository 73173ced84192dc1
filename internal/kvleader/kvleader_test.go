package kvleader_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvleader"
	"github.com/zester-io/zester/internal/testkit"
)

// A direct get answered by a replica without the key (testkit.LaggingReplica)
// says "not found"; Read asks the stream leader then, and finds it every
// time. Keys the leader has no value for (never written, deleted) are not
// found; a bucket that does not exist is ErrStreamNotFound.
func TestRead_LaggingReplica_LeaderAnswers(t *testing.T) {
	nc, js := testkit.ConnectJS(t, testkit.Server(t).ClientURL())
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs", History: 2})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "j1", []byte("record"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	testkit.LaggingReplica(t, js, kv, "gone", "j1")

	directMisses := 0
	for i := 0; i < 40; i++ {
		if _, err := kv.Get(ctx, "j1"); errors.Is(err, jetstream.ErrKeyNotFound) {
			directMisses++
		}
		e, err := kvleader.Read(ctx, nc, kv, "j1")
		if err != nil || string(e.Value) != "record" || e.Revision != rev {
			t.Fatalf("Read j1 (try %d): %+v, %v; want record at revision %d", i, e, err, rev)
		}
	}
	t.Logf("direct gets that missed j1: %d of 40; Read found it 40 times", directMisses)
	if directMisses == 0 {
		t.Fatal("the lagging mirror answered no direct get: the test proves nothing")
	}
	for _, key := range []string{"never", "gone"} {
		if e, err := kvleader.Read(ctx, nc, kv, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("Read %s: %+v, %v; want ErrKeyNotFound", key, e, err)
		}
	}
	if _, err := kvleader.Get(ctx, nc, "no-bucket", "j1"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Get from a missing bucket: %v; want ErrStreamNotFound", err)
	}
	if _, err := kvleader.Get(ctx, nc, "jobs", "bad key"); !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Errorf("Get of an invalid key: %v; want ErrInvalidKey", err)
	}
}
