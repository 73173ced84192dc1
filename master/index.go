package master

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// factIndex follows the facts bucket. It knows every peel id (a few bytes
// each) and keeps the fact document only of peels in partitions this master
// owns, compressed as stored; targeting on facts decodes on demand.
type factIndex struct {
	m *Master

	mu     sync.RWMutex
	parts  []map[string]*peelEntry // partition → id → entry
	total  int
	loaded chan struct{}

	badValues *metrics.Counter
}

type peelEntry struct {
	id      string
	rev     uint64
	updated time.Time
	raw     []byte // compressed facts; nil when the partition is not ours
	// bad says why the stored value is unusable (it does not decode, or it
	// names another peel); "" when it is fine. raw then keeps the last good
	// document until the peel, asked to, publishes again.
	bad string
}

func newFactIndex(m *Master) *factIndex {
	ix := &factIndex{m: m, parts: make([]map[string]*peelEntry, m.cfg.Partitions), loaded: make(chan struct{}),
		badValues: m.opts.Metrics.NewCounter(`zester_master_bad_fact_values_total`)}
	for i := range ix.parts {
		ix.parts[i] = map[string]*peelEntry{}
	}
	return ix
}

func (ix *factIndex) start(ctx context.Context) error {
	w, err := kvwatch.Watch(ctx, ix.m.js, names.BucketFacts, kvwatch.Options{OnError: ix.m.watchErr(names.BucketFacts), Monitor: ix.m.watches})
	if err != nil {
		return err
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ix.m.done:
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					close(ix.loaded)
					continue
				}
				ix.apply(e)
			}
		}
	}()
	return nil
}

func (ix *factIndex) apply(e kvwatch.KeyValueEntry) {
	id := e.Key()
	if names.ValidateID(id) != nil {
		ix.m.met.badFacts.Inc()
		return
	}
	p := shard.Partition(id, ix.m.cfg.Partitions)
	if e.Operation() != jetstream.KeyValuePut {
		ix.mu.Lock()
		known := false
		if _, known = ix.parts[p][id]; known {
			delete(ix.parts[p], id)
			ix.total--
		}
		ix.mu.Unlock()
		// A peel whose facts were deleted (`nats kv del facts <id>`, `zester
		// purge facts`) publishes them again at once when asked: cheaper for
		// the servers than every peel watching its own key.
		if known && ix.m.member != nil && ix.m.member.owns(p) {
			ix.m.control(p, wire.Control{Op: wire.ControlRepublishFacts, Peels: []string{id}})
		}
		return
	}
	ix.m.met.factUpdates.Inc()
	owned := ix.m.member == nil || ix.m.member.owns(p)
	var bad string
	if owned {
		bad = checkFacts(id, e.Value())
	}
	ix.mu.Lock()
	pe, ok := ix.parts[p][id]
	if !ok {
		pe = &peelEntry{id: id}
		ix.parts[p][id] = pe
		ix.total++
	}
	if pe.rev > e.Revision() {
		ix.mu.Unlock()
		return // a fetch (ownershipChanged) older than what the watch brought
	}
	wasBad := pe.bad
	pe.rev, pe.updated, pe.bad = e.Revision(), e.Created(), bad
	switch {
	case !owned:
		pe.raw = nil
	case bad == "":
		pe.raw = e.Value()
	}
	ix.mu.Unlock()
	if owned && bad == "" && ix.m.settings != nil {
		ix.m.settings.factsChanged(id)
	}
	if bad != "" {
		// Garbage in the store (`nats kv put facts <id> garbage`, a value
		// copied from another key) would silently drop the peel from fact
		// targets: ask it to publish again, as after a delete.
		ix.badValues.Inc()
		if wasBad == "" {
			ix.m.log.Warn("unusable facts in the store; asking the peel to republish", "peel", id, "revision", e.Revision(), "why", bad)
		}
		ix.m.control(p, wire.Control{Op: wire.ControlRepublishFacts, Peels: []string{id}})
	}
}

// checkFacts says why a stored facts value cannot be the document of peel
// id, or "" when it can. A document without "id" (peels before it was
// added, simulated fleets) is accepted.
func checkFacts(id string, raw []byte) string {
	doc, err := factcodec.Decode(raw)
	if err != nil {
		return fmt.Sprintf("does not decode: %v", err)
	}
	var head struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		return fmt.Sprintf("not a JSON object: %v", err)
	}
	if head.ID != nil && *head.ID != id {
		return fmt.Sprintf("the document is peel %q's", *head.ID)
	}
	return ""
}

// ownershipChanged drops documents of lost partitions and fetches those of
// gained ones.
func (ix *factIndex) ownershipChanged(gained, lost []int) {
	ix.mu.Lock()
	for _, p := range lost {
		for _, pe := range ix.parts[p] {
			pe.raw = nil
		}
	}
	var fetch []string
	for _, p := range gained {
		for id, pe := range ix.parts[p] {
			if pe.raw == nil {
				fetch = append(fetch, id)
			}
		}
	}
	ix.mu.Unlock()
	if len(fetch) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for _, id := range fetch {
			sem <- struct{}{}
			wg.Add(1)
			go func(id string) {
				defer func() { <-sem; wg.Done() }()
				e, err := ix.m.kvFacts.Get(ctx, names.FactsKey(id))
				if err == nil {
					ix.apply(e)
				}
			}(id)
		}
		wg.Wait()
	}()
}

// ids lists the peel ids of partition p.
func (ix *factIndex) ids(p int) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]string, 0, len(ix.parts[p]))
	for id := range ix.parts[p] {
		out = append(out, id)
	}
	return out
}

// rawFacts returns the stored facts of an owned peel (nil, false when
// the index has none).
func (ix *factIndex) rawFacts(id string) ([]byte, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pe, ok := ix.parts[shard.Partition(id, ix.m.cfg.Partitions)][id]
	if !ok || pe.raw == nil {
		return nil, false
	}
	return pe.raw, true
}

// factState is one peel's entry as `zester peels` needs it.
type factState struct {
	id, bad string
}

// entries lists the peels of partition p with their fact state.
func (ix *factIndex) entries(p int) []factState {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]factState, 0, len(ix.parts[p]))
	for _, pe := range ix.parts[p] {
		out = append(out, factState{id: pe.id, bad: pe.bad})
	}
	return out
}

func (ix *factIndex) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.total
}

// resolve returns the sorted ids of partition p that match expr. It matches
// through target.SubjectFromJSON, the one fact matcher that the CLI's
// --batch uses too.
func (ix *factIndex) resolve(p int, expr target.Expr) []string {
	ix.mu.RLock()
	entries := make([]*peelEntry, 0, len(ix.parts[p]))
	raws := make([][]byte, 0, len(ix.parts[p]))
	for _, pe := range ix.parts[p] {
		entries = append(entries, pe)
		raws = append(raws, pe.raw)
	}
	ix.mu.RUnlock()
	var out []string
	idOnly := expr.IDOnly()
	withSettings := target.UsesSettings(expr) && ix.m.settings != nil
	for i, pe := range entries {
		var s target.Subject = &target.MapSubject{PeelID: pe.id}
		if !idOnly {
			ms := subjectOf(pe.id, raws[i])
			if withSettings {
				// I@ matches what this master rendered, secrets masked.
				ms.Settings = ix.m.settings.masked(pe.id)
			}
			s = ms
		}
		if expr.Match(s) {
			out = append(out, pe.id)
		}
	}
	sort.Strings(out)
	return out
}

// subjectOf decodes a stored facts value into the shared matcher's Subject;
// a value that does not decode has no facts.
func subjectOf(id string, raw []byte) *target.MapSubject {
	if raw == nil {
		return &target.MapSubject{PeelID: id}
	}
	doc, err := factcodec.Decode(raw)
	if err != nil {
		return &target.MapSubject{PeelID: id}
	}
	s, _ := target.SubjectFromJSON(id, doc)
	return s
}
