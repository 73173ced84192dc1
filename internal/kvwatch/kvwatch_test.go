package kvwatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/testkit"
)

func next(t *testing.T, w *kvwatch.Watcher) *kvwatch.Entry {
	t.Helper()
	select {
	case e := <-w.Updates():
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no entry within 10s")
		return nil
	}
}

// Current values, then the end marker, then changes; after a server restart
// the watch goes on from where it was, without a gap or a replay.
func TestWatch_InitialMarkerUpdatesAndRestart(t *testing.T) {
	s, js, kv := watched(t, jetstream.KeyValueConfig{Bucket: "w", History: 5})
	ctx := context.Background()
	kv.Put(ctx, "a", []byte("1"))
	kv.Put(ctx, "a", []byte("2")) // only the last value of a key is current
	kv.Put(ctx, "b.c", []byte("3"))

	w, err := kvwatch.Watch(ctx, js, "w", kvwatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	got := map[string]string{}
	for e := next(t, w); e != nil; e = next(t, w) {
		got[e.Key()] = string(e.Value())
	}
	if len(got) != 2 || got["a"] != "2" || got["b.c"] != "3" {
		t.Fatalf("initial values %v", got)
	}
	kv.Delete(ctx, "a")
	if e := next(t, w); e.Key() != "a" || e.Operation() != jetstream.KeyValueDelete {
		t.Fatalf("delete: %s %v", e.Key(), e.Operation())
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 30*time.Second, func() error {
		_, err := kv.Put(ctx, "d", []byte("4"))
		return err
	})
	start := time.Now()
	e := next(t, w)
	if e.Key() != "d" || string(e.Value()) != "4" {
		t.Fatalf("after restart got %s=%s, want d=4 (no replay, no gap)", e.Key(), e.Value())
	}
	t.Logf("first change after a server restart delivered %s after the write", time.Since(start))

	// UpdatesOnly: the marker at once, then only new changes.
	u, err := kvwatch.Watch(ctx, js, "w", kvwatch.Options{UpdatesOnly: true, Filters: []string{"x.>"}})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	if e := next(t, u); e != nil {
		t.Fatalf("want the marker first, got %s", e.Key())
	}
	kv.Put(ctx, "d", []byte("5"))
	kv.Put(ctx, "x.y", []byte("6"))
	if e := next(t, u); e.Key() != "x.y" {
		t.Fatalf("filter: got %s", e.Key())
	}
}
