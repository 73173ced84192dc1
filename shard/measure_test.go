package shard

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// randomMembers returns n distinct master names of a random style.
func randomMembers(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	style := r.IntN(4)
	for len(out) < n {
		var s string
		switch style {
		case 0:
			s = fmt.Sprintf("master-%d", r.IntN(1000))
		case 1:
			s = fmt.Sprintf("m%x", r.Uint64())
		case 2:
			s = fmt.Sprintf("zm%02d.dc%d.example.com", r.IntN(100), r.IntN(5))
		default:
			s = fmt.Sprintf("ip-10-0-%d-%d", r.IntN(256), r.IntN(256))
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// spread returns the largest relative deviation of any member's share from
// P/N, and the smallest and largest share.
func spread(t *Table, p int) (dev float64, lo, hi int) {
	ms := t.Members()
	ideal := float64(p) / float64(len(ms))
	lo = p
	for _, m := range ms {
		c := len(t.Owned(m))
		lo, hi = min(lo, c), max(hi, c)
		d := (float64(c) - ideal) / ideal
		if d < 0 {
			d = -d
		}
		dev = max(dev, d)
	}
	return dev, lo, hi
}

// TestMeasureBalance prints the worst balance seen over many random member
// sets; it is how the tolerances in TestAssign_Balance were chosen. Run with
// SHARD_MEASURE=<sets> go test -run TestMeasureBalance -v ./shard/
func TestMeasureBalance(t *testing.T) {
	if os.Getenv("SHARD_MEASURE") == "" {
		t.Skip("set SHARD_MEASURE=<number of member sets> to measure")
	}
	sets, _ := strconv.Atoi(os.Getenv("SHARD_MEASURE"))
	sets = max(sets, 1000)
	r := rand.New(rand.NewPCG(uint64(sets), 2))
	for _, p := range []int{64, 1024} {
		for n := 1; n <= 10; n++ {
			var worst, sum float64
			wlo, whi := p, 0
			for range sets {
				dev, lo, hi := spread(NewTable(p, randomMembers(r, n)), p)
				worst = max(worst, dev)
				sum += dev
				wlo, whi = min(wlo, lo), max(whi, hi)
			}
			t.Logf("P=%4d N=%2d ideal=%7.2f worst=±%5.1f%% mean=±%5.1f%% min=%d max=%d",
				p, n, float64(p)/float64(n), 100*worst, 100*sum/float64(sets), wlo, whi)
		}
	}
}
