package peel_test

import (
	"strings"
	"testing"

	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/peeltest"
)

const scheduleHead = "id: p1\ndata_dir: /tmp/x\nschedule:\n"

// Every bad schedule entry is refused at load with the key that is wrong
// (and, for the strict parser, its line); a peel.yaml with several bad
// entries names each.
func TestParseConfig_Schedule_BadEntryNamed(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "  hs:\n    function: test.ping\n    interval: 1m\n    intervall: 2m\n", []string{`[7:5] unknown field "intervall"`}},
		{"bad duration", "  hs:\n    function: test.ping\n    interval: 30 minutes\n", []string{"config key schedule.hs.interval:", `"30 minutes"`}},
		{"no interval", "  hs:\n    function: test.ping\n", []string{"config key schedule.hs.interval: missing"}},
		{"interval too short", "  hs:\n    function: test.ping\n    interval: 10ms\n", []string{"config key schedule.hs.interval: 10ms: want 100ms to"}},
		{"splay over interval", "  hs:\n    function: test.ping\n    interval: 1m\n    splay: 2m\n", []string{"config key schedule.hs.splay: 2m0s: longer than the interval (1m0s)"}},
		{"no function", "  hs:\n    interval: 1m\n", []string{"config key schedule.hs.function: missing"}},
		{"bad function", "  hs:\n    function: highstate!\n    interval: 1m\n", []string{`config key schedule.hs.function: "highstate!" is not a function name`}},
		{"scalar args", "  hs:\n    function: test.echo\n    args: hello\n    interval: 1m\n", []string{`config key schedule.hs.args: want a map (key: value) or a list, got "hello"`}},
		{"bad entry name", "  web.hs:\n    function: test.ping\n    interval: 1m\n", []string{`config key schedule.web.hs: schedule entry name "web.hs": character '.'`}},
		{"two bad entries", "  a:\n    function: test.ping\n  b:\n    function: test.ping\n    interval: 1m\n    splay: 1h\n", []string{"schedule.a.interval: missing", "schedule.b.splay"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := peel.ParseConfig([]byte(scheduleHead + c.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfig_Schedule_GoodEntries(t *testing.T) {
	cfg, err := peel.ParseConfig([]byte(scheduleHead + `  highstate:
    function: state.highstate
    interval: 30m
    splay: 5m
  disk:
    function: cmd.run
    args: ["df -h /"]
    interval: 1h
    run_on_start: false
  echo:
    function: test.echo
    args: {text: hi}
    interval: 1d
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Schedule) != 3 || cfg.Schedule["highstate"].Splay.D().Minutes() != 5 || *cfg.Schedule["disk"].RunOnStart {
		t.Errorf("schedule read as %+v", cfg.Schedule)
	}
}

// A function the peel does not have is refused by New (peel.yaml) and by
// SetSchedule (another source), naming the entry and the functions there
// are; a refused SetSchedule changes nothing, a good one is taken.
func TestPeel_Schedule_UnknownFunctionRefused(t *testing.T) {
	cfg := peeltest.Config(t, "p1", "nats://127.0.0.1:1")
	cfg.Schedule, _ = peel.ParseSchedule("test", []byte("hs:\n  function: state.highstat\n  interval: 1m\n"))
	_, err := peel.New(cfg, peel.Options{Registry: funcs.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), `config key schedule.hs.function: unknown function "state.highstat"; this peel has `) || !strings.Contains(err.Error(), "test.ping") {
		t.Fatalf("New: %v", err)
	}
	cfg.Schedule = nil
	p, err := peel.New(cfg, peel.Options{Registry: funcs.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := peel.ParseSchedule("settings", []byte(`{"fromsettings": {"function": "nope.nope", "interval": "1m"}}`))
	if err != nil {
		t.Fatalf("ParseSchedule of JSON: %v", err)
	}
	if err := p.SetSchedule(bad); err == nil || !strings.Contains(err.Error(), "schedule.fromsettings.function: unknown function") {
		t.Errorf("SetSchedule of an unknown function: %v", err)
	}
	good, _ := peel.ParseSchedule("settings", []byte(`{"fromsettings": {"function": "test.ping", "interval": "1m"}}`))
	if err := p.SetSchedule(good); err != nil {
		t.Errorf("SetSchedule: %v", err)
	}
	if _, err := peel.ParseSchedule("settings", []byte(`{"x": {"function": "test.ping", "interval": "1m", "every": 2}}`)); err == nil || !strings.Contains(err.Error(), `unknown field "every"`) {
		t.Errorf("ParseSchedule with an unknown key: %v", err)
	}
}
