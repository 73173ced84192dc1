package master

import (
	"slices"
	"sort"
	"time"

	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// The pure decisions of the job engine: what a part's outcome is, what a
// job's aggregate status is, which peels to send a job to again, when a part
// is complete. They read and change only the values passed in (no NATS, no
// engine lock), so the state machine is tested alone (jobs_decide_test.go);
// the engine holds je.mu around the calls that touch a tracker.

// newTracker counts the returns of a part that expects ids.
func newTracker(ids []string, rev uint64) *tracker {
	tr := &tracker{expected: make(map[string]struct{}, len(ids)), returned: map[string]bool{}, rev: rev}
	for _, id := range ids {
		tr.expected[id] = struct{}{}
	}
	return tr
}

// returnCounted is what a return did to a tracker.
type returnCounted int

const (
	returnIgnored    returnCounted = iota // finished part, or a second return of the same peel
	returnUnexpected                      // a peel the part does not expect (counted as extra)
	returnNew                             // an expected peel's first return
)

// record counts one return of peel (ok: it succeeded). A peel's first return
// is the one that counts: job-returns holds one per job and peel, and a
// rescan may bring a return the watch brought already.
func (tr *tracker) record(peel string, ok bool) returnCounted {
	if tr.finished {
		return returnIgnored
	}
	if _, dup := tr.returned[peel]; dup {
		return returnIgnored
	}
	if _, exp := tr.expected[peel]; !exp {
		tr.extra++
		return returnUnexpected
	}
	tr.returned[peel] = ok
	return returnNew
}

// complete: every expected peel has returned, and no write of the part is
// under way (the writer looks again when it is done), so the part can be
// finished now rather than at the deadline.
func (tr *tracker) complete() bool {
	return !tr.writing && !tr.finished && len(tr.returned) == len(tr.expected)
}

// missing lists, sorted, the expected peels that have not returned: whom to
// send the job to again, and, at the end, whom the part calls missing.
// Sorted because peels look themselves up in a dispatch by binary search.
func (tr *tracker) missing() []string {
	var out []string
	for id := range tr.expected {
		if _, ok := tr.returned[id]; !ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// unfinishedParts lists the partitions whose tracker has not finished: those
// the deadline finishes and the re-dispatch sends to again.
func unfinishedParts(tracked map[int]*tracker) []int {
	var parts []int
	for p, tr := range tracked {
		if !tr.finished {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	return parts
}

// partOutcome is the finished form of part from its tracker: counts,
// missing peels and status (done when nobody is missing, partial when some
// returned, timed-out when none did).
func partOutcome(part wire.JobPart, tr *tracker, master string, now time.Time) wire.JobPart {
	part.Master = master
	part.Returned, part.Failed = 0, 0
	for _, ok := range tr.returned {
		part.Returned++
		if !ok {
			part.Failed++
		}
	}
	part.Missing = tr.missing()
	switch {
	case len(part.Missing) == 0:
		part.Status = wire.StatusDone
	case part.Returned > 0:
		part.Status = wire.StatusPartial
	default:
		part.Status = wire.StatusTimedOut
	}
	part.Finished = now.UTC()
	return part
}

// newPart is the part of partition p as its owner creates it: ids are the
// targeted peels online now, which it expects; offline the targeted ones
// that are not, which it lists and neither dispatches to nor waits for. A
// part that expects nobody is done at once.
func newPart(jid string, p int, master string, ids, offline []string, now time.Time) wire.JobPart {
	part := wire.JobPart{JID: jid, Partition: p, Master: master, Expected: ids, Status: wire.StatusRunning, Offline: offline}
	if len(ids) == 0 {
		part.Expected = []string{}
		part.Status = wire.StatusDone
		part.Finished = now.UTC()
	}
	return part
}

// dispatchToAll: the job may go out as "every peel of the partition"
// instead of a list of ids. Only for a target that matches every peel, and
// only with no peel offline: a peel coming back would otherwise run a job
// that lists it as offline.
func dispatchToAll(t wire.Target, parsed bool, offline int) bool {
	return parsed && (t.Kind == "" || t.Kind == string(target.KindGlob)) && t.Expr == "*" && offline == 0
}

// reconcileJob is the main record's next state from its parts, for a job of
// n partitions: running once every partition has a part, final (with the
// totals) once every part is. ok is false when there is nothing to write.
//
// A final job is done when every part is done and no targeted peel was
// offline; partial when some peel returned; timed-out when peels were
// expected and none returned; partial when every targeted peel was offline
// (offline peels are targeted peels that did not run the job).
func reconcileJob(main wire.Job, parts map[int]wire.JobPart, n int, now time.Time) (next wire.Job, ok bool) {
	if wire.Final(main.Status) {
		return main, false
	}
	present, final := 0, 0
	expected, returned, failed, missing, offline := 0, 0, 0, 0, 0
	anyPartial := false
	for p := 0; p < n; p++ {
		part, have := parts[p]
		if !have {
			continue
		}
		present++
		expected += len(part.Expected)
		offline += len(part.Offline)
		if wire.Final(part.Status) {
			final++
			returned += part.Returned
			failed += part.Failed
			missing += len(part.Missing)
			if part.Status != wire.StatusDone {
				anyPartial = true
			}
		}
	}
	next = main
	switch {
	case final == n:
		next.Expected, next.Returned, next.Failed, next.Missing, next.Offline = expected, returned, failed, missing, offline
		switch {
		case !anyPartial && offline == 0:
			next.Status = wire.StatusDone
		case returned > 0:
			next.Status = wire.StatusPartial
		case missing > 0:
			next.Status = wire.StatusTimedOut
		default:
			next.Status = wire.StatusPartial
		}
		next.Finished = now.UTC()
	case present == n && main.Status == wire.StatusPending:
		next.Status = wire.StatusRunning
		next.Expected, next.Offline = expected, offline
	default:
		return main, false
	}
	if next.Status == main.Status && next.Expected == main.Expected && next.Offline == main.Offline {
		return main, false
	}
	return next, true
}
