package master

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
)

// The fact index's value cache: the fact paths that targets use are
// registered once (or configured, index.fact_paths), and each owned peel
// keeps its values at those paths (shared between peels) so that a
// fact-targeted job matches without decoding every document.
//
// Values are extracted with render's filtered scanner, which builds only
// the registered paths (and "id", which intake checks in the same scan),
// of an object at a path's end only its keys (all a target matches of a
// map), and checks and skips everything else: a lookup of a registered
// path finds in its result what target.MapSubject finds in the whole
// document (render's FuzzParseFacts holds it to that), and it refuses a
// document where encoding/json does. FuzzIndexMatch checks the whole.

// pathSet is the registered fact paths, in slot order, with what extracts
// them. A registration replaces it whole (ix.set), so a reader that loaded
// one may use it without the index's lock.
type pathSet struct {
	paths [][]string
	// filter keeps paths and "id".
	filter *render.FactFilter
	// shared holds each slot's shared values.
	shared []*slotValues
}

func newPathSet(paths [][]string, shared []*slotValues) *pathSet {
	return &pathSet{paths: paths, shared: shared, filter: render.NewFactKeysFilter(append(slices.Clip(paths), []string{"id"}))}
}

// registered is the current path set (never nil).
func (ix *factIndex) registered() *pathSet { return ix.set.Load() }

// register returns the slots of paths, registering those not seen before.
func (ix *factIndex) register(paths [][]string) []int {
	slots := make([]int, len(paths))
	ix.mu.RLock()
	known := true
	for i, p := range paths {
		n, ok := ix.slots[pathKey(p)]
		slots[i], known = n, known && ok
	}
	ix.mu.RUnlock()
	if known {
		return slots
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.set.Load()
	all, shared := slices.Clone(old.paths), slices.Clone(old.shared)
	for i, p := range paths {
		k := pathKey(p)
		n, ok := ix.slots[k]
		if !ok {
			n = len(all)
			ix.slots[k] = n
			all = append(all, slices.Clone(p))
			shared = append(shared, &slotValues{})
		}
		slots[i] = n
	}
	if len(all) > len(old.paths) {
		ix.set.Store(newPathSet(all, shared))
	}
	return slots
}

// registerConfigured registers every reading of each configured fact path
// (index.fact_paths: os:id is read as os:id and, for a pattern holding
// the delimiter, as os), so that the first target on them finds their
// values already extracted.
func (ix *factIndex) registerConfigured(entries []string) {
	for _, e := range entries {
		if x, err := parseFactPath(e); err == nil {
			ix.register(target.FactPaths(x))
		}
	}
}

// parseFactPath reads an index.fact_paths entry as the G@ target on that
// path with any value.
func parseFactPath(entry string) (target.Expr, error) {
	if entry == "" || strings.HasSuffix(entry, ":") {
		return nil, fmt.Errorf("%q: want a fact path such as os:id", entry)
	}
	return target.Parse(target.KindFact, entry+":*", target.Options{})
}

func pathKey(p []string) string { return strings.Join(p, "\x00") }

func noValues(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = noFact{}
	}
	return out
}

// docValues checks a decoded document as checkFactsDoc does and, when it is
// good, returns its values at ps's paths, found as target.MapSubject finds
// them, shared where they repeat; noFact where there is none, and at every
// path of a document that the scanner refuses.
func docValues(id string, doc []byte, ps *pathSet) (bad string, vals []any) {
	m, err := render.ParseFactsFiltered(doc, ps.filter)
	if err == nil {
		switch v := m["id"].(type) {
		case nil:
		case string:
			if v != id {
				return fmt.Sprintf("the document is peel %q's", v), nil
			}
		default:
			// Not a string: checkFactsDoc words why.
			if bad = checkFactsDoc(id, doc); bad != "" {
				return bad, nil
			}
		}
	} else if bad = checkFactsDoc(id, doc); bad != "" {
		return bad, nil
	}
	if len(ps.paths) == 0 {
		return "", nil
	}
	vals = noValues(len(ps.paths))
	if err != nil {
		// A document encoding/json reads as no object ("null"), or one
		// whose numbers it cannot hold: SubjectFromJSON gives no facts.
		return "", vals
	}
	s := &target.MapSubject{Facts: m}
	for i, p := range ps.paths {
		if v, ok := s.Fact(p); ok {
			vals[i] = ps.shared[i].of(v)
		}
	}
	return "", vals
}

// fillValues computes the missing values of each peel of todo (documents
// stored before a path was registered) into cands, spread over GOMAXPROCS
// workers, without the index's lock.
func fillValues(cands []cand, todo []missing, ps *pathSet) {
	strided(len(todo), min(runtime.GOMAXPROCS(0), (len(todo)+255)/256), func(_, k int) {
		f := &todo[k]
		c := &cands[f.i]
		var vals []any
		_ = withFactDoc(f.raw, func(doc []byte) error {
			if bad, v := docValues(c.id, doc, ps); bad == "" {
				vals = v
			}
			return nil
		})
		if len(vals) < len(ps.paths) {
			vals = noValues(len(ps.paths))
		}
		c.vals = vals
	})
}

// strided calls f(w, i) for every i in [0, n) on workers goroutines, worker
// w taking i = w, w+workers, …, and returns when all are done.
func strided(n, workers int, f func(w, i int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(w, i)
			}
		}()
	}
	wg.Wait()
}

// slotValues shares one slot's values between peels: a fleet has a handful
// of distinct OS ids, releases and kernels, so each peel's slot points at
// the one copy (an interface holding it: no allocation a peel). A map is
// matched by its keys only (G@os:* names a key of os), so it is kept as a
// keys-only map. A slot with many distinct values (addresses, host names)
// stops adding at maxShared: those do not repeat, and what it holds stays
// bounded.
type slotValues struct {
	mu sync.RWMutex
	n  int               // entries in all of by
	by [3]map[string]any // by kind (sharedString…), then key
}

// The kinds of shared values and their keys.
const (
	sharedString = iota // a string, by itself
	sharedList          // a list of strings, by its elements joined
	sharedKeys          // a map's keys, by its keys sorted and joined
)

const maxShared = 4096

func (sv *slotValues) lookup(kind int, k string) (any, bool) {
	sv.mu.RLock()
	v, ok := sv.by[kind][k]
	sv.mu.RUnlock()
	return v, ok
}

func (sv *slotValues) share(kind int, k string, v any) any {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	in := &sv.by[kind]
	if got, ok := (*in)[k]; ok {
		return got
	}
	if sv.n < maxShared {
		if *in == nil {
			*in = map[string]any{}
		}
		(*in)[k] = v
		sv.n++
	}
	return v
}

// of is v as the slot keeps it.
func (sv *slotValues) of(v any) any {
	switch x := v.(type) {
	case string:
		if got, ok := sv.lookup(sharedString, x); ok {
			return got
		}
		return sv.share(sharedString, x, x)
	case map[string]any:
		if len(x) == 0 {
			return noKeys
		}
		keys := make([]string, 0, len(x))
		for key := range x {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		k, ok := joinKey(keys)
		if ok {
			if got, ok := sv.lookup(sharedKeys, k); ok {
				return got
			}
		}
		out := make(map[string]any, len(keys))
		for _, key := range keys {
			out[key] = nil
		}
		if !ok {
			return out
		}
		return sv.share(sharedKeys, k, out)
	case []any:
		strs := make([]string, 0, len(x))
		for _, el := range x {
			s, ok := el.(string)
			if !ok {
				return sv.list(x)
			}
			strs = append(strs, s)
		}
		// A list of strings (id_like, addresses) matches as []string
		// does.
		if len(strs) == 0 {
			return noStrings
		}
		k, ok := joinKey(strs)
		if !ok {
			return strs
		}
		if got, ok := sv.lookup(sharedList, k); ok {
			return got
		}
		return sv.share(sharedList, k, strs)
	}
	return v
}

// noKeys and noStrings are the shared empty map and list (read only).
var (
	noKeys    any = map[string]any{}
	noStrings any = []string{}
)

// joinKey joins strs with NULs; false when one holds a NUL or there is
// none (the key would not be unique).
func joinKey(strs []string) (string, bool) {
	if len(strs) == 0 {
		return "", false
	}
	for _, s := range strs {
		if strings.IndexByte(s, 0) >= 0 {
			return "", false
		}
	}
	return strings.Join(strs, "\x00"), true
}

// list is a mixed list as the matcher needs it: maps by their keys.
func (sv *slotValues) list(x []any) []any {
	out := make([]any, len(x))
	for i, el := range x {
		switch e := el.(type) {
		case map[string]any:
			keys := make(map[string]any, len(e))
			for k := range e {
				keys[k] = nil
			}
			out[i] = keys
		default:
			out[i] = el
		}
	}
	return out
}

// cachedSubject is a peel as the matcher sees it through the index: its id
// and the cached values of the paths of the expression being matched.
type cachedSubject struct {
	id    string
	paths [][]string // the expression's paths (target.FactPaths)
	slots []int      // their slots in vals
	vals  []any
}

func (s *cachedSubject) ID() string { return s.id }

func (s *cachedSubject) Fact(path []string) (any, bool) {
	for i, p := range s.paths {
		if slices.Equal(p, path) {
			if n := s.slots[i]; n < len(s.vals) {
				if _, none := s.vals[n].(noFact); !none {
					return s.vals[n], true
				}
			}
			return nil, false
		}
	}
	return nil, false
}

func (s *cachedSubject) Addrs() []netip.Addr {
	v, ok := s.Fact(target.AddrsPath)
	if !ok {
		return nil
	}
	return target.AddrsOf(v)
}
