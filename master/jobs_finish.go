package master

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
