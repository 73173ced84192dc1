package state

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// Output modes of Format, as Salt's --state-output.
const (
	OutputFull    = "full"
	OutputChanges = "changes"
	OutputTerse   = "terse"
)

// Format writes a return for people, as Salt's highstate outputter does:
// each state (failures first, then in run order), then the summary block.
// In "changes" mode states that changed nothing get one line; in "terse"
// every state does.
func Format(w io.Writer, peel string, r Return, mode string) {
	keys := r.Ordered()
	sort.SliceStable(keys, func(a, b int) bool {
		return r[keys[a]].Status == mod.Failed && r[keys[b]].Status != mod.Failed
	})
	fmt.Fprintf(w, "%s:\n", peel)
	for _, k := range keys {
		s := r[k]
		module, _, _, function, _ := mod.SplitRunKey(k)
		terse := mode == OutputTerse || (mode == OutputChanges && s.Status != mod.Failed && !changed(s.Result))
		if terse {
			fmt.Fprintf(w, "  Name: %s - Function: %s.%s - Result: %s - Started: %s - Duration: %.3f ms\n",
				s.Name, module, function, resultWord(s.Result), s.StartTime, s.Duration)
			continue
		}
		fmt.Fprintf(w, "----------\n")
		fmt.Fprintf(w, "%12s: %s\n", "ID", s.ID)
		fmt.Fprintf(w, "%12s: %s.%s\n", "Function", module, function)
		fmt.Fprintf(w, "%12s: %s\n", "Name", s.Name)
		fmt.Fprintf(w, "%12s: %s\n", "Result", map[mod.Status]string{mod.OK: "True", mod.Failed: "False", mod.WouldChange: "None"}[s.Status])
		fmt.Fprintf(w, "%12s: %s\n", "Comment", indentRest(s.Comment, 14))
		fmt.Fprintf(w, "%12s: %s\n", "Started", s.StartTime)
		fmt.Fprintf(w, "%12s: %.3f ms\n", "Duration", s.Duration)
		fmt.Fprintf(w, "%12s:\n", "Changes")
		if len(s.Changes) > 0 {
			fmt.Fprintf(w, "%14s----------\n", "")
			ck := make([]string, 0, len(s.Changes))
			for c := range s.Changes {
				ck = append(ck, c)
			}
			sort.Strings(ck)
			for _, c := range ck {
				fmt.Fprintf(w, "%14s%s:\n", "", c)
				fmt.Fprintf(w, "%s\n", indentAll(valueText(s.Changes[c]), 18))
			}
		}
	}
	sum := r.Summarize()
	fmt.Fprintf(w, "\nSummary for %s\n------------\n", peel)
	fmt.Fprintf(w, "Succeeded: %d (changed=%d)\n", sum.Succeeded, sum.Changed)
	fmt.Fprintf(w, "Failed:    %d\n------------\n", sum.Failed)
	fmt.Fprintf(w, "Total states run: %5d\n", sum.Total)
	fmt.Fprintf(w, "Total run time: %9.3f ms\n", sum.Duration)
}

func resultWord(r mod.Result) string {
	switch {
	case r.Status == mod.Failed:
		return "Failed"
	case r.Status == mod.WouldChange:
		return "Differs"
	case r.Changed():
		return "Changed"
	}
	return "Clean"
}

func valueText(v any) string {
	if s, ok := v.(string); ok {
		return strings.TrimRight(s, "\n")
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func indentAll(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func indentRest(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
