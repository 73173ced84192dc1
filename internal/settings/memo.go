package settings

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"

	"github.com/zester-io/zester/internal/render"
)

// Memo shares the rendered and decoded output of a settings file between
// the compiles of many peels: a file whose template reads only a few fact
// paths (render.Template.Inputs) renders to the same document for every
// peel whose facts hold the same values there, so it is executed and
// decoded once per distinct set of values, not once per peel. A file that
// reads .id, calls setting or basket, or uses the root as a value is
// executed for every peel, as without a memo.
//
// One Memo serves one Tree and one Secret callback (the opened values are
// in the shared documents): a master makes a new one with every tree it
// loads. Compiles with Limits other than the defaults do not use it. Safe
// for concurrent use.
type Memo struct {
	mu      sync.RWMutex
	m       map[string]*memoEntry
	results map[string]*sharedResult
	perFile map[string]int
	bytes   int
}

// memoEntry is one file's output for one set of input values. Its node is
// shared and is never changed (the merge copies what it takes).
type memoEntry struct {
	node   *render.Node
	out    *render.Output
	tokens []string
}

const (
	// memoPerFile bounds one file's entries: a file that reads a fact
	// unique to each peel (its fqdn) stops being memoised there, at the
	// cost of building a key per peel.
	memoPerFile = 1024
	// memoBytes bounds the keys and rendered texts held.
	memoBytes = 32 << 20
)

// NewMemo returns an empty memo.
func NewMemo() *Memo {
	return &Memo{m: map[string]*memoEntry{}, results: map[string]*sharedResult{}, perFile: map[string]int{}}
}

// memoResults bounds the whole results held (each a merged tree).
const memoResults = 4096

func (m *Memo) getResult(key []byte) *sharedResult {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.results[string(key)]
}

func (m *Memo) putResult(key []byte, r *sharedResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.results[string(key)]; dup || len(m.results) >= memoResults || m.bytes+len(key) > memoBytes {
		return
	}
	m.results[string(key)] = r
	m.bytes += len(key)
}

func (m *Memo) get(key []byte) *memoEntry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.m[string(key)] // no copy of key for the lookup
}

func (m *Memo) put(file, key string, e *memoEntry) {
	size := len(key) + len(e.out.Text())
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.m[key]; dup || m.perFile[file] >= memoPerFile || m.bytes+size > memoBytes {
		return
	}
	m.m[key] = e
	m.perFile[file]++
	m.bytes += size
}

// memoInputs is which paths of a file's data its memo key is built from;
// ok false when its output is not to be shared.
func memoInputs(t *render.Template) (paths [][]string, ok bool) {
	paths, ok = t.Inputs()
	if !ok {
		return nil, false
	}
	for _, p := range paths {
		// .id is each peel's own, and so is the whole fact document:
		// keys built from them never repeat.
		if p[0] == "id" || (p[0] == "facts" && len(p) == 1) {
			return nil, false
		}
	}
	return paths, true
}

// memoKey is the key of file f's output for data: its path and the value
// at each of its input paths, canonically encoded. ok is false when a value
// has a type the encoding does not know (facts are JSON values).
func memoKey(buf []byte, f *file, data render.Data) ([]byte, bool) {
	return appendMemoKey(buf[:0], f, data)
}

// appendMemoKey appends memoKey's key to buf. The key is self-delimiting
// (the path has no NUL, the file fixes how many values follow, each is
// length-prefixed or fixed), so keys may be concatenated.
func appendMemoKey(buf []byte, f *file, data render.Data) ([]byte, bool) {
	buf = append(append(buf, f.path...), 0)
	for _, p := range f.inputs {
		var cur any
		switch p[0] {
		case "facts":
			cur = data.Facts
		case "id":
			cur = data.ID
		default:
			buf = append(buf, 'x') // not in the data: the execution fails
			continue
		}
		if len(p) > 200 {
			return buf, false
		}
		for i, k := range p[1:] {
			m, isMap := cur.(map[string]any)
			if !isMap {
				// A field of a non-map: where, then the value stopped at.
				buf = append(buf, 'N', byte(i))
				break
			}
			v, found := m[k]
			if !found {
				buf = append(buf, 'M', byte(i))
				cur = nil
				break
			}
			cur = v
		}
		// 'N' and 'M' are no type tag of appendCanon's: unambiguous.
		var ok bool
		if buf, ok = appendCanon(buf, cur, 0); !ok {
			return buf, false
		}
	}
	return buf, true
}

// appendCanon appends a type-tagged, length-prefixed encoding of a JSON
// value (maps by sorted key): equal values, equal bytes, and no two
// different values alike.
func appendCanon(b []byte, v any, depth int) ([]byte, bool) {
	if depth > render.MaxDepth {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, 'z'), true
	case bool:
		if x {
			return append(b, 'T'), true
		}
		return append(b, 'F'), true
	case string:
		b = binary.AppendUvarint(append(b, 's'), uint64(len(x)))
		return append(b, x...), true
	case int64:
		return binary.AppendVarint(append(b, 'i'), x), true
	case int:
		return binary.AppendVarint(append(b, 'i'), int64(x)), true
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 'f'), math.Float64bits(x)), true
	case []any:
		b = binary.AppendUvarint(append(b, 'l'), uint64(len(x)))
		for _, e := range x {
			var ok bool
			if b, ok = appendCanon(b, e, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(append(b, 'm'), uint64(len(x)))
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			var ok bool
			if b, ok = appendCanon(b, x[k], depth+1); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

// memoBufs are the key buffers of memoKey.
var memoBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Len is the number of file outputs and of whole results held.
func (m *Memo) Len() (files, results int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m), len(m.results)
}
