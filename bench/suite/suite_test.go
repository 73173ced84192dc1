package suite

import (
	"bytes"
	"slices"
	"strings"
	"testing"
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
