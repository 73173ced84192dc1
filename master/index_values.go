package master

import (
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"unique"

	"github.com/zester-io/zester/internal/target"
)

// The fact index's value cache: the fact paths that targets use are
// registered once, and each owned peel keeps its values at those paths
// (interned) so that a fact-targeted job matches without decoding every
// document.

// registered is the paths registered so far (a prefix of an append-only
// list: safe to read after the lock is released).
func (ix *factIndex) registered() [][]string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.paths
}

// register returns the slots of paths, registering those not seen before.
func (ix *factIndex) register(paths [][]string) []int {
	slots := make([]int, len(paths))
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i, p := range paths {
		k := pathKey(p)
		n, ok := ix.slots[k]
		if !ok {
			n = len(ix.paths)
			ix.slots[k] = n
			ix.paths = append(ix.paths, slices.Clone(p))
		}
		slots[i] = n
	}
	return slots
}

func pathKey(p []string) string { return strings.Join(p, "\x00") }

func noValues(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = noFact{}
	}
	return out
}

// pathValues is the value of the JSON document doc at each of paths, found
// as target.MapSubject finds it, with its strings interned; noFact where
// there is none (also for every path of a document that does not parse).
func pathValues(doc []byte, paths [][]string) []any {
	out := noValues(len(paths))
	var facts map[string]any
	if json.Unmarshal(doc, &facts) != nil {
		return out
	}
	s := &target.MapSubject{Facts: facts}
	for i, p := range paths {
		if v, ok := s.Fact(p); ok {
			out[i] = intern(v)
		}
	}
	return out
}

// intern shares the strings of a cached value between peels (a fleet's OS
// ids, releases and roles repeat). A map is matched by its keys only
// (G@os:* names a key of os), so it is cached as a keys-only map shared by
// every peel whose map has the same keys.
func intern(v any) any {
	switch x := v.(type) {
	case string:
		return unique.Make(x).Value()
	case map[string]any:
		return keysOnly(x)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			if s, ok := el.(string); ok {
				out[i] = unique.Make(s).Value()
			} else {
				out[i] = el
			}
		}
		return out
	}
	return v
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

// keySets holds the shared keys-only maps of keysOnly, by their sorted keys.
var keySets sync.Map // string → map[string]any

func keysOnly(m map[string]any) map[string]any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	k := strings.Join(keys, "\x00")
	if got, ok := keySets.Load(k); ok {
		return got.(map[string]any)
	}
	out := make(map[string]any, len(keys))
	for _, key := range keys {
		out[unique.Make(key).Value()] = nil
	}
	got, _ := keySets.LoadOrStore(k, out)
	return got.(map[string]any)
}
