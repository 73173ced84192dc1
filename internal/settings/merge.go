package settings

import (
	"fmt"

	"github.com/zester-io/zester/internal/render"
)

// Merge tags. The default rule is Salt's pillar merge with
// pillar_merge_lists off ("recurse"): maps merge key by key, recursively;
// anything else (a list, a scalar, a map over a non-map) replaces what the
// earlier files set. A tag on a value changes that for the value:
const (
	// TagAppend on a list appends it to the list the earlier files set
	// (Salt's pillar_merge_lists, per key).
	TagAppend = "!append"
	// TagReplace on a map replaces the earlier map instead of merging
	// into it (yamlex's !reset).
	TagReplace = "!replace"
)

// mergeMap merges the map node src of file into dst.
func mergeMap(file string, dst map[string]any, src *render.Node) error {
	if src == nil {
		return nil
	}
	for _, p := range src.Pairs {
		if err := mergeKey(file, dst, p.Key, p.Value); err != nil {
			return err
		}
	}
	return nil
}

func mergeKey(file string, dst map[string]any, key string, v *render.Node) error {
	if v == nil {
		dst[key] = nil
		return nil
	}
	switch v.Tag {
	case "":
		if v.Kind == render.Map {
			if d, ok := dst[key].(map[string]any); ok {
				return mergeMap(file, d, v)
			}
		}
		c, err := value(file, v)
		if err != nil {
			return err
		}
		dst[key] = c
	case TagReplace:
		c, err := value(file, v)
		if err != nil {
			return err
		}
		dst[key] = c
	case TagAppend:
		if v.Kind != render.List {
			return tagErr(file, v, "!append goes on a list, not a %s", kindOf(v))
		}
		c, err := value(file, v)
		if err != nil {
			return err
		}
		switch old := dst[key].(type) {
		case nil:
			dst[key] = c
		case []any:
			dst[key] = append(append(make([]any, 0, len(old)+len(v.Items)), old...), c.([]any)...)
		default:
			return tagErr(file, v, "!append on %q: the files before this one set it to a %s, not a list", key, goKind(old))
		}
	default:
		return tagErr(file, v, "unknown tag %s (settings know %s and %s)", v.Tag, TagAppend, TagReplace)
	}
	return nil
}

// value converts a node to a fresh plain value; inside a value that
// replaces (nothing to merge with), !append and !replace have nothing to
// act on and mean the value itself.
func value(file string, n *render.Node) (any, error) {
	if n == nil {
		return nil, nil
	}
	switch n.Tag {
	case "", TagAppend, TagReplace:
	default:
		return nil, tagErr(file, n, "unknown tag %s (settings know %s and %s)", n.Tag, TagAppend, TagReplace)
	}
	switch n.Kind {
	case render.Map:
		m := make(map[string]any, len(n.Pairs))
		for _, p := range n.Pairs {
			c, err := value(file, p.Value)
			if err != nil {
				return nil, err
			}
			m[p.Key] = c
		}
		return m, nil
	case render.List:
		l := make([]any, len(n.Items))
		for i, it := range n.Items {
			c, err := value(file, it)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	}
	return n.Value, nil
}

func tagErr(file string, n *render.Node, format string, args ...any) error {
	return &render.Error{File: file, Line: n.Line, Col: n.Col, Msg: fmt.Sprintf(format, args...)}
}

func kindOf(n *render.Node) string {
	switch n.Kind {
	case render.Map:
		return "map"
	case render.List:
		return "list"
	}
	return "scalar"
}

func goKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "map"
	case []any:
		return "list"
	}
	return "scalar"
}
