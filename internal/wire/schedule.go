package wire

import "time"

// ScheduleEvent is what a peel publishes to job-events after each run of one
// of its schedule entries (peel.yaml schedule:, names.ScheduleEventSubject).
//
// Return is the run's return exactly as a job's would be stored in
// job-returns (JID empty: no master dispatched it), so it carries nothing a
// job return would not. The same event without Return goes to
// names.ScheduleDriftSubject when Drift is not empty.
type ScheduleEvent struct {
	Peel     string    `json:"peel"`
	Entry    string    `json:"entry"`
	Function string    `json:"fn"`
	Started  time.Time `json:"started"`
	Duration Duration  `json:"duration"`
	Success  bool      `json:"success"`
	Error    *Error    `json:"error,omitempty"`
	// Skipped counts the runs of this entry left out since the previous
	// event because this one was still running (an interval shorter than
	// the run).
	Skipped int `json:"skipped,omitempty"`
	// States summarises a state run (state.apply, state.highstate);
	// nil for other functions.
	States *StateSummary `json:"states,omitempty"`
	// Drift lists the states that changed something: the host had drifted
	// from its declared state (or, in test mode, would be changed).
	Drift []DriftState `json:"drift,omitempty"`
	// Next is when the entry runs next.
	Next time.Time `json:"next,omitzero"`
	// Return is the full return. It is nil on the drift subject, for a
	// Clean state run, and when the event would exceed the server's maximum
	// payload (Truncated).
	Return *Return `json:"return,omitempty"`
	// Clean marks a state run in which no state changed or failed: its
	// per-state return is not stored, the summary says it all (a fleet's
	// clean highstates would otherwise fill job-events with copies of the
	// same result).
	Clean     bool `json:"clean,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
}

// StateSummary counts a state run's states as Salt's summary block does.
type StateSummary struct {
	Total   int `json:"total"`
	Changed int `json:"changed"`
	Failed  int `json:"failed"`
}

// DriftState is one state that changed: its id, name, function
// (module.function) and state file, without the changes themselves (those
// are in the full return).
type DriftState struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Function string `json:"fn"`
	SLS      string `json:"sls,omitempty"`
	Failed   bool   `json:"failed,omitempty"`
}
