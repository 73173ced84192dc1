package master

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/wire"
)

// What the presence of the owned partitions answers: who is online for a
// job (split), the metrics' counts, forgetting decommissioned peels, and the
// `zester peels` report.

// split divides the sorted ids of partition p into those online and those
// offline now, both sorted. When this master does not own p it knows
// nothing and calls every peel online, the old behaviour: the job waits for
// them rather than skipping a peel that may be up.
//
// wait is non-zero while silence is not yet proof that the peels called
// offline are down (see splitPresence): split again after wait.
func (pr *presence) split(p int, ids []string) (online, offline []string, wait time.Duration) {
	pr.mu.Lock()
	pp := pr.parts[p]
	pr.mu.Unlock()
	if pp == nil {
		return ids, nil, 0
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return splitPresence(ids, pp.peels, time.Now().UnixNano(), warmUp{since: pp.since, lastNews: pr.lastNews.Load()}, pr.grace, pr.offlineAfter)
}

// warmUp is what splitPresence needs of a partition's current warm-up:
// when it began, and when the master last heard a peel that a partition
// still warming up had not heard before (Unix ns; zero: none yet).
type warmUp struct {
	since, lastNews int64
}

// splitPresence is split's decision for one partition at now (Unix ns):
// peels are its beats. A peel called offline that has not been heard since
// the warm-up began is not known to be down while its answer may still be
// on the way: before since+grace, and after it for as long as peels not
// heard before the warm-up keep coming in (a master busy with a fleet that
// reconnected at once reads the answers late: silence is proof only once
// they have stopped for settleQuiet(grace)). One default beat interval
// (offline_after/3) after the grace every peel that is up has beaten on
// its own, so silence is proof then whatever came. wait is what is left
// until the next decision (zero once silence is proof).
func splitPresence(ids []string, peels map[string]*peelBeat, now int64, w warmUp, grace, offlineAfter time.Duration) (online, offline []string, wait time.Duration) {
	online = make([]string, 0, len(ids))
	decideAt := proofAt(w, grace, offlineAfter)
	for _, id := range ids {
		e := peels[id]
		if beatOnline(e, now, offlineAfter) {
			online = append(online, id)
			continue
		}
		offline = append(offline, id)
		if now < decideAt && (e == nil || e.last < w.since) {
			wait = time.Duration(decideAt - now)
		}
	}
	return online, offline, wait
}

// proofAt is when (Unix ns) the silence of a peel not heard since the
// warm-up w began becomes proof that it is down (see splitPresence).
func proofAt(w warmUp, grace, offlineAfter time.Duration) int64 {
	graceEnd := w.since + int64(grace)
	if grace <= 0 {
		return graceEnd // takeover_grace 0: never wait
	}
	hardEnd := graceEnd + int64(offlineAfter/3)
	return min(max(graceEnd, w.lastNews+int64(settleQuiet(grace))), hardEnd)
}

// settleQuiet is how long no new peel must have been heard, after the
// grace, before the silence of the others is proof.
func settleQuiet(grace time.Duration) time.Duration {
	return max(grace/2, 100*time.Millisecond)
}

// counts sums online, offline (heard once, silent now) and flagged peels
// over the owned partitions, for the metrics.
func (pr *presence) counts() (online, offline, dup int) {
	parts := pr.owned()
	now := time.Now().UnixNano()
	for _, pp := range parts {
		pp.mu.Lock()
		for _, e := range pp.peels {
			if pr.online(e, now) {
				online++
			} else {
				offline++
			}
			if now < e.dupUntil {
				dup++
			}
		}
		pp.mu.Unlock()
	}
	return online, offline, dup
}

// forget drops peels not heard from for a day that the fact index does not
// know either (decommissioned hosts), so memory follows the fleet.
func (pr *presence) forget() {
	cut := time.Now().Add(-24 * time.Hour).UnixNano()
	parts := pr.owned()
	for _, pp := range parts {
		known := map[string]bool{}
		for _, id := range pr.m.index.ids(pp.p) {
			known[id] = true
		}
		pp.mu.Lock()
		for id, e := range pp.peels {
			if e.last < cut && !known[id] {
				delete(pp.peels, id)
			}
		}
		pp.mu.Unlock()
	}
}

// presenceChunk bounds the peels in one PresenceReply message (about
// 150 bytes each, well under the default 1 MiB payload).
const presenceChunk = 2000

// report lists every peel of the owned partitions: those in the fact index
// and those only heard beating.
func (pr *presence) report() (owned []int, peels []wire.PeelPresence) {
	owned = pr.m.member.ownedList()
	now := time.Now().UnixNano()
	for _, p := range owned {
		facts := pr.m.index.entries(p)
		pr.mu.Lock()
		pp := pr.parts[p]
		pr.mu.Unlock()
		seen := map[string]bool{}
		// A peel not heard since the warm-up began is unknown until its
		// silence is proof (splitPresence), as a job would see it.
		since, undecidedUntil := int64(0), int64(math.MaxInt64)
		if pp != nil {
			pp.mu.Lock()
			since = pp.since
			undecidedUntil = proofAt(warmUp{since: pp.since, lastNews: pr.lastNews.Load()}, pr.grace, pr.offlineAfter)
			pp.mu.Unlock()
		}
		row := func(id string, e *peelBeat) wire.PeelPresence {
			r := wire.PeelPresence{ID: id, State: wire.PresenceOffline}
			if (e == nil || e.last < since) && now < undecidedUntil {
				r.State = "" // not heard yet, and still listening: unknown
			}
			if e != nil {
				if pr.online(e, now) {
					r.State = wire.PresenceOnline
				}
				r.LastSeen = time.Unix(0, e.last).UTC()
				r.Duplicate = now < e.dupUntil
			}
			return r
		}
		if pp != nil {
			pp.mu.Lock()
		}
		for _, f := range facts {
			var e *peelBeat
			if pp != nil {
				e = pp.peels[f.id]
			}
			r := row(f.id, e)
			r.Facts = wire.FactsOK
			if f.bad != "" {
				r.Facts, r.FactsError = wire.FactsBad, f.bad
			}
			seen[f.id] = true
			peels = append(peels, r)
		}
		if pp != nil {
			for id, e := range pp.peels {
				if !seen[id] {
					peels = append(peels, row(id, e))
				}
			}
			pp.mu.Unlock()
		}
	}
	sort.Slice(peels, func(i, j int) bool { return peels[i].ID < peels[j].ID })
	return owned, peels
}

// apiPresence answers on every master (no queue group): each reports the
// partitions it owns, in chunks, and the CLI merges the answers.
func (m *Master) apiPresence(req micro.Request) {
	owned, peels := m.presence.report()
	for i := 0; ; i += presenceChunk {
		end := min(i+presenceChunk, len(peels))
		r := wire.PresenceReply{Master: m.cfg.ID, Peels: peels[i:end], Last: end == len(peels)}
		if r.Last {
			r.Owned = slices.Clip(owned)
		}
		b, _ := json.Marshal(r)
		if err := req.Respond(b); err != nil || r.Last {
			return
		}
	}
}

// resendSlack widens "the peel's connection was heard after the job went
// out": a reconnected peel subscribes before it beats, on the same
// connection, and servers pass the interest on before the beat, so a peel
// heard before the job went out had its subscription in place; the margin
// is for what that reasoning misses. A variable for tests.
var resendSlack = 500 * time.Millisecond

// presenceMark is what resendTo compares with later: partition p's warm-up
// and the drops of its beat subscription when a job was sent there. ok is
// false when this master holds no presence for p.
type presenceMark struct {
	since   int64
	dropped int
	ok      bool
}

// mark is partition p's presenceMark now.
func (pr *presence) mark(p int) presenceMark {
	pr.mu.Lock()
	pp := pr.parts[p]
	pr.mu.Unlock()
	if pp == nil {
		return presenceMark{}
	}
	dropped, err := pp.sub.Dropped()
	if err != nil {
		return presenceMark{}
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return presenceMark{since: pp.since, dropped: dropped, ok: true}
}

// resendTo is which of ids, peels of partition p still waiting for a job
// this master sent them all at sent (Unix ns; presence then was mark), may
// not have got it: those whose connection or process this master heard
// new since (or never heard, or that do not say which connection beats).
// A peel connected all along got it: core NATS loses nothing on a live
// connection, and a slow one is cut off by the server (then it
// reconnects). When presence cannot tell (it was re-warmed, dropped
// beats, or is not this master's) every id is resent.
func (pr *presence) resendTo(p int, ids []string, sent int64, mark presenceMark) []string {
	if !mark.ok || sent == 0 {
		return ids
	}
	pr.mu.Lock()
	pp := pr.parts[p]
	pr.mu.Unlock()
	if pp == nil {
		return ids
	}
	if dropped, err := pp.sub.Dropped(); err != nil || dropped != mark.dropped {
		return ids
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.since != mark.since {
		return ids
	}
	return mayHaveMissed(ids, pp.peels, sent-int64(resendSlack))
}

// mayHaveMissed is resendTo's choice among ids: a peel whose current
// connection was first heard at or after `after` (Unix ns), never heard,
// or not saying which connection beats.
func mayHaveMissed(ids []string, peels map[string]*peelBeat, after int64) []string {
	var out []string
	for _, id := range ids {
		if e := peels[id]; e == nil || e.conn == 0 || e.connAt >= after {
			out = append(out, id)
		}
	}
	return out
}
