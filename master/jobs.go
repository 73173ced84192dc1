package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/sig"
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
// and rescans their returns from job-returns, which holds at most one return
// per job and peel.
type jobEngine struct {
	m *Master

	mu        sync.Mutex
	jobs      map[string]*jobState
	resolving map[string]bool // "<jid>/<p>"
	started   bool

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
	tracked  map[int]*tracker
	timer    *time.Timer
	retry    *time.Timer
}

type partRec struct {
	part wire.JobPart
	rev  uint64
}

type tracker struct {
	expected map[string]struct{}
	returned map[string]bool // id → success
	extra    int             // returns from peels not expected
	rev      uint64
	finished bool
	writing  bool
}

func newJobEngine(m *Master) *jobEngine {
	return &jobEngine{m: m, jobs: map[string]*jobState{}, resolving: map[string]bool{}}
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
	cc, err := kvwatch.Follow(je.ctx, je.m.js, names.KVStream(names.BucketJobReturns), kvwatch.FollowOptions{
		Name:          names.BucketJobReturns,
		Subjects:      []string{names.ReturnSubjectPrefix + ">"},
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
	active := make([]string, 0, len(je.jobs))
	for jid := range je.jobs {
		active = append(active, jid)
	}
	je.mu.Unlock()
	for _, jid := range active {
		je.kick(jid)
	}
	je.wg.Add(1)
	go func() {
		defer je.wg.Done()
		defer cc.Stop()
		defer w.Stop()
		for {
			select {
			case <-je.ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				if jid := je.apply(e); jid != "" {
					je.kick(jid)
				}
			}
		}
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
	for e := range mains.Updates() {
		if e == nil {
			break
		}
		if jid := je.apply(e); jid != "" {
			active = append(active, jid)
		}
	}
	mains.Stop()
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
		for e := range pw.Updates() {
			if e == nil {
				break
			}
			je.apply(e)
		}
		pw.Stop()
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

// splitJobKey tells a main key `<jid>` from a part key `<jid>.p<N>`.
func splitJobKey(key string) (jid string, part int, isPart bool, ok bool) {
	jid, rest, found := strings.Cut(key, ".")
	if !found {
		return key, 0, false, key != ""
	}
	n, err := strconv.Atoi(strings.TrimPrefix(rest, "p"))
	if err != nil || !strings.HasPrefix(rest, "p") {
		return "", 0, false, false
	}
	return jid, n, true, true
}

// apply records one jobs-bucket entry and returns the jid to act on.
func (je *jobEngine) apply(e kvwatch.KeyValueEntry) string {
	jid, p, isPart, ok := splitJobKey(e.Key())
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
		js = &jobState{parts: map[int]partRec{}, tracked: map[int]*tracker{}}
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

func coordinatorPartition(jid string, p int) int {
	h := fnv.New32a()
	h.Write([]byte(jid))
	return int(h.Sum32() % uint32(p))
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
	coord := je.m.member.owns(coordinatorPartition(jid, P))
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
			delete(js.tracked, p)
		}
	}
	jids := make([]string, 0, len(je.jobs))
	for jid := range je.jobs {
		jids = append(jids, jid)
	}
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

// resolve creates and dispatches the parts of owned partitions that have none.
func (je *jobEngine) resolve(jid string, parts []int) {
	select {
	case <-je.m.index.loaded:
	case <-je.ctx.Done():
		return
	}
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil {
		for _, p := range parts {
			delete(je.resolving, jid+"/"+strconv.Itoa(p))
		}
		je.mu.Unlock()
		return
	}
	main := js.main
	expr, err := je.parsedTarget(js)
	je.mu.Unlock()
	all := err == nil && (main.Target.Kind == "" || main.Target.Kind == string(target.KindGlob)) && main.Target.Expr == "*"
	// Presence first: a partition this master just gained waits
	// (takeover_grace at most) until its peels were heard, so that nobody
	// up is called offline. The partitions warm up together, so this costs
	// one grace at most, not one per partition.
	je.m.presence.waitWarm(je.ctx, parts)
	// Parts are independent: create and dispatch them in parallel, so the
	// last partition does not wait for the round trips of all the others.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, p := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var ids, offline []string
			if err == nil {
				targeted := je.m.index.resolve(p, expr)
				var wait time.Duration
				ids, offline, wait = je.m.presence.split(p, targeted)
				if wait > 0 {
					select {
					case <-time.After(wait):
					case <-je.ctx.Done():
					}
					ids, offline, _ = je.m.presence.split(p, targeted)
				}
			}
			// "all" lets every peel of the partition take the job; with
			// peels offline it must name the others, or a peel coming back
			// would run a job that lists it as offline.
			je.createPart(jid, main, p, ids, offline, all && len(offline) == 0)
		}()
	}
	wg.Wait()
}

// createPart records partition p's part: ids are the targeted peels online
// now, which the part expects; offline the targeted ones that are not, which
// it lists and neither dispatches to nor waits for.
func (je *jobEngine) createPart(jid string, main wire.Job, p int, ids, offline []string, all bool) {
	key := jid + "/" + strconv.Itoa(p)
	defer func() {
		je.mu.Lock()
		delete(je.resolving, key)
		je.mu.Unlock()
	}()
	part := wire.JobPart{JID: jid, Partition: p, Master: je.m.cfg.ID, Expected: ids, Status: wire.StatusRunning, Offline: offline}
	if len(ids) == 0 {
		part.Expected = []string{}
		part.Status = wire.StatusDone
		part.Finished = time.Now().UTC()
	}
	b, _ := json.Marshal(part)
	ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
	defer cancel()
	// Track before the part exists so that no return can slip past.
	var tr *tracker
	if len(ids) > 0 {
		tr = &tracker{expected: make(map[string]struct{}, len(ids)), returned: map[string]bool{}, writing: true}
		for _, id := range ids {
			tr.expected[id] = struct{}{}
		}
		je.mu.Lock()
		if js := je.jobs[jid]; js != nil {
			js.tracked[p] = tr
		}
		je.mu.Unlock()
	}
	rev, err := putOwn(ctx, je.m.kvJobs, names.JobPartKey(jid, p), b, 0)
	je.mu.Lock()
	js := je.jobs[jid]
	if err != nil {
		if js != nil && js.tracked[p] == tr {
			delete(js.tracked, p)
		}
		je.mu.Unlock()
		if !errors.Is(err, jetstream.ErrKeyExists) && je.ctx.Err() == nil {
			je.m.met.errors.Inc()
			je.m.log.Warn("create job part", "jid", jid, "partition", p, "err", err)
		}
		return
	}
	if js != nil {
		if cur, ok := js.parts[p]; !ok || cur.rev < rev {
			js.parts[p] = partRec{part: part, rev: rev}
		}
		if tr != nil {
			tr.rev = rev
			tr.writing = false
		}
	}
	je.mu.Unlock()
	if len(ids) > 0 {
		if time.Now().After(main.Deadline) {
			// Resolved after the deadline (its owner died before resolving):
			// nobody can answer in time any more.
			je.finishPart(jid, p, true)
			return
		}
		je.dispatch(jid, main, p, ids, all)
		je.checkPart(jid, p)
	}
}

// dispatch publishes the job to the peels of partition p.
func (je *jobEngine) dispatch(jid string, main wire.Job, p int, ids []string, all bool) {
	subj := names.JobSubject(p)
	send := func(d wire.Dispatch) {
		b, _ := json.Marshal(d)
		if err := je.m.nc.PublishMsg(je.m.signed(sig.Dispatch, subj, b)); err != nil {
			je.m.met.errors.Inc()
			je.m.log.Warn("dispatch", "jid", jid, "partition", p, "err", err)
		}
	}
	d := wire.Dispatch{JID: jid, Function: main.Function, Args: main.Args, Deadline: main.Deadline}
	if all {
		d.All = true
		send(d)
	} else {
		for i := 0; i < len(ids); i += dispatchChunk {
			d.Peels = ids[i:min(i+dispatchChunk, len(ids))]
			send(d)
		}
	}
	je.m.met.dispatched.Add(len(ids))
}

// adopt takes over the running parts of partitions this master gained: it
// loads their expected sets, then rescans the job's stored returns once for
// all of them (headers only), then sends the job again to whoever has not
// answered (the master that died may have created a part without publishing
// it).
func (je *jobEngine) adopt(jid string, parts []int) {
	defer func() {
		je.mu.Lock()
		for _, p := range parts {
			delete(je.resolving, jid+"/"+strconv.Itoa(p))
		}
		je.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(je.ctx, 30*time.Second)
	defer cancel()
	var adopted []int
	for _, p := range parts {
		e, err := je.m.kvJobs.Get(ctx, names.JobPartKey(jid, p))
		if err != nil {
			continue
		}
		var part wire.JobPart
		if json.Unmarshal(e.Value(), &part) != nil || wire.Final(part.Status) {
			continue
		}
		tr := &tracker{expected: make(map[string]struct{}, len(part.Expected)), returned: map[string]bool{}, rev: e.Revision()}
		for _, id := range part.Expected {
			tr.expected[id] = struct{}{}
		}
		je.mu.Lock()
		js := je.jobs[jid]
		if js == nil || js.tracked[p] != nil || !je.m.member.owns(p) {
			je.mu.Unlock()
			continue
		}
		js.tracked[p] = tr
		if cur, ok := js.parts[p]; !ok || cur.rev < e.Revision() {
			js.parts[p] = partRec{part: part, rev: e.Revision()}
		}
		je.mu.Unlock()
		adopted = append(adopted, p)
	}
	if len(adopted) == 0 {
		return
	}
	je.m.met.adopted.Add(len(adopted))
	je.rescan(ctx, jid)
	je.mu.Lock()
	var deadline time.Time
	if js := je.jobs[jid]; js != nil {
		deadline = js.main.Deadline
	}
	je.mu.Unlock()
	for _, p := range adopted {
		je.checkPart(jid, p)
		if !deadline.IsZero() && time.Now().After(deadline) {
			// Adopted after the job's deadline timer fired: finish it now.
			je.finishPart(jid, p, true)
			continue
		}
		je.dispatchMissing(jid, p)
	}
}

// redispatch sends the job again to the expected peels that have not
// answered yet, every interval until the deadline: a peel that was cut off
// when the job went out gets it when it is back. Peels run a job once
// whatever the number of deliveries.
func (je *jobEngine) redispatch(jid string, every time.Duration) {
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil {
		je.mu.Unlock()
		return
	}
	var parts []int
	for p, tr := range js.tracked {
		if !tr.finished {
			parts = append(parts, p)
		}
	}
	if time.Until(js.main.Deadline) > every {
		js.retry = time.AfterFunc(every, func() { je.redispatch(jid, every) })
	}
	je.mu.Unlock()
	for _, p := range parts {
		je.dispatchMissing(jid, p)
	}
}

// dispatchMissing publishes the job to the peels of partition p that are
// expected and have not returned.
func (je *jobEngine) dispatchMissing(jid string, p int) {
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil || js.tracked[p] == nil || js.tracked[p].finished {
		je.mu.Unlock()
		return
	}
	tr := js.tracked[p]
	var missing []string
	for id := range tr.expected {
		if _, ok := tr.returned[id]; !ok {
			missing = append(missing, id)
		}
	}
	main := js.main
	je.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	sort.Strings(missing) // peels look themselves up by binary search
	je.m.met.redispatched.Add(len(missing))
	je.dispatch(jid, main, p, missing, false)
}

// rescan reads every stored return of a job.
func (je *jobEngine) rescan(ctx context.Context, jid string) {
	// One consumer for the whole read (replaced by its watchdog if its node
	// dies), done once it has delivered what was stored when it started.
	done := make(chan struct{})
	f, err := kvwatch.Follow(ctx, je.m.js, names.KVStream(names.BucketJobReturns), kvwatch.FollowOptions{
		Name:       names.BucketJobReturns + "-rescan",
		Subjects:   []string{names.ReturnSubjectPrefix + names.ReturnFilter(jid)},
		OnCaughtUp: func() { close(done) },
		OnError:    je.m.watchErr(names.BucketJobReturns),
		Monitor:    je.m.watches,
	}, je.onReturnMsg)
	if err != nil {
		je.m.log.Warn("rescan", "jid", jid, "err", err)
		return
	}
	defer f.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		je.m.log.Warn("rescan cut short", "jid", jid, "err", ctx.Err())
	}
}

func (je *jobEngine) onReturnMsg(msg jetstream.Msg) {
	h := msg.Headers()
	if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return
	}
	jid, peel, ok := names.ParseReturnSubject(msg.Subject())
	if !ok {
		return
	}
	success := h.Get(wire.HeaderOK) == "1"
	if reason := returnIdentity(msg.Data(), jid, peel); reason != "" {
		// The peel answered (only it can write its key), but not with a
		// return of its own: a failure, never a success.
		je.m.refuseReturn(jid, peel, reason)
		success = false
	}
	je.onReturn(jid, peel, success)
}

func (je *jobEngine) onReturn(jid, peel string, ok bool) {
	p := shard.Partition(peel, je.m.cfg.Partitions)
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil {
		je.mu.Unlock()
		return
	}
	tr := js.tracked[p]
	if tr == nil || tr.finished {
		je.mu.Unlock()
		return
	}
	if _, dup := tr.returned[peel]; dup {
		je.mu.Unlock()
		return
	}
	if _, exp := tr.expected[peel]; !exp {
		tr.extra++
		je.mu.Unlock()
		return
	}
	tr.returned[peel] = ok
	complete := len(tr.returned) == len(tr.expected) && !tr.writing
	je.mu.Unlock()
	je.m.met.returns.Inc()
	if complete {
		je.goDo(func() { je.finishPart(jid, p, false) })
	}
}

func (je *jobEngine) checkPart(jid string, p int) {
	je.mu.Lock()
	js := je.jobs[jid]
	done := false
	if js != nil {
		if tr := js.tracked[p]; tr != nil && !tr.writing && !tr.finished && len(tr.returned) == len(tr.expected) {
			done = true
		}
	}
	je.mu.Unlock()
	if done {
		je.finishPart(jid, p, false)
	}
}

func (je *jobEngine) deadline(jid string) {
	je.mu.Lock()
	js := je.jobs[jid]
	var parts []int
	if js != nil {
		for p, tr := range js.tracked {
			if !tr.finished {
				parts = append(parts, p)
			}
		}
	}
	je.mu.Unlock()
	if len(parts) > 0 {
		// Last look in the store before calling anyone missing: a return
		// may have been stored while this master was cut off.
		ctx, cancel := context.WithTimeout(je.ctx, 30*time.Second)
		je.rescan(ctx, jid)
		cancel()
	}
	for _, p := range parts {
		je.finishPart(jid, p, true)
	}
	if js != nil {
		// Let the coordinator look again once the parts are written.
		je.kick(jid)
	}
}

// finishPart writes a part's outcome with compare-and-set.
func (je *jobEngine) finishPart(jid string, p int, deadline bool) {
	for attempt := 0; attempt < 3; attempt++ {
		je.mu.Lock()
		js := je.jobs[jid]
		if js == nil {
			je.mu.Unlock()
			return
		}
		tr := js.tracked[p]
		rec, have := js.parts[p]
		if tr == nil || tr.finished || tr.writing || !have {
			je.mu.Unlock()
			return
		}
		if !deadline && len(tr.returned) < len(tr.expected) {
			je.mu.Unlock()
			return
		}
		tr.writing = true
		part := rec.part
		part.Master = je.m.cfg.ID
		part.Returned, part.Failed, part.Missing = 0, 0, nil
		for _, ok := range tr.returned {
			part.Returned++
			if !ok {
				part.Failed++
			}
		}
		for id := range tr.expected {
			if _, ok := tr.returned[id]; !ok {
				part.Missing = append(part.Missing, id)
			}
		}
		sort.Strings(part.Missing)
		switch {
		case len(part.Missing) == 0:
			part.Status = wire.StatusDone
		case part.Returned > 0:
			part.Status = wire.StatusPartial
		default:
			part.Status = wire.StatusTimedOut
		}
		part.Finished = time.Now().UTC()
		rev := tr.rev
		je.mu.Unlock()

		b, _ := json.Marshal(part)
		ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
		newRev, err := putOwn(ctx, je.m.kvJobs, names.JobPartKey(jid, p), b, rev)
		cancel()
		je.mu.Lock()
		tr.writing = false
		if err == nil {
			tr.finished = true
			if cur, ok := js.parts[p]; !ok || cur.rev < newRev {
				js.parts[p] = partRec{part: part, rev: newRev}
			}
			je.mu.Unlock()
			je.m.met.partsFinished.Inc()
			je.kick(jid)
			return
		}
		je.mu.Unlock()
		if je.ctx.Err() != nil {
			return
		}
		// Someone else wrote the part: take their revision and look again.
		ctx, cancel = context.WithTimeout(je.ctx, 5*time.Second)
		e, gerr := je.m.kvJobs.Get(ctx, names.JobPartKey(jid, p))
		cancel()
		if gerr != nil {
			return
		}
		var cur wire.JobPart
		if json.Unmarshal(e.Value(), &cur) != nil {
			return
		}
		je.mu.Lock()
		js.parts[p] = partRec{part: cur, rev: e.Revision()}
		if wire.Final(cur.Status) {
			tr.finished = true
			je.mu.Unlock()
			je.kick(jid)
			return
		}
		tr.rev = e.Revision()
		je.mu.Unlock()
	}
}

// reconcile moves the main record forward from its parts; only the owner of
// the job's coordinator partition calls it, and every write is a
// compare-and-set, so a brief disagreement between masters cannot regress a
// status.
func (je *jobEngine) reconcile(jid string) {
	P := je.m.cfg.Partitions
	je.mu.Lock()
	js := je.jobs[jid]
	if js == nil || !js.haveMain || wire.Final(js.main.Status) {
		je.mu.Unlock()
		return
	}
	main, rev := js.main, js.mainRev
	present, final := 0, 0
	expected, returned, failed, missing, offline := 0, 0, 0, 0, 0
	anyPartial := false
	for p := 0; p < P; p++ {
		rec, ok := js.parts[p]
		if !ok {
			continue
		}
		present++
		expected += len(rec.part.Expected)
		offline += len(rec.part.Offline)
		if wire.Final(rec.part.Status) {
			final++
			returned += rec.part.Returned
			failed += rec.part.Failed
			missing += len(rec.part.Missing)
			if rec.part.Status != wire.StatusDone {
				anyPartial = true
			}
		}
	}
	je.mu.Unlock()

	next := main
	switch {
	case final == P:
		next.Expected, next.Returned, next.Failed, next.Missing, next.Offline = expected, returned, failed, missing, offline
		// Offline peels are targeted peels that did not run the job: a job
		// with any is partial, like one with a peel that did not answer.
		switch {
		case !anyPartial && offline == 0:
			next.Status = wire.StatusDone
		case returned > 0:
			next.Status = wire.StatusPartial
		case missing > 0:
			next.Status = wire.StatusTimedOut
		default:
			next.Status = wire.StatusPartial // every targeted peel was offline
		}
		next.Finished = time.Now().UTC()
	case present == P && main.Status == wire.StatusPending:
		next.Status = wire.StatusRunning
		next.Expected, next.Offline = expected, offline
	default:
		return
	}
	if next.Status == main.Status && next.Expected == main.Expected && next.Offline == main.Offline {
		return
	}
	b, _ := json.Marshal(next)
	ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
	defer cancel()
	newRev, err := putOwn(ctx, je.m.kvJobs, names.JobKey(jid), b, rev)
	if err != nil {
		return // another writer won; its entry comes through the watch
	}
	je.mu.Lock()
	if js := je.jobs[jid]; js != nil && js.mainRev < newRev {
		js.main, js.mainRev = next, newRev
	}
	je.mu.Unlock()
	if wire.Final(next.Status) {
		je.m.met.jobsFinished.Inc()
		je.m.log.Info("job finished", "jid", jid, "status", next.Status, "expected", next.Expected, "returned", next.Returned, "failed", next.Failed, "missing", next.Missing, "offline", next.Offline)
	}
	je.m.event(wire.Event{JID: jid, Kind: next.Status, Status: next.Status,
		Detail: fmt.Sprintf("expected=%d returned=%d failed=%d missing=%d offline=%d", next.Expected, next.Returned, next.Failed, next.Missing, next.Offline)})
	if next.Status == wire.StatusRunning {
		// Parts may all have finished before the main went to running.
		je.reconcile(jid)
	}
}

// event appends one entry to job-events.
func (m *Master) event(ev wire.Event) {
	ev.Master = m.cfg.ID
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: names.JobEventSubject(ev.JID, ev.Kind), Data: b, Header: nats.Header{}}
	// Dedupe a transition written twice by two masters.
	msg.Header.Set(jetstream.MsgIDHeader, ev.JID+"."+ev.Kind)
	if _, err := m.js.PublishMsgAsync(msg); err != nil {
		m.met.errors.Inc()
		m.log.Warn("job event", "jid", ev.JID, "kind", ev.Kind, "err", err)
	}
}
