package master

import (
	"context"
	"encoding/json"
	"net/netip"
	"sort"
	"sync"
	"time"

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
}

type peelEntry struct {
	id      string
	rev     uint64
	updated time.Time
	raw     []byte // compressed facts; nil when the partition is not ours
}

func newFactIndex(m *Master) *factIndex {
	ix := &factIndex{m: m, parts: make([]map[string]*peelEntry, m.cfg.Partitions), loaded: make(chan struct{})}
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

func (ix *factIndex) apply(e kvwatch.Interface) {
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
	ix.mu.Lock()
	pe, ok := ix.parts[p][id]
	if !ok {
		pe = &peelEntry{id: id}
		ix.parts[p][id] = pe
		ix.total++
	}
	pe.rev, pe.updated = e.Revision(), e.Created()
	if owned {
		pe.raw = e.Value()
	} else {
		pe.raw = nil
	}
	ix.mu.Unlock()
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

func (ix *factIndex) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.total
}

// resolve returns the sorted ids of partition p that match expr.
func (ix *factIndex) resolve(p int, expr target.Expr) []string {
	ix.mu.RLock()
	entries := make([]*peelEntry, 0, len(ix.parts[p]))
	for _, pe := range ix.parts[p] {
		entries = append(entries, pe)
	}
	ix.mu.RUnlock()
	var out []string
	idOnly := expr.IDOnly()
	for _, pe := range entries {
		s := &indexSubject{id: pe.id}
		if !idOnly {
			s.load(pe.raw)
		}
		if expr.Match(s) {
			out = append(out, pe.id)
		}
	}
	sort.Strings(out)
	return out
}

// indexSubject adapts an index entry to target.Subject.
type indexSubject struct {
	id    string
	facts map[string]any
	addrs []netip.Addr
}

func (s *indexSubject) load(raw []byte) {
	if raw == nil {
		return
	}
	doc, err := factcodec.Decode(raw)
	if err != nil {
		return
	}
	var m map[string]any
	if json.Unmarshal(doc, &m) == nil {
		s.facts = m
	}
	if nw, ok := s.facts["network"].(map[string]any); ok {
		if list, ok := nw["addresses"].([]any); ok {
			for _, a := range list {
				if str, ok := a.(string); ok {
					if ip, err := netip.ParseAddr(str); err == nil {
						s.addrs = append(s.addrs, ip)
					}
				}
			}
		}
	}
}

func (s *indexSubject) ID() string { return s.id }

func (s *indexSubject) Fact(path []string) (any, bool) {
	var cur any = s.facts
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, s.facts != nil
}

func (s *indexSubject) Addrs() []netip.Addr { return s.addrs }
