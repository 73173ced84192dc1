package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// factIndex follows the facts bucket. It knows every peel id (a few bytes
// each) and keeps the fact document only of peels in partitions this master
// owns, compressed as stored.
//
// Targeting on facts does not decode documents per job: the first target
// that looks at a fact path (G@os:id, S@ looks at network:addresses)
// registers it, and from then on every owned peel keeps the value at that
// path beside its document (peelEntry.vals, shared between peels: a fleet
// has a handful of distinct OS ids), extracted when its facts arrive in the
// scan that checks them. A job then matches the cached values; documents
// that arrived before their path was registered are scanned once, by the
// first job, in parallel. The paths of index.fact_paths are registered at
// start, so the common targets find their values ready even then.
type factIndex struct {
	m *Master

	mu     sync.RWMutex
	parts  []map[string]*peelEntry // partition → id → entry
	total  int
	loaded chan struct{}
	// set is the fact paths targets looked at, in slot order (append
	// only: a registration stores a longer set); slots maps a path's key
	// (pathKey) to its index.
	set   atomic.Pointer[pathSet]
	slots map[string]int
	// filling serializes, per partition, the first job's scan of the
	// documents stored before its paths were registered, so that two jobs
	// do not scan them twice.
	filling []sync.Mutex
	// Tests only: called in apply between extracting the values and
	// storing them, and in resolve between scanning and storing.
	hookExtracted, hookFilled func()

	badValues *metrics.Counter
}

type peelEntry struct {
	rev uint64
	raw []byte // compressed facts; nil when the partition is not ours
	// bad says why the stored value is unusable (it does not decode, or it
	// names another peel); "" when it is fine. raw then keeps the last good
	// document until the peel, asked to, publishes again.
	bad string
	// vals holds the values of raw at the registered paths, slot by slot
	// (noFact where the document has none); shorter than they are when
	// paths were registered after raw arrived, nil when raw is.
	vals []any
}

// noFact marks a path the document does not have (JSON null is a value).
type noFact struct{}

func newFactIndex(m *Master) *factIndex {
	ix := &factIndex{m: m, parts: make([]map[string]*peelEntry, m.cfg.Partitions), loaded: make(chan struct{}), slots: map[string]int{},
		filling:   make([]sync.Mutex, m.cfg.Partitions),
		badValues: m.opts.Metrics.NewCounter(`zester_master_bad_fact_values_total`)}
	for i := range ix.parts {
		ix.parts[i] = map[string]*peelEntry{}
	}
	ix.set.Store(newPathSet(nil, nil))
	ix.registerConfigured(m.cfg.Index.FactPaths)
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
	var vals []any
	if owned {
		// One scan checks the document and extracts the registered paths.
		ps := ix.registered()
		if err := withFactDoc(e.Value(), func(doc []byte) error {
			bad, vals = docValues(id, doc, ps)
			return nil
		}); err != nil {
			bad = fmt.Sprintf("does not decode: %v", err)
		}
		if ix.hookExtracted != nil {
			ix.hookExtracted()
		}
	}
	ix.mu.Lock()
	pe, ok := ix.parts[p][id]
	if !ok {
		pe = &peelEntry{}
		ix.parts[p][id] = pe
		ix.total++
	}
	if pe.rev > e.Revision() {
		ix.mu.Unlock()
		return // a fetch (ownershipChanged) older than what the watch brought
	}
	wasBad := pe.bad
	pe.rev, pe.bad = e.Revision(), bad
	switch {
	case !owned:
		pe.raw, pe.vals = nil, nil
	case bad == "":
		// A copy of exactly the value: the entry may share a larger buffer.
		pe.raw, pe.vals = bytes.Clone(e.Value()), vals
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
// added, simulated fleets) is accepted. (The index checks in docValues, in
// the scan that extracts the registered paths.)
func checkFacts(id string, raw []byte) (bad string) {
	err := withFactDoc(raw, func(doc []byte) error {
		bad = checkFactsDoc(id, doc)
		return nil
	})
	if err != nil {
		return fmt.Sprintf("does not decode: %v", err)
	}
	return bad
}

// factsIDOnly keeps a fact document's id alone.
var factsIDOnly = render.NewFactFilter([][]string{{"id"}})

// checkFactsDoc is checkFacts of a decoded document.
func checkFactsDoc(id string, doc []byte) (bad string) {
	// The fast check first (a scan that builds only "id"): what json.Unmarshal
	// below says of a good document, at a fraction of its cost; anything
	// else takes the path that words the error.
	if m, err := render.ParseFactsFiltered(doc, factsIDOnly); err == nil {
		switch v := m["id"].(type) {
		case nil:
			return ""
		case string:
			if v != id {
				return fmt.Sprintf("the document is peel %q's", v)
			}
			return ""
		}
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
			pe.raw, pe.vals = nil, nil
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
	return eachInPart(ix, p, func(id string, pe *peelEntry) factState { return factState{id: id, bad: pe.bad} })
}

// eachInPart is f of every peel of partition p, in no order, read under the
// index's read lock (f must not take it).
func eachInPart[T any](ix *factIndex, p int, f func(id string, pe *peelEntry) T) []T {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]T, 0, len(ix.parts[p]))
	for id, pe := range ix.parts[p] {
		out = append(out, f(id, pe))
	}
	return out
}

func (ix *factIndex) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.total
}

// resolve returns the sorted ids of partition p that match expr. It matches
// with the shared matcher (target.Expr.Match, which the CLI's --batch uses
// too) over the cached values of the paths expr looks at, so a target
// selects the same peels wherever it is resolved.
func (ix *factIndex) resolve(p int, expr target.Expr) []string {
	if expr.IDOnly() {
		ix.mu.RLock()
		ids := make([]string, 0, len(ix.parts[p]))
		for id := range ix.parts[p] {
			ids = append(ids, id)
		}
		ix.mu.RUnlock()
		var out []string
		s := &target.MapSubject{}
		for _, id := range ids {
			if s.PeelID = id; expr.Match(s) {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	want := target.FactPaths(expr)
	slots := ix.register(want)
	need := 0
	for _, n := range slots {
		need = max(need, n+1)
	}
	cands, todo := ix.snapshot(p, need)
	if len(todo) > 0 {
		// Documents that arrived before a path of expr was registered:
		// scan each once, and keep the values for the next job. A job
		// that came at the same time scanned them meanwhile: look again.
		ix.filling[p].Lock()
		if cands, todo = ix.snapshot(p, need); len(todo) > 0 {
			fillValues(cands, todo, ix.registered())
			if ix.hookFilled != nil {
				ix.hookFilled()
			}
			ix.mu.Lock()
			for _, f := range todo {
				// Unless its facts changed since: apply extracted the
				// newer ones.
				if vals := cands[f.i].vals; f.pe.rev == f.rev && len(f.pe.vals) < len(vals) && f.pe.raw != nil {
					f.pe.vals = vals
				}
			}
			ix.mu.Unlock()
		}
		ix.filling[p].Unlock()
	}
	s := &cachedSubject{paths: want, slots: slots}
	var subj target.Subject = s
	var ss *settingsSubject
	if target.UsesSettings(expr) && ix.m.settings != nil {
		// I@ matches what this master rendered, secrets masked.
		ss = &settingsSubject{cachedSubject: s}
		subj = ss
	}
	var out []string
	for i := range cands {
		s.id, s.vals = cands[i].id, cands[i].vals
		if ss != nil {
			ss.settings = ix.m.settings.masked(s.id)
		}
		if expr.Match(subj) {
			out = append(out, s.id)
		}
	}
	sort.Strings(out)
	return out
}

// cand is a peel of a partition as resolve matches it.
type cand struct {
	id   string
	vals []any
}

// missing is a peel of cands[i] whose document has fewer values than a job
// needs, as snapshot saw it.
type missing struct {
	i   int
	pe  *peelEntry
	rev uint64
	raw []byte
}

// snapshot lists partition p's peels with their values, and those of them
// that have a document but fewer than need values.
func (ix *factIndex) snapshot(p, need int) (cands []cand, todo []missing) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	cands = make([]cand, 0, len(ix.parts[p]))
	for id, pe := range ix.parts[p] {
		if pe.raw != nil && len(pe.vals) < need {
			todo = append(todo, missing{i: len(cands), pe: pe, rev: pe.rev, raw: pe.raw})
		}
		cands = append(cands, cand{id: id, vals: pe.vals})
	}
	return cands, todo
}

// subjectOf decodes a stored facts value into the shared matcher's Subject;
// a value that does not decode has no facts. (The index matches cached
// values instead; this is for documents read from the bucket.)
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
