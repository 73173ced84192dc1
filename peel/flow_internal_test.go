package peel

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
)

// A fact publish nobody acknowledges (the stream is behind) widens the
// spread of the peel's republishes; once the store takes its facts the
// window narrows again.
func TestPeel_UnansweredFacts_WidenSpread(t *testing.T) {
	s := testkit.Server(t)
	nc := testkit.Connect(t, s.ClientURL())
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
	testkit.Eventually(t, "the spread window widened by unanswered fact publishes", 60*time.Second, func() bool {
		return p.spread.Window() > reconnectFactsSpread
	})
	widened, failed := p.spread.Window(), p.met.factErrors.Get()
	silent.Unsubscribe()
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketFacts})
	if err != nil {
		t.Fatal(err)
	}
	// A publish already on its way to the silent subscriber may still time
	// out and widen the window once more per failure; the window before the
	// success is then at most widened doubled per failure since (capped),
	// and the success halves it. A hang guard past the widest draw (2 min).
	testkit.Eventually(t, "facts stored and the spread window narrowed again", 4*time.Minute, func() bool {
		_, err := kv.Get(ctx, "spread1")
		before := min(widened<<(p.met.factErrors.Get()-failed), reconnectFactsMaxSpread)
		return err == nil && p.spread.Window() < before
	})
}
