package master

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// The returns side of the job engine: counting the returns stored in
// job-returns against each part's expected peels, from the live consumer and
// from rescans.

// rescan reads every stored return of a job.
func (je *jobEngine) rescan(ctx context.Context, jid string) {
	je.m.met.rescans.Inc()
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
	if op := h.Get(names.HeaderKVOperation); op == names.KVOpDelete || op == names.KVOpPurge {
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
		je.unknownLocked(jid, time.Now())
		je.mu.Unlock()
		return
	}
	tr := js.tracked[p]
	owned := tr != nil
	if tr == nil {
		tr = js.shadow[p]
	}
	if tr == nil {
		// The part of this partition is not known here yet (or is final:
		// then nobody asks for these).
		if rec, have := js.parts[p]; !have || !wire.Final(rec.part.Status) {
			if js.held[p] == nil {
				js.held[p] = held{}
			}
			js.held[p].hold(peel, ok)
		}
		je.mu.Unlock()
		return
	}
	if tr.record(peel, ok) != returnNew || !owned {
		je.mu.Unlock()
		return
	}
	complete := tr.complete()
	je.mu.Unlock()
	je.m.met.returns.Inc()
	if complete {
		je.goDo(func() { je.finishPart(jid, p, false) })
	}
}

// unknownLocked notes a return of a job not known here, at now: that job,
// should it become known, has had a return this master did not count.
// Entries older than unknownKeep are pruned (at most once a minute).
func (je *jobEngine) unknownLocked(jid string, now time.Time) {
	if _, ok := je.unknown[jid]; !ok {
		je.unknown[jid] = now
	}
	if now.Sub(je.unknownScan) < time.Minute {
		return
	}
	je.unknownScan = now
	for k, at := range je.unknown {
		if now.Sub(at) > unknownKeep {
			delete(je.unknown, k)
		}
	}
}

// trackedLocked is job jid's state and the tracker of its partition p, the
// tracker nil when this master does not own and track that part (the job nil
// too when it is not loaded). Call with je.mu held.
func (je *jobEngine) trackedLocked(jid string, p int) (*jobState, *tracker) {
	js := je.jobs[jid]
	if js == nil {
		return nil, nil
	}
	return js, js.tracked[p]
}

func (je *jobEngine) checkPart(jid string, p int) {
	je.mu.Lock()
	_, tr := je.trackedLocked(jid, p)
	done := tr != nil && tr.complete()
	je.mu.Unlock()
	if done {
		je.finishPart(jid, p, false)
	}
}
