package simfleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

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

// A peel stopped with Stop says goodbye once and beats no more, while the
// others go on beating (what the master's presence tests rely on).
func TestFleet_Stop_ByeThenSilent(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	nc := testkit.Connect(t, url)
	beats, err := nc.SubscribeSync(names.BeatSubjectAny())
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	f, err := NewFleet(FleetConfig{Peels: 3, Conns: 1, Partitions: 4, URLs: []string{url}, BeatInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.Connect(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// next returns the next beat's peel and whether it was a goodbye.
	next := func() (string, bool) {
		t.Helper()
		m, err := beats.NextMsg(30 * time.Second) // hang guard
		if err != nil {
			t.Fatal(err)
		}
		_, id, b, err := peelproto.ParseBeat(m.Subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return id, b.Bye
	}
	// The beats at connect, one per peel, then the goodbye.
	for range 3 {
		if _, bye := next(); bye {
			t.Fatal("a goodbye before Stop")
		}
	}
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if id, bye := next(); id != f.ID(1) || !bye {
		t.Fatalf("after Stop(1): a beat of %s (bye %v), want the goodbye of %s", id, bye, f.ID(1))
	}
	// A round of beats (a reconnect's or a master's ask) leaves it out. The
	// connection delivers in order, so a sentinel beat published after the
	// round marks its end.
	c := f.Connections()[0]
	c.beatAll()
	c.NC().PublishMsg(peelproto.BeatMsg(0, "sentinel", wire.Beat{Instance: "x"}))
	var round []string
	for id, _ := next(); id != "sentinel"; id, _ = next() {
		round = append(round, id)
	}
	if len(round) != 2 || slices.Contains(round, f.ID(1)) {
		t.Fatalf("beats after Stop(1): %v, want peels 0 and 2 only", round)
	}
	if err := f.Stop(7); err == nil {
		t.Fatal("Stop of a peel the fleet does not have succeeded")
	}
}

func TestInstanceOf_Hex16(t *testing.T) {
	f, err := NewFleet(FleetConfig{Peels: 10, Partitions: 4, URLs: []string{"nats://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	c := f.conns[0]
	for _, base := range []uint64{0, 1, 0xdeadbeef, ^uint64(0)} {
		f.instance = base
		for _, idx := range []int32{0, 7, 1 << 20} {
			if got, want := c.instanceOf(idx), fmt.Sprintf("%016x", base^uint64(idx)); got != want {
				t.Fatalf("instanceOf(%d) with base %x = %s, want %s", idx, base, got, want)
			}
		}
	}
}
