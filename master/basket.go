package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// The basket's read side (Salt's mine.get): peels publish their own entries
// in the basket bucket (peel/basket.go); a master answers basket.get for
// the API and basketLookup for the settings renderer. Both resolve the
// target with the fact index and read the values from the bucket, so any
// master answers for the whole fleet:
//
//   - peels in partitions this master owns, and every peel when the target
//     names ids only, are matched in the index, as for a job;
//   - peels in other partitions have no facts in this master's index (it
//     keeps the documents of its own partitions only), so a fact target
//     reads their facts from the facts bucket. That is the truth under any
//     failover (no other master needs to answer), and the match is cached
//     per expression and peel with the facts' revision: the watch keeps
//     every peel's revision current in the index, so a cached match is used
//     only while the facts it was computed from are still the latest.

// basketWithin bounds one basket read.
const basketWithin = 10 * time.Second

// basketDirectMax is the largest match read with one get per peel; more
// peels are read with one pass over the name's keys.
const basketDirectMax = 64

// basketCacheExprs bounds the expressions whose remote matches, and the
// lookups whose answers, are cached.
const basketCacheExprs = 256

// basketLookupTTL is how long basketLookup reuses an answer. Settings are
// re-rendered on fact and settings changes, not on basket changes, so a
// render sees the basket as of at most this long before.
const basketLookupTTL = time.Second

type basketReader struct {
	m *Master

	mu sync.Mutex
	kv jetstream.KeyValue
	// remote caches, per target expression, whether a peel of a partition
	// this master does not own matched, at which facts revision.
	remote map[string]map[string]remoteMatch
	// lookups are basketLookup's recent answers, by expression and name.
	lookups map[string]*lookupEntry
}

// lookupEntry is one shared basketLookup read: done closes when vals or
// err are set, at is when.
type lookupEntry struct {
	done chan struct{}
	at   time.Time
	vals map[string]json.RawMessage
	err  error
}

type remoteMatch struct {
	rev uint64
	ok  bool
}

// basketReader returns the master's basket reader, made on first use.
func (m *Master) basketReader() *basketReader {
	m.basketOnce.Do(func() {
		m.basket = &basketReader{m: m, remote: map[string]map[string]remoteMatch{}, lookups: map[string]*lookupEntry{}}
	})
	return m.basket
}

func (b *basketReader) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.m.js.KeyValue(ctx, names.BucketBasket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketBasket, err)
	}
	b.kv = kv
	return kv, nil
}

// basketLookup is {{ basket TARGET NAME }} for the master's settings
// renderer: the value of entry name of every peel the compound target
// selects, by peel id (peels that publish no such entry are left out).
// Each call returns values of its own (decoded anew), but the read behind
// them is shared for basketLookupTTL: a render pass over many peels whose
// templates all ask for the same backends costs one read, not one a peel.
func (m *Master) basketLookup(ctx context.Context, tgt, name string) (map[string]any, error) {
	if err := names.ValidateBasketName(name); err != nil {
		return nil, err
	}
	expr, err := target.Parse(target.KindCompound, tgt, target.Options{Nodegroups: m.cfg.Nodegroups})
	if err != nil {
		return nil, fmt.Errorf("basket target %q: %w", tgt, err)
	}
	vals, err := m.basketReader().lookup(ctx, expr, name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(vals))
	for id, raw := range vals {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("basket %s of %s: %w", name, id, err)
		}
		out[id] = v
	}
	return out, nil
}

// lookup is query's values, shared by concurrent and recent (within
// basketLookupTTL) callers asking for the same expression and name; a
// failed read is not kept.
func (b *basketReader) lookup(ctx context.Context, expr target.Expr, name string) (map[string]json.RawMessage, error) {
	key := expr.String() + "\x00" + name
	b.mu.Lock()
	e := b.lookups[key]
	if e != nil && isClosed(e.done) && time.Since(e.at) > basketLookupTTL {
		e = nil
	}
	if e == nil {
		if len(b.lookups) >= basketCacheExprs {
			clear(b.lookups)
		}
		e = &lookupEntry{done: make(chan struct{})}
		b.lookups[key] = e
		b.mu.Unlock()
		resp, err := b.query(ctx, expr, name)
		if err == nil {
			e.vals = resp.Values
		}
		e.err, e.at = err, time.Now()
		close(e.done)
		if err != nil {
			b.mu.Lock()
			if b.lookups[key] == e {
				delete(b.lookups, key)
			}
			b.mu.Unlock()
		}
		return e.vals, err
	}
	b.mu.Unlock()
	select {
	case <-e.done:
		return e.vals, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("basket %s: %w", name, ctx.Err())
	}
}

// apiBasketGet answers basket.get: the values of one name (or, without a
// name, the listing) for the peels a target selects. Peels, readonly users,
// operators and admins may ask; a user's target limits narrow the target,
// as for a job.
func (m *Master) apiBasketGet(req micro.Request) {
	caller, err := m.authorize(req, accessBasket)
	if err != nil {
		refuse(req, err)
		return
	}
	expr, name, err := m.basketRequest(caller, req.Data())
	if err != nil {
		refuse(req, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), basketWithin)
	defer cancel()
	resp, err := m.basketReader().query(ctx, expr, name)
	if err != nil {
		respondErr(req, "503", err)
		return
	}
	b, _ := json.Marshal(resp)
	if max := m.nc.MaxPayload(); max > 0 && int64(len(b)) > max-1024 {
		respondErr(req, "413", fmt.Errorf("answer of %d bytes exceeds the server's maximum payload of %d bytes: narrow the target (%d peels match)", len(b), max, len(resp.Values)+len(resp.Entries)))
		return
	}
	req.Respond(b)
}

// basketRequest parses and checks a basket.get request: its target, narrowed
// to the caller's target limits (function limits are about jobs), and its
// entry name ("" for the listing).
func (m *Master) basketRequest(caller *Caller, data []byte) (target.Expr, string, error) {
	var r wire.BasketGetRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, "", badRequest(fmt.Errorf("request: %w", err))
	}
	if r.Name != "" {
		if err := names.ValidateBasketName(r.Name); err != nil {
			return nil, "", badRequest(err)
		}
	}
	expr, err := target.Parse(target.Kind(r.Target.Kind), r.Target.Expr, target.Options{Nodegroups: m.cfg.Nodegroups})
	if err != nil {
		return nil, "", badRequest(err)
	}
	limits := *caller
	limits.Functions = nil
	if expr, err = checkLimits(&limits, names.EndpointBasketGet, expr, m.cfg.Nodegroups); err != nil {
		m.apiRefused("limits").Inc()
		return nil, "", err
	}
	return expr, r.Name, nil
}

func badRequest(err error) error { return &apiError{code: "400", err: err} }

// query resolves expr and reads name's values (or, name empty, the
// listing) of the matching peels.
func (b *basketReader) query(ctx context.Context, expr target.Expr, name string) (*wire.BasketGetResponse, error) {
	ids, err := b.resolve(ctx, expr)
	if err != nil {
		return nil, err
	}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	resp := &wire.BasketGetResponse{Name: name}
	if len(ids) == 0 {
		return resp, nil
	}
	if name != "" {
		resp.Values = map[string]json.RawMessage{}
	}
	keep := func(id string, e *wire.BasketEntry, size int) {
		if name != "" {
			resp.Values[id] = e.Value
			return
		}
		resp.Entries = append(resp.Entries, wire.BasketSummary{Peel: id, Name: e.Name, Function: e.Function, Bytes: size, Updated: e.Updated})
	}
	err = b.read(ctx, kv, ids, name, func(key string, raw []byte) {
		id, n, ok := names.ParseBasketKey(key)
		var e wire.BasketEntry
		if !ok || json.Unmarshal(raw, &e) != nil || e.Peel != id || e.Name != n || len(e.Value) == 0 {
			resp.Skipped++
			return
		}
		keep(id, &e, len(e.Value))
	})
	if err != nil {
		return nil, err
	}
	if name != "" {
		for _, id := range ids {
			if _, ok := resp.Values[id]; !ok {
				resp.Missing = append(resp.Missing, id)
			}
		}
	}
	sort.Slice(resp.Entries, func(i, j int) bool {
		a, c := resp.Entries[i], resp.Entries[j]
		return a.Peel < c.Peel || a.Peel == c.Peel && a.Name < c.Name
	})
	return resp, nil
}

// read calls each with the key and value of every entry of the peels ids:
// entry name only, or all of theirs when name is empty.
func (b *basketReader) read(ctx context.Context, kv jetstream.KeyValue, ids []string, name string, each func(key string, raw []byte)) error {
	if name != "" && len(ids) <= basketDirectMax {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = names.BasketKey(id, name)
		}
		entries, err := getEach(ctx, kv, keys, 16)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", names.BucketBasket, err)
		}
		for _, e := range entries {
			if e != nil {
				each(e.Key(), e.Value())
			}
		}
		return nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	// One pass over the last value of every key of the name (or of the
	// peels): what a watch delivers before its end-of-initial-values mark.
	var filters []string
	switch {
	case name != "":
		filters = []string{names.BasketNameFilter(name)}
	case len(ids) <= basketDirectMax:
		for _, id := range ids {
			filters = append(filters, names.BasketPeelFilter(id))
		}
	default:
		filters = []string{">"}
	}
	w, err := kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read bucket %s: %w", names.BucketBasket, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read bucket %s: %w", names.BucketBasket, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("read bucket %s: watch ended", names.BucketBasket)
			}
			if e == nil {
				return nil
			}
			if id, _, ok := names.ParseBasketKey(e.Key()); ok && want[id] {
				each(e.Key(), e.Value())
			}
		}
	}
}

// peelRev is one peel id with the revision of its facts in the index.
type peelRev struct {
	id  string
	rev uint64
}

// revs lists the peels of partition p with their facts revisions.
func (ix *factIndex) revs(p int) []peelRev {
	return eachInPart(ix, p, func(id string, pe *peelEntry) peelRev { return peelRev{id: id, rev: pe.rev} })
}

// resolve returns the sorted ids of every peel expr selects, in any
// partition (see the top of this file).
func (b *basketReader) resolve(ctx context.Context, expr target.Expr) ([]string, error) {
	m := b.m
	var remote []peelRev
	idOnly := expr.IDOnly()
	var out []string
	for p := 0; p < m.cfg.Partitions; p++ {
		if idOnly || m.member == nil || m.member.owns(p) {
			out = append(out, m.index.resolve(p, expr)...)
			continue
		}
		remote = append(remote, m.index.revs(p)...)
	}
	if len(remote) > 0 {
		matched, err := b.matchRemote(ctx, expr, remote)
		if err != nil {
			return nil, err
		}
		out = append(out, matched...)
	}
	sort.Strings(out)
	return out, nil
}

// matchRemote matches expr against peels of partitions this master does
// not own, reading the facts of those whose cached match is older than the
// index's revision.
func (b *basketReader) matchRemote(ctx context.Context, expr target.Expr, peels []peelRev) ([]string, error) {
	key := expr.String()
	b.mu.Lock()
	old := b.remote[key]
	b.mu.Unlock()
	fresh := make(map[string]remoteMatch, len(peels))
	var fetch []string
	for _, pr := range peels {
		if c, ok := old[pr.id]; ok && c.rev >= pr.rev {
			fresh[pr.id] = c
			continue
		}
		fetch = append(fetch, pr.id)
	}
	entries, err := getEach(ctx, b.m.kvFacts, fetch, 32)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketFacts, err)
	}
	for i, id := range fetch {
		if entries[i] == nil {
			fresh[id] = remoteMatch{} // no facts: no match until the index has a revision
			continue
		}
		raw := entries[i].Value()
		if checkFacts(id, raw) != "" {
			raw = nil // unusable: matched on its id alone, as in the index
		}
		fresh[id] = remoteMatch{rev: entries[i].Revision(), ok: expr.Match(subjectOf(id, raw))}
	}
	b.mu.Lock()
	if _, ok := b.remote[key]; !ok && len(b.remote) >= basketCacheExprs {
		// Bounded: a fleet's templates use a handful of basket targets; a
		// burst of ad hoc ones just starts the cache over.
		clear(b.remote)
	}
	b.remote[key] = fresh
	b.mu.Unlock()
	var out []string
	for id, r := range fresh {
		if r.ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// getEach gets keys from kv, at most conc at a time: entry i is keys[i]'s,
// nil when the key does not exist. Any other failure is the error.
func getEach(ctx context.Context, kv jetstream.KeyValue, keys []string, conc int) ([]jetstream.KeyValueEntry, error) {
	out := make([]jetstream.KeyValueEntry, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for i, key := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e, err := kv.Get(ctx, key)
			switch {
			case err == nil:
				out[i] = e
			case !errors.Is(err, jetstream.ErrKeyNotFound):
				errs[i] = fmt.Errorf("get %s: %w", key, err)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
