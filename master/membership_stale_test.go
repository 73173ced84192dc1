package master

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// beatEntry is one put to master-heartbeat as the watch delivers it.
type beatEntry struct {
	key   string
	value []byte
	at    time.Time
}

func (e beatEntry) Key() string                     { return e.key }
func (e beatEntry) Value() []byte                   { return e.value }
func (e beatEntry) Revision() uint64                { return 1 }
func (e beatEntry) Created() time.Time              { return e.at }
func (e beatEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

func heartbeat(t *testing.T, id string) beatEntry {
	t.Helper()
	b, err := json.Marshal(wire.MasterRecord{ID: id, Beat: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return beatEntry{key: id, value: b, at: time.Now()}
}

// After our own beats stopped coming back (the server restarted under both
// masters), the first echo of our own beat does not make us take the other
// master for dead: we heard nobody while cut off, so its silence proves
// nothing and it keeps its partitions for a full DeadAfter. Without that,
// the master whose watch recovered first took every partition while the
// other still held its own (TestMasters_ServerRestart_NoSplitBrainJobsFlow
// saw partitions owned twice on a loaded machine). A master that then stays
// silent is still dropped, DeadAfter after the recovery.
func TestMembership_OwnEchoAfterStale_OthersGetFullDeadAfter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Partitions = "a", 16
	cfg.Heartbeat, cfg.DeadAfter = config.Dur(200*time.Millisecond), config.Dur(600*time.Millisecond)
	m := &Master{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m.met = newMasterMetrics(metrics.NewSet(), m)
	ms := newMembership(m)
	ms.notify = func(gained, lost []int) {}
	cutOff := time.Now().Add(-5 * time.Second) // both last heard 5 s ago, long past DeadAfter
	ms.seen["a"], ms.seen["b"], ms.lastEcho = cutOff, cutOff, cutOff
	ms.table = shard.NewTable(cfg.Partitions, []string{"a", "b"})

	ms.handle(heartbeat(t, "a")) // the watch is back: our own beat echoes
	recovered := time.Now()
	ms.recompute("expiry")
	if got := ms.table.Members(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members right after our own echo came back: %v, want [a b] (b dropped for a silence we could not hear)", got)
	}

	// b never beats again: it goes DeadAfter after the recovery, not before.
	for {
		ms.recompute("expiry")
		members := ms.table.Members()
		if slices.Equal(members, []string{"a"}) {
			if since := time.Since(recovered); since < cfg.DeadAfter.D() {
				t.Fatalf("b dropped %v after the recovery, before DeadAfter %v", since, cfg.DeadAfter.D())
			}
			return
		}
		if time.Since(recovered) > 30*time.Second {
			t.Fatalf("b still a member 30 s after the recovery: %v", members)
		}
		// Keep our own beat fresh so the watch does not go stale again.
		ms.handle(heartbeat(t, "a"))
		<-time.After(10 * time.Millisecond)
	}
}
