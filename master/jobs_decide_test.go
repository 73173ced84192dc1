package master

import (
	"slices"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/wire"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// trackerWith is a part's tracker that expects expected and has the returns
// in returned (peel → success).
func trackerWith(expected []string, returned map[string]bool) *tracker {
	tr := newTracker(expected, 7)
	for id, ok := range returned {
		tr.record(id, ok)
	}
	return tr
}

func TestTracker_Record(t *testing.T) {
	for _, tc := range []struct {
		name      string
		finished  bool
		before    map[string]bool
		peel      string
		ok        bool
		want      returnCounted
		returned  int
		extra     int
		completes bool
	}{
		{name: "first return of an expected peel", peel: "a", ok: true, want: returnNew, returned: 1},
		{name: "the last expected peel completes the part", before: map[string]bool{"a": true}, peel: "b", ok: false, want: returnNew, returned: 2, completes: true},
		{name: "a second return of the same peel is ignored", before: map[string]bool{"a": false}, peel: "a", ok: true, want: returnIgnored, returned: 1},
		{name: "a peel the part does not expect is extra", peel: "z", ok: true, want: returnUnexpected, extra: 1},
		{name: "a finished part counts nothing", finished: true, peel: "a", ok: true, want: returnIgnored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := trackerWith([]string{"a", "b"}, tc.before)
			tr.finished = tc.finished
			if got := tr.record(tc.peel, tc.ok); got != tc.want {
				t.Fatalf("record = %v, want %v", got, tc.want)
			}
			if tr.returned != tc.returned || tr.extra != tc.extra {
				t.Fatalf("returned %d extra %d, want %d and %d", tr.returned, tr.extra, tc.returned, tc.extra)
			}
			if _, ok := tr.has(tc.peel); tc.want == returnNew && ok != tc.ok {
				t.Fatalf("success of %s recorded as %v", tc.peel, ok)
			}
			if tr.complete() != tc.completes {
				t.Fatalf("complete = %v, want %v", tr.complete(), tc.completes)
			}
		})
	}
}

func TestTracker_Complete_NotWhileWriting(t *testing.T) {
	tr := trackerWith([]string{"a"}, map[string]bool{"a": true})
	tr.writing = true
	if tr.complete() {
		t.Fatal("complete while the part is being written: its writer looks again")
	}
	tr.writing, tr.finished = false, true
	if tr.complete() {
		t.Fatal("complete once finished: a part is finished once")
	}
}

// TestTracker_Missing: whom the job is sent to again, sorted for the peels'
// binary search.
func TestTracker_Missing(t *testing.T) {
	tr := trackerWith([]string{"web3", "web1", "db2", "web2"}, map[string]bool{"web2": true, "db2": false})
	if got, want := tr.missing(), []string{"web1", "web3"}; !slices.Equal(got, want) {
		t.Fatalf("missing = %v, want %v", got, want)
	}
	if got := trackerWith([]string{"a"}, map[string]bool{"a": true}).missing(); len(got) != 0 {
		t.Fatalf("nobody missing, got %v", got)
	}
}

func TestUnfinishedParts(t *testing.T) {
	tracked := map[int]*tracker{3: {finished: true}, 9: {}, 1: {}, 4: {finished: true}}
	if got, want := unfinishedParts(tracked), []int{1, 9}; !slices.Equal(got, want) {
		t.Fatalf("unfinishedParts = %v, want %v", got, want)
	}
}

func TestPartOutcome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		returned map[string]bool
		status   string
		ret, bad int
		missing  []string
	}{
		{"every peel returned", map[string]bool{"a": true, "b": false, "c": true}, wire.StatusDone, 3, 1, nil},
		{"some returned", map[string]bool{"b": true}, wire.StatusPartial, 1, 0, []string{"a", "c"}},
		{"a failed return still counts as returned", map[string]bool{"c": false}, wire.StatusPartial, 1, 1, []string{"a", "b"}},
		{"nobody returned", nil, wire.StatusTimedOut, 0, 0, []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := wire.JobPart{JID: "j", Partition: 5, Master: "old", Expected: []string{"a", "b", "c"}, Status: wire.StatusRunning, Offline: []string{"z"}}
			got := partOutcome(in, trackerWith(in.Expected, tc.returned), "m2", t0)
			if got.Status != tc.status || got.Returned != tc.ret || got.Failed != tc.bad || !slices.Equal(got.Missing, tc.missing) {
				t.Fatalf("got %s returned=%d failed=%d missing=%v; want %s %d %d %v", got.Status, got.Returned, got.Failed, got.Missing, tc.status, tc.ret, tc.bad, tc.missing)
			}
			if got.Master != "m2" || !got.Finished.Equal(t0) || got.Partition != 5 || !slices.Equal(got.Offline, []string{"z"}) {
				t.Fatalf("the finishing master, time, partition and offline list: %+v", got)
			}
		})
	}
}

func TestNewPart(t *testing.T) {
	p := newPart("j", 3, "m1", []string{"a", "b"}, []string{"c"}, t0)
	if p.Status != wire.StatusRunning || !slices.Equal(p.Expected, []string{"a", "b"}) || !slices.Equal(p.Offline, []string{"c"}) || !p.Finished.IsZero() {
		t.Fatalf("a part with peels online runs: %+v", p)
	}
	p = newPart("j", 3, "m1", nil, []string{"c"}, t0)
	if p.Status != wire.StatusDone || p.Expected == nil || len(p.Expected) != 0 || !p.Finished.Equal(t0) {
		t.Fatalf("a part with nobody online is done at once, expecting [] (not null): %+v", p)
	}
}

func TestDispatchToAll(t *testing.T) {
	for _, tc := range []struct {
		target  wire.Target
		parsed  bool
		offline int
		want    bool
	}{
		{wire.Target{Expr: "*"}, true, 0, true},
		{wire.Target{Kind: "glob", Expr: "*"}, true, 0, true},
		{wire.Target{Kind: "glob", Expr: "*"}, true, 1, false}, // name the others: a peel coming back must not run it
		{wire.Target{Kind: "glob", Expr: "web*"}, true, 0, false},
		{wire.Target{Kind: "list", Expr: "*"}, true, 0, false},
		{wire.Target{Expr: "*"}, false, 0, false}, // a target that did not parse targets nobody
	} {
		if got := dispatchToAll(tc.target, tc.parsed, tc.offline); got != tc.want {
			t.Errorf("dispatchToAll(%+v, parsed %v, offline %d) = %v, want %v", tc.target, tc.parsed, tc.offline, got, tc.want)
		}
	}
}

func TestReconcileJob(t *testing.T) {
	running := func(expected ...string) wire.JobPart {
		return wire.JobPart{Status: wire.StatusRunning, Expected: expected}
	}
	final := func(status string, expected []string, returned, failed int, missing, offline []string) wire.JobPart {
		return wire.JobPart{Status: status, Expected: expected, Returned: returned, Failed: failed, Missing: missing, Offline: offline}
	}
	ab := []string{"a", "b"}
	for _, tc := range []struct {
		name   string
		status string // of the main record before
		parts  map[int]wire.JobPart
		write  bool
		want   wire.Job // the fields compared: Status and the counts
	}{
		{"a partition without a part: nothing yet", wire.StatusPending, map[int]wire.JobPart{0: running("a")}, false, wire.Job{}},
		{"every part present: running", wire.StatusPending, map[int]wire.JobPart{0: running("a"), 1: running("b", "c")}, true,
			wire.Job{Status: wire.StatusRunning, Expected: 3}},
		{"running already, parts unchanged: no write", wire.StatusRunning, map[int]wire.JobPart{0: running("a"), 1: running("b")}, false, wire.Job{}},
		{"every part done: done", wire.StatusRunning, map[int]wire.JobPart{0: final(wire.StatusDone, ab, 2, 1, nil, nil), 1: final(wire.StatusDone, []string{}, 0, 0, nil, nil)}, true,
			wire.Job{Status: wire.StatusDone, Expected: 2, Returned: 2, Failed: 1}},
		{"a peel missing somewhere: partial", wire.StatusRunning, map[int]wire.JobPart{0: final(wire.StatusDone, ab, 2, 0, nil, nil), 1: final(wire.StatusTimedOut, []string{"c"}, 0, 0, []string{"c"}, nil)}, true,
			wire.Job{Status: wire.StatusPartial, Expected: 3, Returned: 2, Missing: 1}},
		{"nobody returned: timed-out", wire.StatusRunning, map[int]wire.JobPart{0: final(wire.StatusTimedOut, ab, 0, 0, ab, nil), 1: final(wire.StatusDone, []string{}, 0, 0, nil, nil)}, true,
			wire.Job{Status: wire.StatusTimedOut, Expected: 2, Missing: 2}},
		{"all done but a peel offline: partial", wire.StatusRunning, map[int]wire.JobPart{0: final(wire.StatusDone, ab, 2, 0, nil, []string{"c"}), 1: final(wire.StatusDone, []string{}, 0, 0, nil, nil)}, true,
			wire.Job{Status: wire.StatusPartial, Expected: 2, Returned: 2, Offline: 1}},
		{"every targeted peel offline: partial", wire.StatusRunning, map[int]wire.JobPart{0: final(wire.StatusDone, []string{}, 0, 0, nil, []string{"a"}), 1: final(wire.StatusDone, []string{}, 0, 0, nil, []string{"b"})}, true,
			wire.Job{Status: wire.StatusPartial, Offline: 2}},
		{"finished from pending in one step", wire.StatusPending, map[int]wire.JobPart{0: final(wire.StatusDone, ab, 2, 0, nil, nil), 1: final(wire.StatusDone, []string{}, 0, 0, nil, nil)}, true,
			wire.Job{Status: wire.StatusDone, Expected: 2, Returned: 2}},
		{"a final job is never written again", wire.StatusDone, map[int]wire.JobPart{0: final(wire.StatusTimedOut, ab, 0, 0, ab, nil), 1: final(wire.StatusDone, []string{}, 0, 0, nil, nil)}, false, wire.Job{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			main := wire.Job{JID: "j", Function: "test.ping", Status: tc.status}
			if tc.status == wire.StatusRunning {
				for _, p := range tc.parts {
					main.Expected += len(p.Expected)
					main.Offline += len(p.Offline)
				}
			}
			next, write := reconcileJob(main, tc.parts, 2, t0)
			if write != tc.write {
				t.Fatalf("write = %v, want %v (next %+v)", write, tc.write, next)
			}
			if !write {
				if next.Status != main.Status {
					t.Fatalf("no write, but the status moved to %s", next.Status)
				}
				return
			}
			type counts struct {
				status                                       string
				expected, returned, failed, missing, offline int
			}
			of := func(j wire.Job) counts {
				return counts{j.Status, j.Expected, j.Returned, j.Failed, j.Missing, j.Offline}
			}
			if got := of(next); got != of(tc.want) {
				t.Fatalf("got %+v, want %+v", got, of(tc.want))
			}
			if next.JID != "j" || next.Function != "test.ping" {
				t.Fatalf("the job's own fields are kept: %+v", next)
			}
			if wire.Final(next.Status) != !next.Finished.IsZero() || (wire.Final(next.Status) && !next.Finished.Equal(t0)) {
				t.Fatalf("Finished %v for status %s", next.Finished, next.Status)
			}
		})
	}
}

// TestNewTracker_SortsAndDedupes: ids not sorted (a part written by another
// version) are counted against a sorted, unique copy; sorted ones are shared.
func TestNewTracker_SortsAndDedupes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ids   []string
		want  []string
		share bool
	}{
		{"sorted ids are shared", []string{"a", "b", "c"}, []string{"a", "b", "c"}, true},
		{"unsorted ids are sorted in a copy", []string{"c", "a", "b"}, []string{"a", "b", "c"}, false},
		{"duplicates are dropped", []string{"b", "a", "b"}, []string{"a", "b"}, false},
		{"none", []string{}, []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.ids)
			tr := newTracker(in, 3)
			if !slices.Equal(tr.ids, tc.want) || len(tr.state) != len(tc.want) || tr.rev != 3 {
				t.Fatalf("ids %v state %d rev %d, want %v", tr.ids, len(tr.state), tr.rev, tc.want)
			}
			if !slices.Equal(in, tc.ids) {
				t.Fatalf("the part's ids were changed: %v", in)
			}
			if shared := len(in) > 0 && &tr.ids[0] == &in[0]; shared != tc.share && len(in) > 0 {
				t.Fatalf("shared = %v, want %v", shared, tc.share)
			}
		})
	}
}

func TestHeld_FirstReturnCountsAndFolds(t *testing.T) {
	h := held{}
	h.hold("a", false)
	h.hold("a", true) // a second copy (a rescan) does not change the first
	h.hold("z", true) // not expected by the part
	h.hold("b", true)
	tr := trackerWith([]string{"a", "b", "c"}, map[string]bool{"b": true})
	if n := tr.fold(h); n != 1 {
		t.Fatalf("fold counted %d new returns, want 1 (a; b was counted already, z is not expected)", n)
	}
	if returned, ok := tr.has("a"); !returned || ok {
		t.Fatalf("a: returned %v ok %v, want its first return (a failure)", returned, ok)
	}
	if tr.returned != 2 || tr.failed != 1 || tr.extra != 1 {
		t.Fatalf("returned %d failed %d extra %d, want 2 1 1", tr.returned, tr.failed, tr.extra)
	}
	if n := tr.fold(nil); n != 0 {
		t.Fatalf("folding nothing counted %d", n)
	}
}

// TestAdoptTracker: what a master takes a part over with, and when it must
// read the job's returns again.
func TestAdoptTracker(t *testing.T) {
	exp := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name       string
		covered    bool
		shadow     *tracker
		held       held
		rescan     bool
		returned   int
		keepShadow bool
	}{
		{name: "covered with a shadow count: taken as is, no rescan", covered: true,
			shadow: trackerWith(exp, map[string]bool{"a": true, "b": false}), returned: 2, keepShadow: true},
		{name: "covered, part not seen yet: the held returns, no rescan", covered: true,
			held: held{"c": true}, returned: 1},
		{name: "covered, shadow and held: both, each peel once", covered: true,
			shadow: trackerWith(exp, map[string]bool{"a": true}), held: held{"a": false, "c": true}, returned: 2, keepShadow: true},
		{name: "not covered (started while the job ran): rescan, starting from the counts", covered: false,
			shadow: trackerWith(exp, map[string]bool{"a": true}), rescan: true, returned: 1, keepShadow: true},
		{name: "not covered, nothing counted: rescan", covered: false, rescan: true},
		{name: "a shadow of another expected set is not used", covered: true,
			shadow: trackerWith([]string{"a", "b"}, map[string]bool{"a": true, "b": true}), returned: 0},
		{name: "a finished shadow is not used", covered: true,
			shadow: func() *tracker { tr := trackerWith(exp, map[string]bool{"a": true}); tr.finished = true; return tr }(), returned: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, rescan := adoptTracker(tc.covered, tc.shadow, exp, 42, tc.held)
			if rescan != tc.rescan || tr.returned != tc.returned || tr.rev != 42 || tr.writing || tr.finished {
				t.Fatalf("rescan %v returned %d rev %d writing %v finished %v; want rescan %v returned %d rev 42",
					rescan, tr.returned, tr.rev, tr.writing, tr.finished, tc.rescan, tc.returned)
			}
			if (tr == tc.shadow) != tc.keepShadow {
				t.Fatalf("took the shadow: %v, want %v", tr == tc.shadow, tc.keepShadow)
			}
			if !slices.Equal(tr.ids, exp) {
				t.Fatalf("ids %v, want %v", tr.ids, exp)
			}
		})
	}
}
