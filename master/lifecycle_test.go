package master_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
)

// TestMaster_Kill_IsACrashNotAStop: Kill ends Run without the clean
// stop's hand-over, so the master's heartbeat record stays until it
// expires (the others wait dead_after), while a clean stop deletes it at
// once (the others take its partitions immediately).
func TestMaster_Kill_IsACrashNotAStop(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	killed := mastertest.Start(t, mastertest.Config("m-killed", url))
	stopped := mastertest.Start(t, mastertest.Config("m-stopped", url))
	killed.Kill()
	select {
	case <-killed.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Kill")
	}
	if err := stopped.Stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := testkit.JetStream(t, url).KeyValue(ctx, names.BucketMasterHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, names.HeartbeatKey("m-killed")); err != nil {
		t.Fatalf("the killed master's heartbeat: %v; a crash leaves it to expire", err)
	}
	if _, err := kv.Get(ctx, names.HeartbeatKey("m-stopped")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the stopped master's heartbeat: %v; a clean stop deletes it", err)
	}
}

// TestMaster_WaitReady: WaitReady returns once the master has joined, and
// refuses at once for a master that stopped before it was ready.
func TestMaster_WaitReady(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	m := mastertest.Start(t, mastertest.Config("m1", url))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatalf("a ready master: %v", err)
	}
	cfg := mastertest.Config("m2", "nats://127.0.0.1:1") // nothing listens there
	never, err := master.New(cfg, master.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- never.Run(runCtx) }()
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if err := never.WaitReady(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a master that cannot connect: WaitReady = %v, want the deadline", err)
	}
	stop()
	<-done
	if err := never.WaitReady(ctx); err == nil {
		t.Fatal("WaitReady on a stopped master returned nil")
	}
}
