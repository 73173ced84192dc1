package master

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// The end of a job: the deadline, finishing a part with compare-and-set, the
// coordinator moving the main record forward, and the job-events audit log.

func (je *jobEngine) deadline(jid string) {
	je.mu.Lock()
	js := je.jobs[jid]
	var parts []int
	covered := false
	if js != nil {
		parts = unfinishedParts(js.tracked)
		covered = js.covered
	}
	je.mu.Unlock()
	if len(parts) > 0 {
		// Last look before calling anyone missing: a return may have been
		// stored and not yet handed on (this master was cut off, or its
		// consumer lags). Covered, it is enough that the returns consumer
		// has caught up with what the stream held now (waiting while it
		// makes progress); otherwise, or when it stalls, read the job's
		// returns again.
		ctx, cancel := context.WithTimeout(je.ctx, 30*time.Second)
		if !covered || !je.caughtUp(ctx, 5*time.Second) {
			je.rescan(ctx, jid)
		}
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

// caughtUp waits until the returns consumer has handed on every message
// job-returns holds now, for as long as ctx allows and the consumer makes
// progress: reading the job again would read the same returns from further
// behind. It reports false when that could not be seen: the stream did not
// answer, ctx ended, or the consumer handed nothing on for stall (blind).
func (je *jobEngine) caughtUp(ctx context.Context, stall time.Duration) bool {
	actx, cancel := context.WithTimeout(ctx, writeAttempt)
	s, err := je.m.js.Stream(actx, names.KVStream(names.BucketJobReturns))
	cancel()
	if err != nil {
		return false
	}
	target := s.CachedInfo().State.LastSeq
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, since := je.follower.Handled(), time.Now()
	for last < target {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if h := je.follower.Handled(); h != last {
			last, since = h, time.Now()
		} else if time.Since(since) > stall {
			return false
		}
	}
	return true
}

// finishPart writes a part's outcome with compare-and-set.
func (je *jobEngine) finishPart(jid string, p int, deadline bool) {
	for attempt := 0; attempt < 3; attempt++ {
		je.mu.Lock()
		js, tr := je.trackedLocked(jid, p)
		if tr == nil {
			je.mu.Unlock()
			return
		}
		rec, have := js.parts[p]
		if tr.finished || tr.writing || !have {
			je.mu.Unlock()
			return
		}
		if !deadline && tr.returned < len(tr.ids) {
			je.mu.Unlock()
			return
		}
		tr.writing = true
		part := partOutcome(rec.part, tr, je.m.cfg.ID, time.Now())
		rev := tr.rev
		je.mu.Unlock()

		b, _ := json.Marshal(part)
		ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
		newRev, err := putOwn(ctx, je.m.nc, je.m.kvJobs, names.JobPartKey(jid, p), b, rev)
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
	parts := make(map[int]wire.JobPart, len(js.parts))
	for p, rec := range js.parts {
		parts[p] = rec.part
	}
	je.mu.Unlock()

	next, write := reconcileJob(main, parts, P, time.Now())
	if !write {
		return
	}
	b, _ := json.Marshal(next)
	ctx, cancel := context.WithTimeout(je.ctx, writeWithin)
	defer cancel()
	newRev, err := putOwn(ctx, je.m.nc, je.m.kvJobs, names.JobKey(jid), b, rev)
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
