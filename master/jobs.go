package master

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// dispatchChunk bounds the ids in one Dispatch message.
const dispatchChunk = 2000

// jobEngine resolves, dispatches and aggregates jobs for the partitions this
// master owns.
//
// A job is a main record `<jid>` in the jobs bucket plus one part
// `<jid>.p<N>` per partition. The owner of partition N resolves the target
// against its index, creates the part (Create: only one master can win) with
// the exact expected peels, publishes the job to the partition and counts the
// returns. It finishes the part (compare-and-set on the part's revision) when
// every expected peel returned or at the deadline. The owner of the job's
// coordinator partition (hash of the jid) moves the main record pending →
// running → done | partial | timed-out, also by compare-and-set. Any master
// may die at any point: the new owner of its partitions finds running parts
// and takes them over.
//
// Every master counts the returns of every part of the jobs it knows, in
// memory (a shadow count of the parts other masters own, one byte a peel),
// from one returns consumer that reads job-returns in order without a gap
// (kvwatch.Follow). A master that has seen the whole job that way (covered)
// takes a part over with its shadow count and no read of the store; one
// that has not (it started while the job ran) rescans the job's returns
// from job-returns, which holds at most one return per job and peel. At the
// deadline, a covered master waits until its consumer has handed on what
// the stream held then, instead of reading the job's returns again.
type jobEngine struct {
	m *Master

	mu        sync.Mutex
	jobs      map[string]*jobState
	resolving map[string]bool // "<jid>/<p>"
	started   bool
	// unknown holds the jids of returns that came while their job was not
	// known here (not yet applied from the jobs watch, or already dropped as
	// final): such a job, if it becomes known, is not covered. Pruned by age.
	unknown     map[string]time.Time
	unknownScan time.Time
	follower    *kvwatch.Follower // the returns consumer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type jobState struct {
	main     wire.Job
	mainRev  uint64
	haveMain bool
	expr     target.Expr
	parts    map[int]partRec
	tracked  map[int]*tracker // parts this master owns and writes
	// shadow counts the returns of running parts this master does not own;
	// held keeps those of partitions with no tracker yet.
	shadow map[int]*tracker
	held   map[int]held
	// covered: the returns consumer has handed on every return of the job
	// (see adoptTracker).
	covered bool
	timer   *time.Timer
	retry   *time.Timer
}

type partRec struct {
	part wire.JobPart
	rev  uint64
}

// unknownKeep is how long the jid of a return for an unknown job is kept.
// Longer than any job runs, so that a job it belongs to is known uncovered.
const unknownKeep = 24 * time.Hour

func newJobEngine(m *Master) *jobEngine {
	return &jobEngine{m: m, jobs: map[string]*jobState{}, resolving: map[string]bool{}, unknown: map[string]time.Time{}}
}

func newJobState(covered bool) *jobState {
	return &jobState{parts: map[int]partRec{}, tracked: map[int]*tracker{}, shadow: map[int]*tracker{}, held: map[int]held{}, covered: covered}
}

// takeHeldLocked removes and returns the held returns of partition p.
func (js *jobState) takeHeldLocked(p int) held {
	h := js.held[p]
	delete(js.held, p)
	return h
}

func (je *jobEngine) start(ctx context.Context) error {
	je.ctx, je.cancel = context.WithCancel(ctx)
	// Returns first, from now on: whatever arrives while we load is seen
	// either here or by the rescan of each adopted part.
	// Start at an explicit sequence rather than "new": when the server
	// restarts before anything was delivered, the ordered consumer is
	// recreated from its start sequence, not from "new" again, so a return
	// stored in between is not skipped.
	rs, err := je.m.js.Stream(je.ctx, names.KVStream(names.BucketJobReturns))
	if err != nil {
		return fmt.Errorf("returns stream: %w", err)
	}
	// No filter subject: the stream holds only returns, and a consumer
	// with a filter costs, at every (re)creation, a walk over every subject
	// of the stream under its lock (NumPending of a one-message-per-subject
	// stream), where one without it starting near the end costs nothing.
	cc, err := kvwatch.Follow(je.ctx, je.m.js, names.KVStream(names.BucketJobReturns), kvwatch.FollowOptions{
		Name:          names.BucketJobReturns,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		StartSeq:      rs.CachedInfo().State.LastSeq + 1,
		// Bodies too: a return counts only when its body names the peel
		// of its key (returns.go).
		OnError: je.m.watchErr(names.BucketJobReturns),
		Monitor: je.m.watches,
	}, je.onReturnMsg)
	if err != nil {
		return fmt.Errorf("returns consumer: %w", err)
	}
	je.follower = cc
	// Updates from now on first, then the history: main records only (one
	// key per job), and the parts of the jobs that are not final. Seven days
	// of job history then cost one entry per job at start, not 1+P.
	w, err := kvwatch.Watch(je.ctx, je.m.js, names.BucketJobs, kvwatch.Options{UpdatesOnly: true, OnError: je.m.watchErr(names.BucketJobs), Monitor: je.m.watches})
	if err != nil {
		cc.Stop()
		return err
	}
	if err := je.loadActive(); err != nil {
		w.Stop()
		cc.Stop()
		return err
	}
	je.mu.Lock()
	for jid, js := range je.jobs {
		if !js.haveMain || wire.Final(js.main.Status) {
			je.dropLocked(jid)
		}
	}
	je.started = true
	active := slices.Collect(maps.Keys(je.jobs))
	je.mu.Unlock()
	for _, jid := range active {
		je.kick(jid)
	}
	je.wg.Add(1)
	go func() {
		defer je.wg.Done()
		defer cc.Stop()
		defer w.Stop()
		w.Each(je.ctx, func(e kvwatch.KeyValueEntry) {
			if jid := je.apply(e); jid != "" {
				je.kick(jid)
			}
		})
	}()
	return nil
}

// loadActive reads the main records and the parts of non-final jobs.
func (je *jobEngine) loadActive() error {
	mains, err := kvwatch.Watch(je.ctx, je.m.js, names.BucketJobs, kvwatch.Options{Filters: []string{"*"}})
	if err != nil {
		return err
	}
	var active []string
	err = mains.Current(je.ctx, func(e kvwatch.KeyValueEntry) {
		if jid := je.apply(e); jid != "" {
			active = append(active, jid)
		}
	})
	mains.Stop()
	if err != nil {
		return err
	}
	for _, jid := range active {
		je.mu.Lock()
		js := je.jobs[jid]
		final := js == nil || wire.Final(js.main.Status)
		je.mu.Unlock()
		if final {
			continue
		}
		pw, err := kvwatch.Watch(je.ctx, je.m.js, names.BucketJobs, kvwatch.Options{Filters: []string{names.JobPartFilter(jid)}})
		if err != nil {
			return err
		}
		err = pw.Current(je.ctx, func(e kvwatch.KeyValueEntry) { je.apply(e) })
		pw.Stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func (je *jobEngine) stop() {
	if je.cancel != nil {
		je.cancel()
	}
	je.wg.Wait()
	je.mu.Lock()
	for jid := range je.jobs {
		je.dropLocked(jid)
	}
	je.mu.Unlock()
}

func (je *jobEngine) activeCount() int {
	je.mu.Lock()
	defer je.mu.Unlock()
	return len(je.jobs)
}

func (je *jobEngine) dropLocked(jid string) {
	if js := je.jobs[jid]; js != nil {
		if js.timer != nil {
			js.timer.Stop()
		}
		if js.retry != nil {
			js.retry.Stop()
		}
	}
	delete(je.jobs, jid)
}

// apply records one jobs-bucket entry and returns the jid to act on.
func (je *jobEngine) apply(e kvwatch.KeyValueEntry) string {
	jid, p, isPart, ok := names.ParseJobKey(e.Key())
	if !ok {
		return ""
	}
	je.mu.Lock()
	defer je.mu.Unlock()
	js := je.jobs[jid]
	if e.Operation() != jetstream.KeyValuePut {
		if !isPart {
			je.dropLocked(jid)
		}
		return ""
	}
	if js == nil {
		if je.started && isPart {
			return "" // a part of a job we already dropped as final
		}
		// Known from the live watch (after start): every return of the
		// job comes after the returns consumer began, unless one already
		// came while the job was unknown here.
		_, early := je.unknown[jid]
		js = newJobState(je.started && !early)
		je.jobs[jid] = js
	}
	if isPart {
		var part wire.JobPart
		if err := json.Unmarshal(e.Value(), &part); err != nil {
			je.m.met.errors.Inc()
			je.m.log.Warn("corrupt job part", "key", e.Key(), "err", err)
			return ""
		}
		if cur, ok := js.parts[p]; !ok || cur.rev < e.Revision() {
			js.parts[p] = partRec{part: part, rev: e.Revision()}
		}
		if wire.Final(part.Status) {
			if tr := js.tracked[p]; tr != nil && !tr.writing {
				delete(js.tracked, p)
			}
			delete(js.shadow, p)
			delete(js.held, p)
		} else if js.tracked[p] == nil && js.shadow[p] == nil {
			// Another master's part (or ours before we track it): count
			// its returns alongside, so that taking it over needs no
			// rescan.
			tr := newTracker(part.Expected, e.Revision())
			tr.fold(js.takeHeldLocked(p))
			js.shadow[p] = tr
		}
		return jid
	}
	var job wire.Job
	if err := json.Unmarshal(e.Value(), &job); err != nil {
		je.m.met.errors.Inc()
		je.m.log.Warn("corrupt job record", "key", e.Key(), "err", err)
		return ""
	}
	if js.haveMain && js.mainRev >= e.Revision() {
		// Our own write coming back through the watch.
		if je.started && wire.Final(js.main.Status) {
			je.dropLocked(jid)
			return ""
		}
		return jid
	}
	js.main, js.mainRev, js.haveMain = job, e.Revision(), true
	if je.started && wire.Final(job.Status) {
		je.dropLocked(jid)
		return ""
	}
	return jid
}

// kick looks at one job and starts whatever this master owes it.
func (je *jobEngine) kick(jid string) {
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil || !js.haveMain || !je.started || wire.Final(js.main.Status) {
		je.mu.Unlock()
		return
	}
	if js.timer == nil {
		d := time.Until(js.main.Deadline)
		js.timer = time.AfterFunc(max(d, 0), func() { je.deadline(jid) })
		if every := js.main.Timeout.D() / 3; every >= time.Second {
			js.retry = time.AfterFunc(every, func() { je.redispatch(jid, every) })
		}
	}
	P := je.m.cfg.Partitions
	var resolve, adopt []int
	for p := 0; p < P; p++ {
		if !je.m.member.owns(p) {
			continue
		}
		rec, have := js.parts[p]
		key := jid + "/" + strconv.Itoa(p)
		switch {
		case !have && !je.resolving[key]:
			je.resolving[key] = true
			resolve = append(resolve, p)
		case have && !wire.Final(rec.part.Status) && js.tracked[p] == nil && !je.resolving[key]:
			je.resolving[key] = true
			adopt = append(adopt, p)
		}
	}
	coord := je.m.member.owns(shard.Coordinator(jid, P))
	je.mu.Unlock()

	if len(resolve) > 0 {
		je.goDo(func() { je.resolve(jid, resolve) })
	}
	if len(adopt) > 0 {
		je.goDo(func() { je.adopt(jid, adopt) })
	}
	if coord {
		je.reconcile(jid)
	}
}

func (je *jobEngine) goDo(f func()) {
	je.wg.Add(1)
	go func() {
		defer je.wg.Done()
		f()
	}()
}

// ownershipChanged adopts the running parts of gained partitions and drops
// the trackers of lost ones.
func (je *jobEngine) ownershipChanged(gained, lost []int) {
	je.mu.Lock()
	if !je.started {
		je.mu.Unlock()
		return
	}
	for _, js := range je.jobs {
		for _, p := range lost {
			// Keep counting: the partition may come back.
			if tr := js.tracked[p]; tr != nil && !tr.finished {
				js.shadow[p] = tr
			}
			delete(js.tracked, p)
		}
	}
	jids := slices.Collect(maps.Keys(je.jobs))
	je.mu.Unlock()
	for _, jid := range jids {
		je.kick(jid)
	}
}

func (je *jobEngine) parsedTarget(js *jobState) (target.Expr, error) {
	if js.expr != nil {
		return js.expr, nil
	}
	e, err := target.Parse(target.Kind(js.main.Target.Kind), js.main.Target.Expr, target.Options{Nodegroups: je.m.cfg.Nodegroups})
	if err != nil {
		return nil, err
	}
	js.expr = e
	return e, nil
}
