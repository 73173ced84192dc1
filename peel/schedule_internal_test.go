package peel

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/state/mod"
)

// 10,000 peels restarted in the same second with a 5-minute splay: their
// first runs spread over the whole splay, no second holding more than twice
// the mean (33 a second), and each peel's phase is its own (the same id and
// entry always land in the same place before the random share).
func TestSplayOffset_SpreadsTenThousandPeelsOverSplay(t *testing.T) {
	const peels, splay = 10000, 5 * time.Minute
	seconds := int(splay / time.Second)
	mean := peels / seconds
	r := rand.New(rand.NewPCG(1, 2))
	perSecond := make([]int, seconds)
	for i := range peels {
		off := splayOffset(fmt.Sprintf("web%05d.example.com", i), "highstate", splay, r.Int64N)
		if off < 0 || off >= splay {
			t.Fatalf("offset %s outside [0, %s)", off, splay)
		}
		perSecond[off/time.Second]++
	}
	most, empty := 0, 0
	for _, n := range perSecond {
		most = max(most, n)
		if n == 0 {
			empty++
		}
	}
	if most > 2*mean {
		t.Errorf("busiest second has %d runs, want at most %d (twice the mean of %d)", most, 2*mean, mean)
	}
	if empty > 0 {
		t.Errorf("%d of %d seconds have no run: the fleet is not spread over the splay", empty, seconds)
	}
	t.Logf("10,000 peels over %s: mean %d a second, busiest second %d", splay, mean, most)

	// The same ids without the random share all at one instant: the
	// phase alone spreads them just as well.
	zero := func(int64) int64 { return 0 }
	clear(perSecond)
	for i := range peels {
		perSecond[splayOffset(fmt.Sprintf("web%05d.example.com", i), "highstate", splay, zero)/time.Second]++
	}
	most = 0
	for _, n := range perSecond {
		most = max(most, n)
	}
	if most > 2*mean {
		t.Errorf("phases alone: busiest second has %d runs, want at most %d", most, 2*mean)
	}
	a := splayOffset("web1.example.com", "highstate", splay, zero)
	if b := splayOffset("web1.example.com", "highstate", splay, zero); a != b {
		t.Errorf("the phase of one peel and entry moved: %s then %s", a, b)
	}
	if b := splayOffset("web1.example.com", "disk", splay, zero); a == b {
		t.Errorf("two entries of one peel share the phase %s", a)
	}
	if got := splayOffset("web1.example.com", "highstate", 0, r.Int64N); got != 0 {
		t.Errorf("no splay: offset %s, want 0", got)
	}
}

// The period after a run: the next one not already past; the periods that
// began while the run went on are skipped and counted, however many.
func TestScheduler_Next_SkipsPeriodsPassedDuringARun(t *testing.T) {
	sc := &scheduler{p: &Peel{cfg: Config{Daemon: config.Daemon{ID: "p1"}}}, randN: func(int64) int64 { return 0 }}
	e := scheduled{name: "e", interval: time.Second}
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		k       int64
		now     time.Duration // since anchor
		wantK   int64
		skipped int
	}{
		{"a short run: the next period", 0, 300 * time.Millisecond, 1, 0},
		{"a run of 2.5 periods", 0, 2500 * time.Millisecond, 3, 2},
		{"ending exactly on a period's start runs it", 0, 2 * time.Second, 2, 1},
		{"a host suspended for a day", 5, 24 * time.Hour, 86400, 86394},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, at, skipped := sc.next(anchor, e, c.k, anchor.Add(c.now))
			if k != c.wantK || skipped != c.skipped || !at.Equal(anchor.Add(time.Duration(c.wantK)*time.Second)) {
				t.Errorf("next(k=%d, now=+%s) = k %d at +%s skipped %d; want k %d skipped %d", c.k, c.now, k, at.Sub(anchor), skipped, c.wantK, c.skipped)
			}
		})
	}
}

func TestStateDrift_ListsChangedStatesInRunOrder(t *testing.T) {
	runs := map[string]mod.Run{
		mod.RunKey("file", "motd", "/etc/motd", "managed"): {Result: mod.Result{Name: "/etc/motd", Changes: map[string]any{"diff": "+hello"}}, SLS: "base", RunNum: 1},
		mod.RunKey("pkg", "curl", "curl", "installed"):     {Result: mod.Result{Name: "curl"}, RunNum: 0},
		mod.RunKey("service", "web", "nginx", "running"):   {Result: mod.Result{Name: "nginx", Status: mod.Failed, Changes: map[string]any{"restart": true}}, RunNum: 2},
		mod.RunKey("cmd", "x", "true", "run"):              {Result: mod.Result{Name: "true", Status: mod.Failed}, RunNum: 3},
	}
	b, _ := json.Marshal(runs)
	sum, drift := stateDrift("state.highstate", b)
	if sum == nil || *sum != (wire.StateSummary{Total: 4, Changed: 2, Failed: 2}) {
		t.Fatalf("summary %+v, want total 4, changed 2, failed 2", sum)
	}
	want := []wire.DriftState{{ID: "motd", Name: "/etc/motd", Function: "file.managed", SLS: "base"}, {ID: "web", Name: "nginx", Function: "service.running", Failed: true}}
	if fmt.Sprint(drift) != fmt.Sprint(want) {
		t.Errorf("drift %+v, want %+v", drift, want)
	}
	for _, c := range []struct{ fn, result string }{
		{"cmd.run", string(b)},                       // not a state function
		{"state.show_sls", `{"motd": {"file": []}}`}, // not a run map
		{"state.apply", `"an error"`},
	} {
		if s, d := stateDrift(c.fn, json.RawMessage(c.result)); s != nil || d != nil {
			t.Errorf("stateDrift(%s, %s) = %+v %+v, want nothing", c.fn, c.result, s, d)
		}
	}
	if s, _ := stateDrift("state.highstate", []byte(`{}`)); s == nil || s.Total != 0 {
		t.Errorf("an empty highstate: %+v, want a summary of 0 states", s)
	}
}

// FuzzParseSchedule: any input is accepted or refused without a panic, and
// what is accepted holds the invariants the loop relies on.
func FuzzParseSchedule(f *testing.F) {
	f.Add([]byte("hs:\n  function: state.highstate\n  interval: 30m\n  splay: 5m\n"))
	f.Add([]byte(`{"disk": {"function": "cmd.run", "args": ["df -h"], "interval": "1h", "run_on_start": false}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSchedule("fuzz", data)
		if err != nil {
			return
		}
		list, err := s.compiled(nil)
		if err != nil {
			t.Fatalf("accepted, then refused: %v", err)
		}
		for _, e := range list {
			if e.interval < minScheduleInterval || e.interval > maxScheduleInterval || e.splay < 0 || e.splay > e.interval {
				t.Fatalf("entry %s: interval %s splay %s out of bounds", e.name, e.interval, e.splay)
			}
			if len(e.args) > 0 && (!json.Valid(e.args) || (e.args[0] != '{' && e.args[0] != '[')) {
				t.Fatalf("entry %s: args %s", e.name, e.args)
			}
		}
	})
}
