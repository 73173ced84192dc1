package master

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/wire"
)

// BenchmarkReturnIntake is a master's own work per return, besides the
// delivery: the body's identity check and the count in a part's tracker
// (one part of 15,625 peels, a 1M fleet over 64 partitions).
func BenchmarkReturnIntake(b *testing.B) {
	const n = 15_625
	ids := make([]string, n)
	bodies := make([][]byte, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("sim-%07d.dc1.example.com", i)
		bodies[i], _ = json.Marshal(wire.Return{JID: "2026120204484674658893", Peel: ids[i], Function: "test.ping", Success: true,
			Result: json.RawMessage("true"), Started: time.Now().UTC(), Duration: wire.Duration(time.Millisecond)})
	}
	b.Run("identity", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if returnIdentity(bodies[i%n], "2026120204484674658893", ids[i%n]) != "" {
				b.Fatal("refused")
			}
			i++
		}
	})
	b.Run("record", func(b *testing.B) {
		tr := newTracker(ids, 1)
		i := 0
		for b.Loop() {
			if i%n == 0 {
				tr = newTracker(ids, 1)
			}
			tr.record(ids[i%n], true)
			i++
		}
	})
}
