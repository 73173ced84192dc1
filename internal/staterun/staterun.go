// Package staterun is the result of a state run (state.apply,
// state.highstate) in Salt's shape: written by the peel's state engine
// (peel/state, whose modules know these types as mod.Status, mod.Result,
// mod.Run), read by the CLI and its printer (internal/stateout). It sits
// below both daemons so that the CLI, and the master tests that run it,
// import no peel package.
package staterun

import (
	"fmt"
	"strings"
)

// Status is a state's outcome. Its JSON form is Salt's: true, false, or null
// (test mode, the state would change something).
type Status int8

const (
	// OK: the declaration holds (changed or not).
	OK Status = iota
	// Failed: the declaration could not be made true.
	Failed
	// WouldChange: test mode, and the declaration does not hold yet.
	WouldChange
)

// MarshalJSON writes true, false or null.
func (s Status) MarshalJSON() ([]byte, error) {
	switch s {
	case OK:
		return []byte("true"), nil
	case Failed:
		return []byte("false"), nil
	default:
		return []byte("null"), nil
	}
}

// UnmarshalJSON reads true, false or null.
func (s *Status) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*s = OK
	case "false":
		*s = Failed
	case "null":
		*s = WouldChange
	default:
		return fmt.Errorf("state result: want true, false or null, got %s", b)
	}
	return nil
}

// Result is what one state function returns. The engine fills in the
// state's id, timing and run order; a module fills Name, Status, Changes
// and Comment.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"result"`
	// Changes is empty when nothing changed (or, in test mode, would
	// change). Files put their unified diff under "diff".
	Changes map[string]any `json:"changes"`
	Comment string         `json:"comment"`
}

// Changed reports whether the state changed (or would change) anything.
func (r Result) Changed() bool { return len(r.Changes) > 0 }

// Run is one state's entry in the return of state.apply and
// state.highstate: Salt's shape, so tooling written for Salt's JSON reads
// it. A return is a map from Key to Run.
type Run struct {
	Result
	ID     string `json:"__id__"`
	SLS    string `json:"__sls__"`
	RunNum int    `json:"__run_num__"`
	// StartTime is the wall-clock start, "15:04:05.000000" as Salt prints it.
	StartTime string `json:"start_time"`
	// Duration is the run time in milliseconds.
	Duration float64 `json:"duration"`
}

// Key is Salt's key of a state's return:
// "<module>_|-<id>_|-<name>_|-<function>" (file_|-motd_|-/etc/motd_|-managed).
func Key(module, id, name, function string) string {
	return module + "_|-" + id + "_|-" + name + "_|-" + function
}

// SplitKey is the inverse of Key; ok is false for a key of another shape.
func SplitKey(key string) (module, id, name, function string, ok bool) {
	p := strings.Split(key, "_|-")
	if len(p) != 4 {
		return "", "", "", "", false
	}
	return p[0], p[1], p[2], p[3], true
}
