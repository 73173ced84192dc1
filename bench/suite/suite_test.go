package suite

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/loadgen"
)

func TestOptions_Cells(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		cells []string // names, in order
		err   string
	}{
		{"quick", []string{"-matrix", "quick"}, []string{"single-1k-1m", "single-1k-3m", "cluster-1k-1m", "cluster-1k-3m", "single-10k-1m", "single-10k-3m", "cluster-10k-1m", "cluster-10k-3m"}, ""},
		{"overrides", []string{"-peels", "2_000,5k", "-masters", "3", "-topologies", "leaf"}, []string{"leaf-2k-3m", "leaf-5k-3m"}, ""},
		{"only", []string{"-only", "cluster-10k-3m,single-1k-1m"}, []string{"single-1k-1m", "cluster-10k-3m"}, ""},
		{"full adds the per-peel cell", []string{"-matrix", "full", "-only", "single-9500-1m-perpeel"}, []string{"single-9500-1m-perpeel"}, ""},
		{"bad matrix", []string{"-matrix", "huge"}, nil, `-matrix "huge": want quick or full`},
		{"bad peels", []string{"-peels", "1k,lots"}, nil, `-peels: "lots"`},
		{"only matches nothing", []string{"-only", "nope"}, nil, `-only "nope" matches no cell`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			o, err := parseFlags(tc.args, &errb)
			if err != nil {
				t.Fatalf("flags: %v (%s)", err, errb.String())
			}
			cells, err := o.cells()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cells {
				got = append(got, c.name())
			}
			if !slices.Equal(got, tc.cells) {
				t.Fatalf("cells = %v, want %v", got, tc.cells)
			}
		})
	}
}

// TestMatrix_Scenarios: three masters add masterkill, a cluster with three
// adds serverkill, and the full matrix's largest single 1-master cell runs
// every scenario (the README's demo at full size).
func TestMatrix_Scenarios(t *testing.T) {
	cells := matrix("full", []int{1000, 100_000}, []int{1, 3}, []string{"single", "cluster"})
	byName := map[string]cell{}
	for _, c := range cells {
		byName[c.name()] = c
	}
	for name, want := range map[string][]string{
		"single-1k-1m":   {"factstorm", "ping", "reconnect"},
		"cluster-1k-3m":  {"factstorm", "ping", "masterkill", "serverkill"},
		"single-100k-3m": {"factstorm", "ping", "masterkill"},
	} {
		if got := byName[name].Scenarios; !slices.Equal(got, want) {
			t.Errorf("%s: scenarios %v, want %v", name, got, want)
		}
	}
	if h := byName["single-100k-1m"]; !h.Headline || len(h.Scenarios) < 5 {
		t.Errorf("the headline cell: %+v", h)
	}
	if c := byName["single-1k-1m"].config(); c.CompressionSamples != -1 || !strings.Contains(c.Command, "--peels 1000 --masters 1 --topology single") {
		t.Errorf("a cell's loadgen config: %+v", c)
	}
}

func TestShownArgs_DropsWhereTheRunWrites(t *testing.T) {
	got := shownArgs([]string{"-matrix", "full", "-out", "/tmp/b.md", "--reports=/tmp/r", "-n", "--cpuprofile", "/tmp/p", "-only", "a,b", "-from=/x"})
	if want := []string{"-matrix", "full", "-n", "-only", "a,b"}; !slices.Equal(got, want) {
		t.Fatalf("shownArgs = %v, want %v", got, want)
	}
}

func TestNum_ThousandsSeparators(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestPage_Write: a cell that failed to run is a row naming its error, a
// cell that ran fills the tables of its scenarios, the headline cell's
// targets are listed, and the command line shown leaves out where the run
// wrote.
func TestPage_Write(t *testing.T) {
	ok := &loadgen.Report{
		Command: "zester-loadgen --peels 10000",
		Setup:   loadgen.Setup{Conns: 100},
		Scenarios: []*loadgen.Scenario{
			{Name: loadgen.ScPing, Status: loadgen.StatusOK, Ping: &loadgen.PingResult{Final: 1.5, AllStored: 1.25, Throughput: 12345, Ratio: 1.5}},
			{Name: loadgen.ScMasterkill, Status: "fail", Failover: &loadgen.FailoverResult{Victim: "m2", Failover: 2, Ping: &loadgen.PingResult{Lost: 3}}},
		},
		Targets: []loadgen.Target{{What: "ping", Goal: "< 5s", Measured: "1.5s", Met: true}, {What: "lost", Goal: "0", Measured: "3", Note: "masterkill"}},
	}
	p := page{kind: "quick", took: 90 * time.Second, args: []string{"-matrix", "quick", "-out", "/tmp/x.md"}, analysis: "## Analysis\n\nhand-written",
		results: []result{
			{cell: cell{Peels: 1000, Masters: 1, Topology: "single"}, err: errors.New("no master ready")},
			{cell: cell{Peels: 10_000, Masters: 3, Topology: "cluster", Headline: true}, rep: ok},
		}}
	var b bytes.Buffer
	p.write(&b)
	out := b.String()
	for _, want := range []string{
		"Written by `go run ./bench -matrix quick` (2 cells;",
		"| 1,000 | single | 1 | | | | | | | | | | | **error: no master ready** |",
		"| 10,000 | cluster | 3 | 100 | 1.50s | 1.25s |",
		"| 12,345 |",
		"| masterkill | 10,000 | cluster | m2 |",
		"| **fail** |",
		"## Targets (the cluster-10k-3m cell: `zester-loadgen --peels 10000`)",
		"| lost | 0 | 3 | **no** (masterkill) |",
		"- cluster-10k-3m: `go run ./cmd/zester-loadgen --peels 10000`",
		"## Analysis\n\nhand-written",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "/tmp/x.md") {
		t.Error("the page shows where the run wrote")
	}
}
