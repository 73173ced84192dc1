package simfleet

import (
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
)

func TestParseDist(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind string
		zero bool
	}{
		{"0", "fixed", true}, {"250ms", "fixed", false}, {"fixed:1s", "fixed", false},
		{"uniform:100ms-2s", "uniform", false}, {"uniform:0-0", "uniform", true},
		{"lognormal:50ms,0.8", "lognormal", false}, {"lognormal:50ms,0.8,max=5s", "lognormal", false},
	} {
		d, err := ParseDist(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if d.Kind != c.kind || d.Zero() != c.zero {
			t.Errorf("%q: kind %s zero %v", c.in, d.Kind, d.Zero())
		}
		back, err := ParseDist(d.String())
		if err != nil || back.String() != d.String() {
			t.Errorf("%q: String %q does not parse back: %v", c.in, d.String(), err)
		}
		for range 100 {
			v := d.Sample()
			if v < 0 || (d.Kind == "uniform" && (v < d.A || v > d.B)) || (d.Max > 0 && v > d.Max) {
				t.Fatalf("%q: sample %s out of range", c.in, v)
			}
		}
	}
	for _, bad := range []string{"x", "uniform:2s-1s", "lognormal:1s", "lognormal:1s,9", "fixed:-1s", "normal:1s"} {
		if _, err := ParseDist(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestPeelIDs(t *testing.T) {
	for _, i := range []int{0, 7, 123, 999_999, 1_234_567} {
		id := PeelID(i)
		if err := names.ValidateID(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !strings.Contains(id, ".") {
			t.Fatalf("%s: want dots", id)
		}
		if got := PeelIndex(id); got != i {
			t.Fatalf("PeelIndex(%s) = %d, want %d", id, got, i)
		}
	}
	if PeelID(123) != "sim-000123.dc1.example.com" {
		t.Fatalf("PeelID(123) = %s", PeelID(123))
	}
	if PeelIndex("web1.example.com") != -1 || PeelIndex("sim-.x") != -1 {
		t.Fatal("peelIndex accepted a foreign id")
	}
}

func TestFleetLayout(t *testing.T) {
	f, err := NewFleet(FleetConfig{Peels: 10_000, Partitions: 64, URLs: []string{"nats://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Conns() != 100 {
		t.Fatalf("conns %d, want 100", f.Conns())
	}
	count := 0
	for _, c := range f.conns {
		for _, cp := range c.parts {
			for _, idx := range cp.peels {
				if shard.Partition(f.peels[idx].id, 64) != cp.p {
					t.Fatalf("peel %s grouped under partition %d", f.peels[idx].id, cp.p)
				}
				count++
			}
		}
		if len(c.parts) > 3 {
			t.Fatalf("connection %d spans %d partitions; grouping by partition should keep it to 1–2", c.idx, len(c.parts))
		}
	}
	if count != 10_000 {
		t.Fatalf("%d peels laid out", count)
	}
	if DefaultConns(250_000) != 1000 || DefaultConns(50) != 1 {
		t.Fatal("DefaultConns")
	}
}
