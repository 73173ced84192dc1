package peel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
)

// Schedule is peel.yaml's schedule: named entries, each running one
// function on this peel every interval (Salt's minion schedule):
//
//	schedule:
//	  highstate:
//	    function: state.highstate
//	    interval: 30m
//	    splay: 5m
//	  disk:
//	    function: cmd.run
//	    args: ["df -h /"]
//	    interval: 1h
type Schedule map[string]ScheduleEntry

// ScheduleEntry is one named entry of a Schedule.
type ScheduleEntry struct {
	// Function is a job function of the peel's registry.
	Function string `yaml:"function" json:"function"`
	// Args are the function's arguments as a job would carry them: a map,
	// a list, or absent.
	Args any `yaml:"args" json:"args,omitempty"`
	// Interval is the period; required.
	Interval config.Duration `yaml:"interval" json:"interval"`
	// Splay spreads the runs of a fleet: each run starts up to this long
	// after its period begins (splayOffset). 0 to Interval.
	Splay config.Duration `yaml:"splay" json:"splay"`
	// RunOnStart (default true, as Salt's run_on_start) makes the first run
	// start within Splay of the peel's start instead of one interval later.
	RunOnStart *bool `yaml:"run_on_start" json:"run_on_start,omitempty"`
}

// Bounds of an entry's interval: short enough for tests, long enough for a
// monthly run.
const (
	minScheduleInterval = 100 * time.Millisecond
	maxScheduleInterval = 31 * 24 * time.Hour
)

// scheduled is an entry checked and ready to run.
type scheduled struct {
	name            string
	fn              string
	args            json.RawMessage
	interval, splay time.Duration
	runOnStart      bool
}

// ParseSchedule reads a schedule (the mapping under schedule:, YAML or JSON)
// from another source than peel.yaml, such as settings, strictly as
// peel.yaml's is read; name is the source in errors. Functions are checked
// when the schedule is given to SetSchedule.
func ParseSchedule(name string, data []byte) (Schedule, error) {
	var s Schedule
	if err := config.Parse(name, data, &s); err != nil {
		return nil, err
	}
	return s, s.validate(nil)
}

// validate checks every entry and names each bad key as
// schedule.<entry>.<key>. known, when not nil, are the functions that
// exist (the peel's registry); the error then lists them.
func (s Schedule) validate(known []string) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s)) {
		if _, err := s[name].compile(name, known); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// compiled returns the entries in name order, checked.
func (s Schedule) compiled(known []string) ([]scheduled, error) {
	out := make([]scheduled, 0, len(s))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s)) {
		c, err := s[name].compile(name, known)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// compile checks one entry; every error names its key.
func (e ScheduleEntry) compile(name string, known []string) (scheduled, error) {
	key := "schedule." + name
	if err := names.ValidateScheduleName(name); err != nil {
		return scheduled{}, fmt.Errorf("config key %s: %w", key, err)
	}
	var errs []error
	bad := func(sub, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config key %s.%s: %s", key, sub, fmt.Sprintf(format, a...)))
	}
	c := scheduled{name: name, fn: e.Function, interval: e.Interval.D(), splay: e.Splay.D(), runOnStart: e.RunOnStart == nil || *e.RunOnStart}
	switch {
	case e.Function == "":
		bad("function", "missing: name the function to run (state.highstate, cmd.run, …)")
	case !validFunctionName(e.Function):
		bad("function", "%q is not a function name (module.function)", e.Function)
	case known != nil && !slices.Contains(known, e.Function):
		bad("function", "unknown function %q; this peel has %s", e.Function, strings.Join(known, ", "))
	}
	if err := e.Interval.Err(); err != nil {
		bad("interval", "%v", err)
	} else if c.interval == 0 {
		bad("interval", "missing: say how often it runs (e.g. 30m)")
	} else if c.interval < minScheduleInterval || c.interval > maxScheduleInterval {
		bad("interval", "%s: want %s to %s", c.interval, minScheduleInterval, maxScheduleInterval)
	}
	if err := e.Splay.Err(); err != nil {
		bad("splay", "%v", err)
	} else if c.interval > 0 && c.splay > c.interval {
		bad("splay", "%s: longer than the interval (%s)", c.splay, c.interval)
	}
	if e.Args != nil {
		b, err := json.Marshal(e.Args)
		b = bytes.TrimSpace(b)
		switch {
		case err != nil:
			bad("args", "not representable as JSON: %v", err)
		case len(b) == 0 || (b[0] != '{' && b[0] != '['):
			bad("args", "want a map (key: value) or a list, got %s", b)
		default:
			c.args = b
		}
	}
	return c, errors.Join(errs...)
}

// validFunctionName is the masters' rule for a job's function: letters,
// digits, '_' and at least one inner '.'.
func validFunctionName(fn string) bool {
	if len(fn) > 128 || !strings.Contains(fn, ".") || strings.HasPrefix(fn, ".") || strings.HasSuffix(fn, ".") {
		return false
	}
	for _, c := range fn {
		if !(c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
