package target

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// benchFleet builds n peels with a spread of ids, facts and addresses.
func benchFleet(n int) []*MapSubject {
	oses := []string{"Debian", "Ubuntu", "CentOS", "Rocky"}
	kinds := []string{"web", "db", "cache", "worker"}
	subs := make([]*MapSubject, n)
	for i := range subs {
		subs[i] = &MapSubject{
			PeelID: fmt.Sprintf("%s%d.dc%d.example.com", kinds[i%4], i, i%3),
			Facts: map[string]any{
				"os":       oses[(i/4)%4],
				"num_cpus": float64(int(2) << (i % 4)),
				"roles":    []any{kinds[i%4], "base"},
			},
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})},
		}
	}
	return subs
}

const benchExpr = `G@os:Debian and ( web* or E@db\d+\. ) and not S@10.1.0.0/16 or L@cache2.dc2.example.com,cache6.dc0.example.com`

// BenchmarkMatch100k matches one compound expression against 100,000
// peels; one op is the whole fleet.
func BenchmarkMatch100k(b *testing.B) {
	subs := benchFleet(100_000)
	e, err := Parse(KindCompound, benchExpr, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = 0
		for _, s := range subs {
			if e.Match(s) {
				n++
			}
		}
	}
	b.ReportMetric(float64(n), "matched")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(subs)), "ns/peel")
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(KindCompound, benchExpr, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPathologicalParse keeps long, awkward expressions cheap to parse.
func TestPathologicalParse(t *testing.T) {
	for _, expr := range []string{
		"P@a" + strings.Repeat(":x", 2000) + strings.Repeat(")", 2000),
		"(E@" + strings.Repeat("(", 3000) + "a" + strings.Repeat(")", 3001),
		"G@a" + strings.Repeat(":[x", 3000),
		strings.Repeat("( ", 3000) + "a" + strings.Repeat(" )", 3000),
		strings.Repeat("not ", 5000) + "a",
		strings.Repeat("a or ", 5000) + "a",
		strings.Repeat("(", 100_000),
		strings.Repeat("not ", 100_000) + "a",
	} {
		start := time.Now()
		e, err := Parse(KindCompound, expr, Options{})
		// A guard against super-linear blow-up (such inputs take minutes
		// then), not a speed test: it stays far above what a loaded machine
		// needs for a linear parse.
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("parsing a %d-byte expression took %v", len(expr), d)
		}
		if err == nil {
			e.Match(&MapSubject{PeelID: "a"})
			_ = e.String()
		}
	}
}
