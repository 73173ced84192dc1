package kvwatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/topology"
)

// waitFor waits until cond holds (a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, 30*time.Second, cond)
}

// watched starts a server and creates the bucket cfg on it, through a
// connection that reconnects quickly (the tests restart the server).
func watched(t *testing.T, cfg jetstream.KeyValueConfig) (*topology.Server, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	s := testkit.Server(t)
	js := testkit.JetStream(t, s.ClientURL(), nats.ReconnectWait(50*time.Millisecond))
	kv, err := js.CreateKeyValue(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, js, kv
}

// collect reads n entries, failing on anything but the keys k0…k(n-1) in order.
func expectKeys(t *testing.T, w *kvwatch.Watcher, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		e := next(t, w)
		if e == nil {
			t.Fatalf("entry %d: got the end-of-values marker again", i)
		}
		if want := fmt.Sprintf("k%d", i); e.Key() != want {
			t.Fatalf("entry %d: got key %s, want %s (a gap or a replay)", i, e.Key(), want)
		}
	}
}

// An operator deleting the watch's consumer (`nats consumer rm`) makes the
// watch replace it under a new name and go on after the last entry it
// delivered: nothing skipped, nothing twice. The monitor counts the
// replacement and reports nothing blind afterwards.
func TestWatch_ConsumerDeleted_RecreatedUnderNewNameWithoutGap(t *testing.T) {
	_, js, kv := watched(t, jetstream.KeyValueConfig{Bucket: "w"})
	ctx := context.Background()
	recreated := make(chan kvwatch.Recreated, 16)
	mon := kvwatch.NewMonitor(func(r kvwatch.Recreated) { recreated <- r })
	w, err := kvwatch.Watch(ctx, js, "w", kvwatch.Options{Name: "test", UpdatesOnly: true, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if e := next(t, w); e != nil {
		t.Fatalf("want the marker first, got %s", e.Key())
	}
	for i := 0; i < 3; i++ {
		kv.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
	}
	expectKeys(t, w, 0, 3)
	first := w.Health().Consumer
	if !strings.HasPrefix(first, names.WatchConsumerPrefix+"test_") {
		t.Fatalf("consumer name %q: want the %s prefix and the watch name", first, names.WatchConsumerPrefix)
	}
	if err := js.DeleteConsumer(ctx, names.KVStream("w"), first); err != nil {
		t.Fatal(err)
	}
	// Written while the consumer is gone or being replaced.
	for i := 3; i < 6; i++ {
		kv.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
	}
	expectKeys(t, w, 3, 6)
	var r kvwatch.Recreated
	select {
	case r = <-recreated:
	case <-time.After(30 * time.Second):
		t.Fatal("no replacement reported within 30s")
	}
	h := w.Health()
	if r.Watch != "test" || r.Consumer == first || r.Consumer != h.Consumer {
		t.Fatalf("replacement %+v, health %+v: want watch test, a new consumer name (old %s)", r, h, first)
	}
	if h.Blind || h.Recreations != 1 || len(mon.Blind()) != 0 {
		t.Fatalf("after the replacement: health %+v, blind %v", h, mon.Blind())
	}
	// The replacement is what the server has; the deleted one stays gone.
	if _, err := js.Consumer(ctx, names.KVStream("w"), h.Consumer); err != nil {
		t.Fatalf("new consumer %s: %v", h.Consumer, err)
	}
}

// While the only server is down the watch reports itself blind (the monitor
// names it); once the server is back it is replaced, no longer blind, and
// goes on without a gap or a replay.
func TestWatch_ServerDown_BlindUntilReplaced(t *testing.T) {
	s, js, kv := watched(t, jetstream.KeyValueConfig{Bucket: "w"})
	ctx := context.Background()
	kv.Put(ctx, "k0", []byte("v"))
	mon := kvwatch.NewMonitor(nil)
	w, err := kvwatch.Watch(ctx, js, "w", kvwatch.Options{Name: "down", Heartbeat: 500 * time.Millisecond, Monitor: mon, OnError: func(err error) { t.Log(err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectKeys(t, w, 0, 1)
	if e := next(t, w); e != nil {
		t.Fatalf("want the marker after the current values, got %s", e.Key())
	}
	if b := mon.Blind(); len(b) != 0 {
		t.Fatalf("blind before any fault: %+v", b)
	}
	s.Shutdown()
	waitFor(t, "the monitor reports the watch blind", func() bool {
		b := mon.Blind()
		return len(b) == 1 && b[0].Name == "down" && b[0].Reason != ""
	})
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch replaced and not blind", func() bool {
		h := w.Health()
		return !h.Blind && h.Recreations >= 1
	})
	testkit.Until(t, 30*time.Second, func() error {
		_, err := kv.Put(ctx, "k1", []byte("v"))
		return err
	})
	expectKeys(t, w, 1, 2)
}

// A watch of a bucket that does not exist fails at once and says so, rather
// than retrying: the caller tells the user what is missing.
func TestWatch_NoBucket_FailsAtOnce(t *testing.T) {
	s := testkit.Server(t)
	js := testkit.JetStream(t, s.ClientURL(), nats.ReconnectWait(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
	defer cancel()
	start := time.Now()
	_, err := kvwatch.Watch(ctx, js, "nosuchbucket", kvwatch.Options{})
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("watch of a missing bucket: %v after %s, want stream not found", err, time.Since(start))
	}
	if ctx.Err() != nil {
		t.Fatalf("gave up only at the hang guard (%s)", time.Since(start))
	}
}
