package master

import (
	"encoding/json"
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
// wait is non-zero when some peel called offline has not been heard since
// the partition's warm-up began and the grace is not over (it entered the
// index after the warm-up ended early): split again after wait, when
// silence is proof.
func (pr *presence) split(p int, ids []string) (online, offline []string, wait time.Duration) {
	pr.mu.Lock()
	pp := pr.parts[p]
	pr.mu.Unlock()
	if pp == nil {
		return ids, nil, 0
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return splitPresence(ids, pp.peels, time.Now().UnixNano(), pp.since, pr.grace, pr.offlineAfter)
}

// splitPresence is split's decision for one partition at now (Unix ns):
// peels are its beats, since the start of its warm-up. A peel called
// offline that has not been heard since the warm-up began is not known to be
// down before since+grace; wait is what is left of that grace then (zero
// once silence is proof).
func splitPresence(ids []string, peels map[string]*peelBeat, now, since int64, grace, offlineAfter time.Duration) (online, offline []string, wait time.Duration) {
	online = make([]string, 0, len(ids))
	sure := now >= since+int64(grace)
	for _, id := range ids {
		e := peels[id]
		if beatOnline(e, now, offlineAfter) {
			online = append(online, id)
			continue
		}
		offline = append(offline, id)
		if !sure && (e == nil || e.last < since) {
			wait = time.Duration(since + int64(grace) - now)
		}
	}
	return online, offline, wait
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
		warming := pp == nil
		if pp != nil {
			pp.mu.Lock()
			warming = !pp.warmed
			pp.mu.Unlock()
		}
		row := func(id string, e *peelBeat) wire.PeelPresence {
			r := wire.PeelPresence{ID: id, State: wire.PresenceOffline}
			if e == nil && warming {
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
