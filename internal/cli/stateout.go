package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/state/mod"
)

// State output modes (--state-output), as Salt's state_output.
const (
	stateFull    = "full"    // every state in full
	stateTerse   = "terse"   // one line a state
	stateChanges = "changes" // changed and failed states in full, the rest terse
)

// stateOutputModes are the accepted --state-output values.
var stateOutputModes = []string{stateFull, stateTerse, stateChanges}

// checkStateOutput refuses an unknown --state-output, naming the choices.
func checkStateOutput(mode string) error {
	for _, m := range stateOutputModes {
		if mode == m {
			return nil
		}
	}
	return fmt.Errorf("--state-output %q: want one of %s", mode, strings.Join(stateOutputModes, ", "))
}

// stateRun is one state of a state return with its key's parts.
type stateRun struct {
	mod.Run
	module, function string
}

func (s stateRun) failed() bool { return s.Status == mod.Failed }

// decodeStates reads a state.apply or state.highstate return: a JSON map
// from mod.RunKey to mod.Run. ok is false for anything else (a
// state.show_sls return, an error string), which is printed as before.
func decodeStates(fn string, raw json.RawMessage) ([]stateRun, bool) {
	switch fn {
	case "state.apply", "state.highstate", "state.sls", "state.single", "state.top":
	default:
		return nil, false
	}
	var m map[string]mod.Run
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	out := make([]stateRun, 0, len(m))
	for k, r := range m {
		module, id, name, function, ok := mod.SplitRunKey(k)
		if !ok {
			return nil, false
		}
		if r.ID == "" {
			r.ID = id
		}
		if r.Name == "" {
			r.Name = name
		}
		out = append(out, stateRun{Run: r, module: module, function: function})
	}
	// Failing states first, each group in run order.
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

// printStates writes Salt's per-peel block for a state return: each state
// (failing first) in full or terse as mode says, then the summary.
func printStates(w io.Writer, r *wire.Return, states []stateRun, mode string) {
	if mode == "" {
		mode = stateFull
	}
	name := r.Peel
	if r.Late {
		name += " (late)"
	}
	fmt.Fprintf(w, "%s:\n", name)
	var ok, changed, failed, unchanged int
	var total float64
	test := false
	for _, s := range states {
		total += s.Duration
		switch s.Status {
		case mod.Failed:
			failed++
		case mod.WouldChange:
			test = true
			ok++
		default:
			ok++
		}
		if s.Status != mod.Failed {
			if s.Changed() {
				changed++
			} else {
				unchanged++
			}
		}
		full := mode == stateFull || (mode == stateChanges && (s.Changed() || s.failed()))
		if full {
			printStateFull(w, s)
		} else {
			printStateTerse(w, s)
		}
	}
	if !r.Success && r.Error != nil {
		fmt.Fprintf(w, "    error: %s: %s\n", r.Error.Code, r.Error.Msg)
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
var resultWords = map[mod.Status]string{mod.OK: "True", mod.Failed: "False", mod.WouldChange: "None"}

// terseWord is Salt's terse result: Clean, Changed, Failed, Differs.
func terseWord(s stateRun) string {
	switch {
	case s.Status == mod.Failed:
		return "Failed"
	case s.Status == mod.WouldChange:
		return "Differs"
	case s.Changed():
		return "Changed"
	}
	return "Clean"
}

func printStateFull(w io.Writer, s stateRun) {
	fmt.Fprintln(w, "----------")
	field := func(k, v string) {
		lines := strings.Split(strings.TrimRight(v, "\n"), "\n")
		fmt.Fprintf(w, "%12s: %s\n", k, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%14s%s\n", "", l)
		}
	}
	field("ID", s.ID)
	field("Function", s.module+"."+s.function)
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

func printStateTerse(w io.Writer, s stateRun) {
	fmt.Fprintf(w, "  Name: %s - Function: %s.%s - Result: %s - Started: %s - Duration: %.3f ms\n",
		s.Name, s.module, s.function, terseWord(s), s.StartTime, s.Duration)
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
