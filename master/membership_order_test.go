package master

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/shard"
)

type ownershipChange struct{ gained, lost []int }

// Two table changes computed one after the other (a master joins, then
// leaves) are announced one at a time and in that order, even when the
// second is computed while the first is still being announced: the
// receivers end up with the partitions of the last table. Before the
// announcements took turns, the second ran at once, concurrently with the
// first, and could finish before it.
func TestMembership_Recompute_AnnouncesChangesInOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Partitions = "a", 16
	// Nobody expires and our own beat never goes stale during the test.
	cfg.Heartbeat, cfg.DeadAfter = config.Dur(time.Hour), config.Dur(2*time.Hour)
	m := &Master{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m.met = newMasterMetrics(metrics.NewSet(), m)
	ms := newMembership(m)
	ms.seen["a"], ms.lastEcho = time.Now(), time.Now()
	ms.table = shard.NewTable(cfg.Partitions, []string{"a"})

	calls := make(chan ownershipChange, 4)
	release := make(chan struct{})
	var n atomic.Int32
	ms.notify = func(gained, lost []int) {
		calls <- ownershipChange{gained, lost}
		if n.Add(1) == 1 {
			<-release // the first announcement is slow
		}
	}

	// b joins: we lose b's partitions.
	ms.mu.Lock()
	ms.seen["b"] = time.Now()
	ms.mu.Unlock()
	go ms.recompute("join b")
	c1 := <-calls
	if len(c1.gained) != 0 || len(c1.lost) == 0 {
		t.Fatalf("join: gained %v lost %v, want only losses", c1.gained, c1.lost)
	}

	// b leaves again while the join is still being announced.
	ms.mu.Lock()
	delete(ms.seen, "b")
	ms.mu.Unlock()
	go ms.recompute("leave b")
	testkit.Eventually(t, "second recompute waiting for the first to be announced", 30*time.Second, func() bool {
		if ms.order.parked() > 0 {
			return true
		}
		select {
		case c := <-calls:
			t.Fatalf("second change (gained %v lost %v) announced while the first was still being announced", c.gained, c.lost)
		default:
		}
		return false
	})
	close(release)
	var c2 ownershipChange
	select {
	case c2 = <-calls:
	case <-time.After(30 * time.Second):
		t.Fatal("second change not announced within 30s of the first finishing")
	}
	if !slices.Equal(c2.gained, c1.lost) || len(c2.lost) != 0 {
		t.Fatalf("leave: gained %v lost %v, want gained %v (what the join took)", c2.gained, c2.lost, c1.lost)
	}
	if got := len(ms.ownedList()); got != cfg.Partitions {
		t.Fatalf("alone again: own %d of %d partitions", got, cfg.Partitions)
	}
}

// turns runs functions in ticket order whatever order their callers arrive in.
func TestTurns_RunInTicketOrder(t *testing.T) {
	var tr turns
	tickets := []uint64{tr.take(), tr.take(), tr.take()}
	got := make(chan uint64, 3)
	done := make(chan struct{})
	// Arrive in reverse order, each once the later ones are parked.
	for i := len(tickets) - 1; i >= 0; i-- {
		go func(tk uint64) {
			tr.run(tk, func() { got <- tk })
			done <- struct{}{}
		}(tickets[i])
		want := len(tickets) - 1 - i
		if i > 0 {
			testkit.Until(t, 30*time.Second, func() error {
				if n := tr.parked(); n < want+1 {
					return fmt.Errorf("%d callers parked, want %d", n, want+1)
				}
				return nil
			})
		}
	}
	for range tickets {
		<-done
	}
	close(got)
	var order []uint64
	for tk := range got {
		order = append(order, tk)
	}
	if !slices.Equal(order, tickets) {
		t.Fatalf("ran in order %v, want %v", order, tickets)
	}
}
