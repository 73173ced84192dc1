package master

import (
	"slices"
	"time"

	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// The pure decisions of the job engine: what a part's outcome is, what a
// job's aggregate status is, which peels to send a job to again, when a part
// is complete. They read and change only the values passed in (no NATS, no
// engine lock), so the state machine is tested alone (jobs_decide_test.go);
// the engine holds je.mu around the calls that touch a tracker.

// The state of one expected peel in a tracker.
const (
	peelWaiting byte = iota // no return counted yet
	peelOK                  // returned, success
	peelFailed              // returned, failure
)

// tracker counts the returns of one part against its expected peels. It is
// compact, so that a master can count the returns of every part of a job,
// not only those it owns (a shadow count, which makes a failover need no
// rescan): the expected ids (sorted, shared with the part record when they
// arrive sorted) and one byte a peel. A peel is found by binary search.
type tracker struct {
	ids      []string // expected peels, sorted, unique
	state    []byte   // per id: peelWaiting, peelOK, peelFailed
	returned int      // ids not waiting
	failed   int      // ids failed
	extra    int      // returns from peels not expected
	rev      uint64
	finished bool
	writing  bool
	// sent is when (Unix ns) this master last sent the job to every peel
	// of the part that may not have it, with presence then as sentMark;
	// 0 until it has (an adopted part): its next redispatch goes to every
	// waiting peel (presence.resendTo).
	sent     int64
	sentMark presenceMark
}

// newTracker counts the returns of a part that expects ids. Parts list
// their ids sorted (the index resolves them so); ids that are not are
// sorted (and duplicates dropped) in a copy.
func newTracker(ids []string, rev uint64) *tracker {
	if !sortedUnique(ids) {
		ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	}
	return &tracker{ids: ids, state: make([]byte, len(ids)), rev: rev}
}

func sortedUnique(ids []string) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			return false
		}
	}
	return true
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
	i, exp := slices.BinarySearch(tr.ids, peel)
	if !exp {
		tr.extra++
		return returnUnexpected
	}
	if tr.state[i] != peelWaiting {
		return returnIgnored
	}
	tr.state[i] = peelFailed
	if ok {
		tr.state[i] = peelOK
	} else {
		tr.failed++
	}
	tr.returned++
	return returnNew
}

// has reports whether peel's return was counted, and its success.
func (tr *tracker) has(peel string) (returned, ok bool) {
	i, exp := slices.BinarySearch(tr.ids, peel)
	if !exp || tr.state[i] == peelWaiting {
		return false, false
	}
	return true, tr.state[i] == peelOK
}

// complete: every expected peel has returned, and no write of the part is
// under way (the writer looks again when it is done), so the part can be
// finished now rather than at the deadline.
func (tr *tracker) complete() bool {
	return !tr.writing && !tr.finished && tr.returned == len(tr.ids)
}

// missing lists, sorted, the expected peels that have not returned: whom to
// send the job to again, and, at the end, whom the part calls missing.
// Sorted because peels look themselves up in a dispatch by binary search.
func (tr *tracker) missing() []string {
	var out []string
	for i, st := range tr.state {
		if st == peelWaiting {
			out = append(out, tr.ids[i])
		}
	}
	return out
}

// held is the returns of a job that came before this master knew the part
// of their partition (its jobs watch may lag behind its returns consumer):
// peel → success, the first return of each peel. They are counted once a
// tracker of that part exists (fold).
type held map[string]bool

// hold keeps a return for later; the first return of a peel counts.
func (h held) hold(peel string, ok bool) {
	if _, dup := h[peel]; !dup {
		h[peel] = ok
	}
}

// fold counts the held returns into tr; it reports how many were new.
func (tr *tracker) fold(h held) int {
	n := 0
	for peel, ok := range h {
		if tr.record(peel, ok) == returnNew {
			n++
		}
	}
	return n
}

// adoptTracker is the tracker a master takes a running part over with, and
// whether it must read the job's stored returns again (rescan) before its
// counts can be trusted. covered: its returns consumer has handed on every
// return the job ever had (the job became known through the live jobs
// watch, which starts after the returns consumer, and no return of it came
// while the job was unknown). shadow is its count of the part while another
// master owned it (nil if none), held the returns of the partition that
// came before any tracker of it; expected and rev are the part as read now.
//
// Covered, the shadow count (or a new one with the held returns) is
// complete up to the consumer's position and later returns reach it live:
// no rescan. Not covered, returns stored before this master counted them may
// be missing: the counts start from what it has and a rescan adds the rest
// (a peel's first return counts, so nothing is counted twice).
func adoptTracker(covered bool, shadow *tracker, expected []string, rev uint64, h held) (tr *tracker, rescan bool) {
	tr = newTracker(expected, rev)
	if shadow != nil && !shadow.finished && slices.Equal(shadow.ids, tr.ids) {
		tr = shadow // counted against the same expected set
	}
	tr.rev, tr.writing, tr.finished = rev, false, false
	tr.fold(h)
	return tr, !covered
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
	part.Returned, part.Failed = tr.returned, tr.failed
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
