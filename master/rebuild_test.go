package master_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// Rebuild without backup: the store is wiped under a running fleet. The
// master notices and stops; a restarted master bootstraps the empty store;
// the peels put their facts back within seconds, not a fact interval, and
// jobs run again. Only history is lost.
func TestRebuild_WipedStore_PeelsRepublishInSeconds(t *testing.T) {
	dir := t.TempDir()
	s, err := topology.Single(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	url := s.ClientURL()
	h := mastertest.Start(t, mastertest.Config("m1", url))
	for _, id := range []string{"a.example.com", "b.example.com"} {
		peeltest.Start(t, peeltest.Config(t, id, url)) // facts_interval is 5m
	}
	if code, out, _ := clitest.Zester(t, url, "run", "*", "test.ping"); code != 0 {
		t.Fatalf("ping before: %d %s", code, out)
	}
	s.Shutdown()
	if err := os.RemoveAll(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	wiped := time.Now()
	select {
	case <-h.Exited():
		if err := h.Err(); err == nil || !strings.Contains(err.Error(), "wiped") {
			t.Fatalf("master stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("master did not notice the wiped store")
	}
	mastertest.Start(t, mastertest.Config("m1", url))
	nc, _ := nats.Connect(url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	back := testkit.Eventually(t, "facts back", 30*time.Second, func() bool {
		_, e1 := kv.Get(context.Background(), "a.example.com")
		_, e2 := kv.Get(context.Background(), "b.example.com")
		return e1 == nil && e2 == nil
	})
	t.Logf("REBUILD: both peels' facts back %s after the master bootstrapped (%s after the wipe)", back, time.Since(wiped))
	testkit.Eventually(t, "ping after rebuild", 60*time.Second, func() bool {
		code, _, _ := clitest.Zester(t, url, "run", "--timeout", "3s", "*", "test.ping")
		return code == 0
	})
	if code, out, _ := clitest.Zester(t, url, "job", "list"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("history after rebuild should hold only the new job:\n%s", out)
	}
}
