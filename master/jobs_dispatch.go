package master

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvleader"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/wire"
)

// The dispatch side of the job engine: resolving a job against the fact
// index, creating the parts of owned partitions, publishing the job to their
// peels, adopting the parts of partitions gained, and re-sending to peels
// that have not answered.

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
	// Presence first: a partition this master just gained waits
	// (takeover_grace at most) until its peels were heard, so that nobody
	// up is called offline. The partitions warm up together, so this costs
	// one grace at most, not one per partition.
	je.m.presence.waitWarm(je.ctx, parts)
	// Parts are independent: create and dispatch them in parallel, so the
	// last partition does not wait for the round trips of all the others.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []int
	for _, p := range parts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var ids, offline []string
			if err == nil {
				targeted := je.m.index.resolve(p, expr)
				// Split again until silence is proof (bounded: one
				// beat interval after the grace at most).
				var wait time.Duration
				for ids, offline, wait = je.m.presence.split(p, targeted); wait > 0 && je.ctx.Err() == nil; ids, offline, wait = je.m.presence.split(p, targeted) {
					select {
					case <-time.After(wait):
					case <-je.ctx.Done():
					}
				}
			}
			if !je.createPart(jid, main, p, ids, offline, dispatchToAll(main.Target, err == nil, len(offline))) {
				mu.Lock()
				refused = append(refused, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(refused) > 0 {
		// A part whose create failed may exist all the same: another
		// master's (the partition moved while both resolved), or ours from
		// a write that timed out and committed after all. Its watch entry
		// may have come while we resolved, when kick leaves a resolving
		// part alone, so nothing else would track it or send it to its
		// peels before the deadline: adopt them now (one rescan for all),
		// still under our resolving marks, which adopt clears.
		je.adopt(jid, refused)
	}
}

// createPart records partition p's part: ids are the targeted peels online
// now, which the part expects; offline the targeted ones that are not, which
// it lists and neither dispatches to nor waits for. It reports false when
// the part could not be created, leaving its resolving mark for the caller.
func (je *jobEngine) createPart(jid string, main wire.Job, p int, ids, offline []string, all bool) (created bool) {
	key := jid + "/" + strconv.Itoa(p)
	defer func() {
		if created {
			je.mu.Lock()
			delete(je.resolving, key)
			je.mu.Unlock()
		}
	}()
	part := newPart(jid, p, je.m.cfg.ID, ids, offline, time.Now())
	b, _ := json.Marshal(part)
	ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
	defer cancel()
	// Track before the part exists so that no return can slip past.
	var tr *tracker
	if len(ids) > 0 {
		tr = newTracker(ids, 0)
		tr.writing = true
		je.mu.Lock()
		if js := je.jobs[jid]; js != nil {
			js.tracked[p] = tr
			tr.fold(js.takeHeldLocked(p))
		}
		je.mu.Unlock()
	}
	rev, err := putOwn(ctx, je.m.nc, je.m.kvJobs, names.JobPartKey(jid, p), b, 0)
	je.mu.Lock()
	js := je.jobs[jid]
	if err != nil {
		// tr is nil for a part that expects nobody (all offline): nothing
		// was tracked, and nothing is kept.
		if tr != nil && js != nil && js.tracked[p] == tr {
			delete(js.tracked, p)
			// What it counted is kept: the adoption that follows uses it
			// if the stored part expects the same peels (our write that
			// timed out and committed after all).
			tr.writing = false
			if js.shadow[p] == nil {
				js.shadow[p] = tr
			}
		}
		je.mu.Unlock()
		if !errors.Is(err, jetstream.ErrKeyExists) && je.ctx.Err() == nil {
			je.m.met.errors.Inc()
			je.m.log.Warn("create job part", "jid", jid, "partition", p, "err", err)
		}
		return false
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
			return true
		}
		at, mark := time.Now().UnixNano(), je.m.presence.mark(p)
		if je.dispatch(jid, main, p, ids, all) && tr != nil {
			je.mu.Lock()
			tr.sent, tr.sentMark = at, mark
			je.mu.Unlock()
		}
		je.checkPart(jid, p)
	}
	return true
}

// dispatch publishes the job to the peels of partition p; false when a
// publish failed (some of ids may not have it).
func (je *jobEngine) dispatch(jid string, main wire.Job, p int, ids []string, all bool) bool {
	subj := names.JobSubject(p)
	ok := true
	send := func(d wire.Dispatch) {
		b, _ := json.Marshal(d)
		if err := je.m.nc.PublishMsg(je.m.signed(sig.Dispatch, subj, b)); err != nil {
			ok = false
			je.m.met.errors.Inc()
			je.m.log.Warn("dispatch", "jid", jid, "partition", p, "err", err)
		}
	}
	d := wire.Dispatch{JID: jid, Function: main.Function, Args: main.Args, Deadline: main.Deadline, StateTree: main.StateTree}
	if main.RequesterKey != "" {
		d.Role = main.RequesterRole // verified: insecure mode records no key
	}
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
	return ok
}

// adopt takes over the running parts of partitions this master gained: it
// loads their expected sets and takes its shadow counts of them; unless the
// job is covered (adoptTracker) it then rescans the job's stored returns
// once for all of them; then it sends the job again to whoever has not
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
	rescan := false
	for _, p := range parts {
		// Not a bare direct get: a replica that lags (catching up after a
		// restart) answers it with "not found", and the part would be left
		// unadopted. kvleader.Read asks the stream leader then.
		e, err := kvleader.Read(ctx, je.m.nc, je.m.kvJobs, names.JobPartKey(jid, p))
		if err != nil {
			continue
		}
		var part wire.JobPart
		if json.Unmarshal(e.Value, &part) != nil || wire.Final(part.Status) {
			continue
		}
		je.mu.Lock()
		js := je.jobs[jid]
		if js == nil || js.tracked[p] != nil || !je.m.member.owns(p) {
			je.mu.Unlock()
			continue
		}
		tr, again := adoptTracker(js.covered, js.shadow[p], part.Expected, e.Revision, js.takeHeldLocked(p))
		delete(js.shadow, p)
		js.tracked[p] = tr
		if cur, ok := js.parts[p]; !ok || cur.rev < e.Revision {
			js.parts[p] = partRec{part: part, rev: e.Revision}
		}
		je.mu.Unlock()
		rescan = rescan || again
		adopted = append(adopted, p)
	}
	if len(adopted) == 0 {
		return
	}
	je.m.met.adopted.Add(len(adopted))
	if rescan {
		je.rescan(ctx, jid)
	}
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
	parts := unfinishedParts(js.tracked)
	if time.Until(js.main.Deadline) > every {
		js.retry = time.AfterFunc(every, func() { je.redispatch(jid, every) })
	}
	je.mu.Unlock()
	for _, p := range parts {
		je.dispatchMissing(jid, p)
	}
}

// dispatchMissing publishes the job again to the peels of partition p that
// are expected, have not returned, and may not have it: once this master
// has sent the part to all of them, only those that reconnected (or
// restarted) since, as presence heard it (presence.resendTo). A peel that
// runs a long job is not sent it again at every interval: at 1,000,000
// peels resending every waiting id to every peel of a partition cost more
// than the job.
func (je *jobEngine) dispatchMissing(jid string, p int) {
	je.mu.Lock()
	js, tr := je.trackedLocked(jid, p)
	if tr == nil || tr.finished {
		je.mu.Unlock()
		return
	}
	missing := tr.missing()
	main, sent, mark := js.main, tr.sent, tr.sentMark
	je.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	// The new reference is taken before the look: whatever presence loses
	// from here on shows at the next round as a change (then everyone).
	at, now := time.Now().UnixNano(), je.m.presence.mark(p)
	to := je.m.presence.resendTo(p, missing, sent, mark)
	je.m.met.redispatchSkipped.Add(len(missing) - len(to))
	ok := true
	if len(to) > 0 {
		je.m.met.redispatched.Add(len(to))
		ok = je.dispatch(jid, main, p, to, false)
	}
	if ok {
		// Everyone waiting has it as of at: the next round looks at
		// connections heard from then on.
		je.mu.Lock()
		if cur := js.tracked[p]; cur == tr {
			tr.sent, tr.sentMark = at, now
		}
		je.mu.Unlock()
	}
}
