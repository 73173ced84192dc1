// Package stateout prints state returns for people, as Salt's highstate
// outputter does: each state (failing first, then in run order) in full or
// terse, then the summary block. It is the one printer of both `zester run`
// and `zester-peel call`, so it depends on the state result types only
// (internal/staterun: never on the CLI, a server or a daemon).
package stateout

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/zester-io/zester/internal/staterun"
)

// Output modes (--state-output), as Salt's state_output.
const (
	Full    = "full"    // every state in full
	Terse   = "terse"   // one line a state
	Changes = "changes" // changed and failed states in full, the rest terse
)

// Modes are the accepted --state-output values.
var Modes = []string{Full, Terse, Changes}

// Check refuses an unknown --state-output, naming the choices.
func Check(mode string) error {
	if slices.Contains(Modes, mode) {
		return nil
	}
	return fmt.Errorf("--state-output %q: want one of %s", mode, strings.Join(Modes, ", "))
}

// State is one state of a state return with its key's parts.
type State struct {
	staterun.Run
	Module, Function string
}

func (s State) failed() bool { return s.Status == staterun.Failed }

// IsStateFunction says whether fn returns a state map (staterun.Key to
// staterun.Run) when it succeeds or fails in its states.
func IsStateFunction(fn string) bool {
	switch fn {
	case "state.apply", "state.highstate", "state.sls", "state.single", "state.top":
		return true
	}
	return false
}

// Decode reads a state function's JSON return. ok is false for anything
// else (a state.show_sls return, an error string), which callers print
// as they print any return.
func Decode(fn string, raw json.RawMessage) ([]State, bool) {
	if !IsStateFunction(fn) {
		return nil, false
	}
	var m map[string]staterun.Run
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	return FromRuns(m)
}

// FromRuns orders a state return for printing: failing states first, each
// group in run order. ok is false when a key is not a staterun.Key.
func FromRuns(m map[string]staterun.Run) ([]State, bool) {
	out := make([]State, 0, len(m))
	for k, r := range m {
		module, id, name, function, ok := staterun.SplitKey(k)
		if !ok {
			return nil, false
		}
		if r.ID == "" {
			r.ID = id
		}
		if r.Name == "" {
			r.Name = name
		}
		out = append(out, State{Run: r, Module: module, Function: function})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].failed() != out[j].failed() {
			return out[i].failed()
		}
		if out[i].RunNum != out[j].RunNum {
			return out[i].RunNum < out[j].RunNum
		}
		return out[i].ID < out[j].ID
	})
	return out, true
}

// Print writes Salt's per-peel block: each state in full or terse as mode
// says (an empty mode is Full), errLine (when not empty) indented under
// the states, then the summary. name heads the block and the summary.
func Print(w io.Writer, name string, states []State, mode, errLine string) {
	if mode == "" {
		mode = Full
	}
	fmt.Fprintf(w, "%s:\n", name)
	var ok, changed, failed, unchanged int
	var total float64
	test := false
	for _, s := range states {
		total += s.Duration
		switch s.Status {
		case staterun.Failed:
			failed++
		case staterun.WouldChange:
			test = true
			ok++
		default:
			ok++
		}
		if s.Status != staterun.Failed {
			if s.Changed() {
				changed++
			} else {
				unchanged++
			}
		}
		if mode == Full || (mode == Changes && (s.Changed() || s.failed())) {
			printStateFull(w, s)
		} else {
			printStateTerse(w, s)
		}
	}
	if errLine != "" {
		fmt.Fprintf(w, "    error: %s\n", errLine)
	}
	fmt.Fprintf(w, "\nSummary for %s\n------------\n", name)
	if test {
		fmt.Fprintf(w, "Succeeded: %d (unchanged=%d, changed=%d)\n", ok, unchanged, changed)
	} else {
		fmt.Fprintf(w, "Succeeded: %d (changed=%d)\n", ok, changed)
	}
	fmt.Fprintf(w, "Failed:    %d\n------------\n", failed)
	fmt.Fprintf(w, "Total states run:     %d\n", len(states))
	fmt.Fprintf(w, "Total run time: %s\n", runTime(total))
}

// runTime is Salt's: milliseconds, seconds from 1000 ms.
func runTime(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%8.3f s", ms/1000)
	}
	return fmt.Sprintf("%8.3f ms", ms)
}

// resultWords are Salt's Result line: True, False, None.
var resultWords = map[staterun.Status]string{staterun.OK: "True", staterun.Failed: "False", staterun.WouldChange: "None"}

// terseWord is Salt's terse result: Clean, Changed, Failed, Differs.
func terseWord(s State) string {
	switch {
	case s.Status == staterun.Failed:
		return "Failed"
	case s.Status == staterun.WouldChange:
		return "Differs"
	case s.Changed():
		return "Changed"
	}
	return "Clean"
}

func printStateFull(w io.Writer, s State) {
	fmt.Fprintln(w, "----------")
	field := func(k, v string) {
		lines := strings.Split(strings.TrimRight(v, "\n"), "\n")
		fmt.Fprintf(w, "%12s: %s\n", k, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%14s%s\n", "", l)
		}
	}
	field("ID", s.ID)
	field("Function", s.Module+"."+s.Function)
	field("Name", s.Name)
	field("Result", resultWords[s.Status])
	field("Comment", s.Comment)
	field("Started", s.StartTime)
	field("Duration", fmt.Sprintf("%.3f ms", s.Duration))
	fmt.Fprintf(w, "%12s:\n", "Changes")
	if s.Changed() {
		printNested(w, 14, s.Changes)
	}
}

func printStateTerse(w io.Writer, s State) {
	fmt.Fprintf(w, "  Name: %s - Function: %s.%s - Result: %s - Started: %s - Duration: %.3f ms\n",
		s.Name, s.Module, s.Function, terseWord(s), s.StartTime, s.Duration)
}

// printNested writes a value as Salt's nested outputter does: maps under a
// "----------" rule with sorted keys, lists as "- item", multi-line
// strings (diffs) one line each, indented.
func printNested(w io.Writer, indent int, v any) {
	pad := strings.Repeat(" ", indent)
	switch x := v.(type) {
	case map[string]any:
		fmt.Fprintf(w, "%s----------\n", pad)
		for _, k := range slices.Sorted(maps.Keys(x)) {
			switch val := x[k].(type) {
			case map[string]any, []any:
				fmt.Fprintf(w, "%s%s:\n", pad, k)
				printNested(w, indent+4, val)
			case string:
				if strings.Contains(val, "\n") {
					fmt.Fprintf(w, "%s%s:\n", pad, k)
					printNested(w, indent+4, val)
				} else {
					fmt.Fprintf(w, "%s%s:\n%s    %s\n", pad, k, pad, val)
				}
			default:
				fmt.Fprintf(w, "%s%s:\n%s    %s\n", pad, k, pad, scalar(val))
			}
		}
	case []any:
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				fmt.Fprintf(w, "%s|_\n", pad)
				printNested(w, indent+2, e)
			default:
				fmt.Fprintf(w, "%s- %s\n", pad, scalar(e))
			}
		}
	case string:
		for _, l := range strings.Split(strings.TrimRight(x, "\n"), "\n") {
			fmt.Fprintf(w, "%s%s\n", pad, l)
		}
	default:
		fmt.Fprintf(w, "%s%s\n", pad, scalar(x))
	}
}

// scalar writes a JSON scalar as Salt prints it (True/False/None).
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	}
	return fmt.Sprint(v)
}
