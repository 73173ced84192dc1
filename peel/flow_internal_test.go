package peel

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/topology"
)

// A fact publish nobody acknowledges (the stream is behind) widens the
// spread of the peel's republishes; once the store takes its facts the
// window narrows again.
func TestPeel_UnansweredFacts_WidenSpread(t *testing.T) {
	s, nc := serverConn(t)
	// A subscriber that never answers stands for a stream too busy to ack.
	silent, err := nc.SubscribeSync(names.KVSubjectPrefix(names.BucketFacts) + ">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	cfg := DefaultConfig()
	cfg.ID, cfg.HTTP, cfg.DataDir = "spread1", "", t.TempDir()
	cfg.Insecure = true // an open test server
	cfg.NATS.URL = config.URLs{s.ClientURL()}
	p, err := New(cfg, Options{NoHTTP: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // hang guard
	defer cancel()
	exited := make(chan error, 1)
	go func() { exited <- p.Run(ctx) }()
	defer func() { cancel(); <-exited }()
	for p.spread.Window() <= reconnectFactsSpread {
		if ctx.Err() != nil {
			t.Fatalf("spread window still %v after unanswered fact publishes", p.spread.Window())
		}
		time.Sleep(20 * time.Millisecond)
	}
	widened := p.spread.Window()
	silent.Unsubscribe()
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketFacts})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := kv.Get(ctx, "spread1"); err == nil && p.spread.Window() < widened {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("facts not stored, or spread window %v not narrowed from %v", p.spread.Window(), widened)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverConn starts a server and connects to it.
func serverConn(t *testing.T) (*topology.Server, *nats.Conn) {
	t.Helper()
	s, err := topology.Single(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}
