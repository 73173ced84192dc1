package peel

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/topology"
)

// basketLookup, what the peel's settings renderer calls for {{ basket }},
// reads another peel's entry through a master, by a compound target.
func TestPeel_BasketLookup(t *testing.T) {
	s, err := topology.Single(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	start := func(id string, basket map[string]BasketSpec) *Peel {
		cfg := DefaultConfig()
		cfg.ID, cfg.HTTP, cfg.DataDir, cfg.Insecure = id, "", t.TempDir(), true
		cfg.NATS.URL = config.URLs{s.ClientURL()}
		cfg.Basket = basket
		p, err := New(cfg, Options{NoHTTP: true, Logger: mastertest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return p
	}
	start("a.example.com", map[string]BasketSpec{"role": {Function: "test.echo", Args: json.RawMessage(`["web"]`)}})
	b := start("b.example.com", nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := b.basketLookup(context.Background(), "G@id:a.example.com or G@id:b.example.com", "role")
		if err == nil && len(got) == 1 && got["a.example.com"] == "web" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("basketLookup: %v %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := b.basketLookup(context.Background(), "G@id:a.example.com", "bad.name"); err == nil {
		t.Fatal("bad name accepted")
	}
}
