package peel

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
)

// publishFacts runs from the facts loop and from facts.refresh jobs at the
// same time; the first calls open the bucket handle together. Under -race
// this fails when the handle is set without a lock.
func TestPeel_PublishFacts_Concurrent(t *testing.T) {
	s := testkit.Server(t)
	nc, js := testkit.ConnectJS(t, s.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketFacts}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ID, cfg.HTTP, cfg.DataDir = "race1", "", t.TempDir()
	cfg.Insecure = true // an open test server
	cfg.NATS.URL = config.URLs{s.ClientURL()}
	p, err := New(cfg, Options{NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	p.nc, p.js = nc, js
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.publishFacts(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	kv, _ := js.KeyValue(ctx, names.BucketFacts)
	if e, err := kv.Get(ctx, "race1"); err != nil || e.Revision() == 0 {
		t.Fatalf("facts not stored: %v", err)
	}
}
