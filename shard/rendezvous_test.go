package shard

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// Balance tolerances: the largest relative deviation |owned − P/N| / (P/N)
// any master may show, per partition count P and number of masters N.
//
// They were set from TestMeasureBalance (SHARD_MEASURE=<sets>): the worst
// deviation seen over 120,000 random member-name sets (20,000 with seed
// (1,2) plus 100,000 with seed (100000,2); names "master-<k>",
// "m<hex>", "zmNN.dcK.example.com", "ip-10-0-a-b"), rounded up by about 10%.
// The observed figures (worst, mean of the per-set worst, [min, max]
// partitions one master owned):
//
//	P=64   N=2  worst ±62.5%  mean ±10.1%  [12, 52]
//	P=64   N=3  worst ±82.8%  mean ±21.4%  [ 6, 39]
//	P=64   N=4  worst ±106%   mean ±29.9%  [ 1, 33]
//	P=64   N=5  worst ±134%   mean ±37.9%  [ 0, 30]
//	P=64   N=6  worst ±144%   mean ±45.3%  [ 0, 26]
//	P=64   N=7  worst ±163%   mean ±51.9%  [ 0, 24]
//	P=64   N=8  worst ±175%   mean ±58.0%  [ 0, 22]
//	P=64   N=9  worst ±209%   mean ±64.3%  [ 0, 22]
//	P=64   N=10 worst ±213%   mean ±69.8%  [ 0, 20]   (ideal 6.4)
//	P=1024 N=2  worst ±14.1%  mean ±2.5%   [440, 584]
//	P=1024 N=3  worst ±20.7%  mean ±5.3%   [274, 412]
//	P=1024 N=4  worst ±28.5%  mean ±7.4%   [197, 329]
//	P=1024 N=5  worst ±30.7%  mean ±9.4%   [142, 266]
//	P=1024 N=6  worst ±33.8%  mean ±11.2%  [113, 227]
//	P=1024 N=7  worst ±38.1%  mean ±12.9%  [ 96, 202]
//	P=1024 N=8  worst ±43.0%  mean ±14.5%  [ 81, 183]
//	P=1024 N=9  worst ±43.3%  mean ±16.0%  [ 69, 163]
//	P=1024 N=10 worst ±49.4%  mean ±17.5%  [ 61, 153]  (ideal 102.4)
//
// This is the spread of a random multinomial split (relative std of one
// share is sqrt((N−1)/P)); weights from SHA-256 instead of FNV-1a+splitmix64
// gave the same figures to within noise. At P=64 with five or more masters
// a master can own no partition at all, so a fleet that runs many masters
// should use more partitions.
var balanceTolerance = map[int][11]float64{
	//      N: 0  1  2     3     4     5     6     7     8     9     10
	64:   {0, 0, 0.70, 0.90, 1.15, 1.45, 1.55, 1.75, 1.90, 2.25, 2.30},
	1024: {0, 0, 0.16, 0.23, 0.32, 0.34, 0.38, 0.42, 0.47, 0.48, 0.55},
}

// meanTolerance bounds the mean, over many member sets, of the per-set worst
// deviation: 1.3 × the measured mean above. A weaker hash that stays under
// the worst case but is lumpier on average fails here.
var meanTolerance = map[int][11]float64{
	64:   {0, 0, 0.13, 0.28, 0.39, 0.49, 0.59, 0.67, 0.75, 0.84, 0.91},
	1024: {0, 0, 0.033, 0.069, 0.096, 0.122, 0.146, 0.168, 0.189, 0.208, 0.228},
}

func sequentialMembers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("master-%d", i+1)
	}
	return out
}

// memberSets returns the fixed member sets the tests use for N masters:
// master-1..N and a number of seeded random sets.
func memberSets(n, random int) [][]string {
	r := rand.New(rand.NewPCG(uint64(n), 99))
	sets := [][]string{sequentialMembers(n)}
	for range random {
		sets = append(sets, randomMembers(r, n))
	}
	return sets
}

func TestAssign_EveryPartitionOneOwner(t *testing.T) {
	for _, p := range []int{64, 1024} {
		for n := 1; n <= 10; n++ {
			for _, ms := range memberSets(n, 20) {
				a := Assign(p, ms)
				tab := NewTable(p, ms)
				if len(a) != p || tab.Partitions() != p {
					t.Fatalf("P=%d %v: %d owners, table %d", p, ms, len(a), tab.Partitions())
				}
				owned := make([]int, p)
				for _, m := range ms {
					got := Owned(p, ms, m)
					if !slices.IsSorted(got) || !slices.Equal(got, tab.Owned(m)) {
						t.Fatalf("Owned(%q) = %v, table %v", m, got, tab.Owned(m))
					}
					for _, q := range got {
						owned[q]++
						if a[q] != m || tab.Owner(q) != m || !tab.Owns(m, q) {
							t.Fatalf("partition %d: Owned(%q) but Assign %q, Owner %q", q, m, a[q], tab.Owner(q))
						}
					}
				}
				for q, c := range owned {
					if c != 1 {
						t.Fatalf("P=%d %v: partition %d has %d owners", p, ms, q, c)
					}
				}
			}
		}
	}
}

func TestAssign_Deterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for n := 1; n <= 10; n++ {
		for _, ms := range memberSets(n, 5) {
			want := Assign(1024, ms)
			for range 5 {
				sh := slices.Clone(ms)
				r.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
				sh = append(sh, sh[r.IntN(len(sh))], "") // duplicates and "" are ignored
				if got := Assign(1024, sh); !maps.Equal(got, want) {
					t.Fatalf("Assign depends on member order: %v vs %v", sh, ms)
				}
				if got := NewTable(1024, sh).Members(); !slices.Equal(got, normalize(ms)) {
					t.Fatalf("Members() = %v", got)
				}
				if m := Moved(NewTable(1024, ms), NewTable(1024, sh)); len(m) != 0 {
					t.Fatalf("Moved between equal sets: %v", m)
				}
			}
		}
	}
}

func TestAssign_Empty(t *testing.T) {
	for _, ms := range [][]string{nil, {}, {""}} {
		if a := Assign(64, ms); a == nil || len(a) != 0 {
			t.Fatalf("Assign(64, %q) = %v, want empty map", ms, a)
		}
		if o := Owned(64, ms, "m"); len(o) != 0 {
			t.Fatalf("Owned = %v", o)
		}
		tab := NewTable(64, ms)
		if tab.Owner(0) != "" || tab.Owns("", 0) || len(tab.Members()) != 0 {
			t.Fatalf("empty table: owner %q members %v", tab.Owner(0), tab.Members())
		}
	}
	if a := Assign(0, []string{"m"}); len(a) != 0 {
		t.Fatalf("Assign(0) = %v", a)
	}
	full := NewTable(8, []string{"m"})
	if got := Moved(nil, full); len(got) != 8 {
		t.Fatalf("Moved(nil, full) = %v", got)
	}
	if got := Moved(full, NewTable(8, nil)); len(got) != 8 {
		t.Fatalf("Moved(full, empty) = %v", got)
	}
	if got := Moved(full, NewTable(10, []string{"m"})); !slices.Equal(got, []int{8, 9}) {
		t.Fatalf("Moved(8 → 10 partitions) = %v", got)
	}
	if full.Owner(-1) != "" || full.Owner(8) != "" || full.Owns("other", 0) || !full.Owns("m", 7) {
		t.Fatal("Owner/Owns out of range")
	}
	if len(Owned(8, []string{"m"}, "stranger")) != 0 {
		t.Fatal("a non-member owns partitions")
	}
}

func TestAssign_Balance(t *testing.T) {
	const sets = 300
	for _, p := range []int{64, 1024} {
		for n := 1; n <= 10; n++ {
			tol, mtol := balanceTolerance[p][n], meanTolerance[p][n]
			var worst, sum float64
			for i, ms := range memberSets(n, sets) {
				dev, lo, hi := spread(NewTable(p, ms), p)
				if dev > tol {
					t.Errorf("P=%d N=%d %v: shares [%d, %d], deviation %.1f%% > %.0f%%", p, n, ms, lo, hi, 100*dev, 100*tol)
				}
				worst = max(worst, dev)
				if i > 0 { // the random sets only
					sum += dev
				}
			}
			mean := sum / sets
			if mean > mtol {
				t.Errorf("P=%d N=%d: mean worst deviation %.1f%% > %.1f%%", p, n, 100*mean, 100*mtol)
			}
			t.Logf("P=%4d N=%2d: worst ±%5.1f%% (limit %3.0f%%), mean ±%5.1f%% (limit %4.1f%%)", p, n, 100*worst, 100*tol, 100*mean, 100*mtol)
		}
	}
}

// TestAssign_Join: when a master joins, the only partitions that move go to
// it; none moves between the masters that were already there.
func TestAssign_Join(t *testing.T) {
	for _, p := range []int{64, 1024} {
		for n := 1; n <= 10; n++ {
			for _, ms := range memberSets(n, 30) {
				old := NewTable(p, ms)
				newcomer := "joiner-" + fmt.Sprint(len(ms))
				cur := NewTable(p, append(slices.Clone(ms), newcomer))
				moved := Moved(old, cur)
				if !slices.Equal(moved, cur.Owned(newcomer)) {
					t.Fatalf("P=%d %v + %q: moved %v, newcomer owns %v", p, ms, newcomer, moved, cur.Owned(newcomer))
				}
				for q := range p {
					if !slices.Contains(moved, q) && old.Owner(q) != cur.Owner(q) {
						t.Fatalf("partition %d changed owner but not in Moved", q)
					}
				}
			}
		}
	}
}

// TestAssign_Leave: when a master leaves, only its partitions move.
func TestAssign_Leave(t *testing.T) {
	for _, p := range []int{64, 1024} {
		for n := 2; n <= 10; n++ {
			for i, ms := range memberSets(n, 30) {
				leaver := ms[i%len(ms)]
				old := NewTable(p, ms)
				rest := slices.DeleteFunc(slices.Clone(ms), func(m string) bool { return m == leaver })
				cur := NewTable(p, rest)
				if moved := Moved(old, cur); !slices.Equal(moved, old.Owned(leaver)) {
					t.Fatalf("P=%d %v − %q: moved %v, leaver owned %v", p, ms, leaver, moved, old.Owned(leaver))
				}
				for _, q := range old.Owned(leaver) {
					if cur.Owner(q) == "" || cur.Owner(q) == leaver {
						t.Fatalf("partition %d left with %q", q, cur.Owner(q))
					}
				}
			}
		}
	}
}

func BenchmarkAssign(b *testing.B) {
	for _, c := range []struct{ p, n int }{{64, 3}, {64, 10}, {1024, 10}} {
		ms := sequentialMembers(c.n)
		b.Run(fmt.Sprintf("P=%d/N=%d", c.p, c.n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Assign(c.p, ms)
			}
		})
		b.Run(fmt.Sprintf("NewTable/P=%d/N=%d", c.p, c.n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NewTable(c.p, ms)
			}
		})
	}
}
