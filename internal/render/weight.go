package render

import (
	"encoding/json"
	"math"
	"reflect"
)

// weight is a value's expanded size (nodes plus string bytes, a shared
// sub-value counted at every place it appears, as printing would) and depth.
type weight struct {
	size  int64
	depth int
}

// memoKey identifies a map or slice by its storage: the same list appended
// into a structure twice is walked once.
type memoKey struct {
	p uintptr
	n int
}

// inProgress marks a container being walked: meeting it again is a cycle.
var inProgress = weight{size: -1}

func (s *state) weigh(v reflect.Value) (weight, error) {
	if !v.IsValid() {
		return weight{size: 1}, nil
	}
	return s.weighValue(v, 0)
}

func (s *state) weighValue(v reflect.Value, depth int) (weight, error) {
	if depth > MaxDepth {
		return weight{}, &LimitError{What: "depth", Limit: MaxDepth}
	}
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return weight{size: 1}, nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return weight{size: int64(v.Len()) + 1}, nil
	case reflect.Map, reflect.Slice, reflect.Array:
	default:
		return weight{size: 1}, nil
	}
	n := v.Len()
	if n == 0 {
		return weight{size: 1}, nil
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
		return weight{size: int64(n) + 1}, nil // []byte is text
	}
	var key memoKey
	if v.Kind() != reflect.Array {
		key = memoKey{p: v.Pointer(), n: n}
		if w, ok := s.memo[key]; ok {
			if w == inProgress {
				return weight{}, &LimitError{What: "cycle"}
			}
			return w, nil
		}
		if s.memo == nil {
			s.memo = map[memoKey]weight{}
		}
		s.memo[key] = inProgress
	}
	if err := s.step(int64(n)); err != nil {
		return weight{}, err
	}
	total := weight{size: 1}
	add := func(w weight) {
		total.size = satAdd(total.size, w.size)
		total.depth = max(total.depth, w.depth+1)
	}
	// Fast paths for the types facts and templates build.
	switch x := v.Interface().(type) {
	case map[string]any:
		for k, e := range x {
			w, err := s.weighAny(e, depth+1)
			if err != nil {
				return weight{}, err
			}
			add(weight{size: satAdd(w.size, int64(len(k))), depth: w.depth})
		}
	case []any:
		for _, e := range x {
			w, err := s.weighAny(e, depth+1)
			if err != nil {
				return weight{}, err
			}
			add(w)
		}
	case []string:
		for _, e := range x {
			add(weight{size: int64(len(e)) + 1})
		}
	case []int:
		total = weight{size: int64(n) + 1, depth: 1}
	default:
		if v.Kind() == reflect.Map {
			it := v.MapRange()
			for it.Next() {
				kw, err := s.weighValue(it.Key(), depth+1)
				if err != nil {
					return weight{}, err
				}
				w, err := s.weighValue(it.Value(), depth+1)
				if err != nil {
					return weight{}, err
				}
				add(weight{size: satAdd(w.size, kw.size), depth: w.depth})
			}
		} else {
			for i := 0; i < n; i++ {
				w, err := s.weighValue(v.Index(i), depth+1)
				if err != nil {
					return weight{}, err
				}
				add(w)
			}
		}
	}
	if total.depth > MaxDepth {
		return weight{}, &LimitError{What: "depth", Limit: MaxDepth}
	}
	if v.Kind() != reflect.Array {
		s.memo[key] = total
	}
	return total, nil
}

// weighAny is weighValue for an element already held as any, sparing a
// reflect.Value for scalars.
func (s *state) weighAny(e any, depth int) (weight, error) {
	switch x := e.(type) {
	case nil, bool, int, int64, float64, json.Number:
		return weight{size: 1}, nil
	case string:
		return weight{size: int64(len(x)) + 1}, nil
	case secretArg:
		return weight{size: int64(len(x.ph)) + 1}, nil
	}
	return s.weighValue(reflect.ValueOf(e), depth)
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Normalize returns a copy of v with numbers as templates compare them:
// whole JSON numbers become int64 (so {{ if gt .facts.cpus 4 }} works),
// others float64. Maps and lists are copied, so the result is the caller's
// to let a template change.
func Normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Normalize(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = Normalize(e)
		}
		return l
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return Normalize(f)
		}
		return x.String()
	case int:
		return int64(x)
	}
	return v
}

// NormalizeFacts is Normalize for a fact document.
func NormalizeFacts(facts map[string]any) map[string]any {
	if facts == nil {
		return map[string]any{}
	}
	return Normalize(facts).(map[string]any)
}
