package topology

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
)

// A server in a child process serves JetStream on loopback, keeps its store
// and ports across a restart (a client reconnects by itself and reads what
// it stored before), reports its traffic in /varz, and is gone after Stop.
func TestProcessServer_StoreSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // hang guard
	defer cancel()
	p, err := StartProcess(ctx, ProcessConfig{Bin: natsServerBinary(t), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if p.PID() == 0 || !p.Running() {
		t.Fatal("started server not running")
	}
	nc, err := nats.Connect(p.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "proc", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	v, err := p.Varz(ctx)
	if err != nil || v.Connections != 1 || v.InBytes == 0 {
		t.Fatalf("varz %+v (%v): want our one connection and its bytes", v, err)
	}
	pid := p.PID()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if p.PID() == pid {
		t.Fatal("restart kept the same process")
	}
	// The client reconnects by itself; read until it has, a wrong value at once.
	err = backoff.Retry(ctx, backoff.New(20*time.Millisecond, time.Second), func(ctx context.Context) error {
		e, err := kv.Get(ctx, "k")
		if err != nil {
			return err
		}
		if string(e.Value()) != "before" {
			return backoff.Permanent(fmt.Errorf("after the restart k = %q", e.Value()))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("k after the restart: %v", err)
	}
	p.Stop()
	if p.Running() || p.PID() != 0 {
		t.Fatal("server running after Stop")
	}
	if _, err := p.Varz(ctx); err == nil {
		t.Fatal("varz answered after Stop")
	}
}

// A config the server refuses is an error with the server's own words, at
// once rather than after the health wait.
func TestStartProcess_BadBinaryOrConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := StartProcess(ctx, ProcessConfig{Dir: t.TempDir()}); err == nil {
		t.Fatal("no binary accepted")
	}
	if _, err := StartProcess(ctx, ProcessConfig{Bin: natsServerBinary(t), Dir: t.TempDir(), Name: "bad name"}); err == nil {
		t.Fatal("bad name accepted")
	}
	_, err := StartProcess(ctx, ProcessConfig{Bin: "/bin/false", Dir: t.TempDir()})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a process that exits at once: %v, want an exit error", err)
	}
}
