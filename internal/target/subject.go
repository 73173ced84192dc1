package target

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MapSubject is a ready Subject over a peel's id, its facts as decoded
// from JSON, and its addresses. Use a pointer to avoid copying it into
// the interface on every match.
type MapSubject struct {
	PeelID string
	Facts  map[string]any
	// Addresses lists the peel's IP addresses. When nil, Addrs derives
	// them from Facts["network"]["addresses"], a list of strings
	// ("10.0.0.5" or "10.0.0.5/24").
	Addresses []netip.Addr
	// Settings are the peel's settings for I@ (secrets masked); nil
	// matches no I@ target.
	Settings map[string]any
}

// Setting walks path through the settings as Fact does through facts.
func (m MapSubject) Setting(path []string) (any, bool) {
	if m.Settings == nil || len(path) == 0 {
		return nil, false
	}
	return lookup(m.Settings, path)
}

// ID returns PeelID.
func (m MapSubject) ID() string { return m.PeelID }

// Fact walks path through nested maps and lists, as Salt's
// traverse_dict_and_list does: a map is indexed by key; a list by a
// decimal index (negative counts from the end) or, failing that, by the
// key of the first map element that has it.
func (m MapSubject) Fact(path []string) (any, bool) {
	if m.Facts == nil || len(path) == 0 {
		return nil, false
	}
	return lookup(m.Facts, path)
}

func lookup(facts map[string]any, path []string) (any, bool) {
	var cur any = facts
	for _, k := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case map[string]string:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			if i, err := strconv.Atoi(k); err == nil {
				if i < 0 {
					i += len(c)
				}
				if i < 0 || i >= len(c) {
					return nil, false
				}
				cur = c[i]
				continue
			}
			found := false
			for _, el := range c {
				if em, ok := el.(map[string]any); ok {
					if v, ok := em[k]; ok {
						cur, found = v, true
						break
					}
				}
			}
			if !found {
				return nil, false
			}
		case []string:
			i, err := strconv.Atoi(k)
			if err != nil {
				return nil, false
			}
			if i < 0 {
				i += len(c)
			}
			if i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Addrs returns Addresses, or when that is nil the addresses listed in
// the facts at network:addresses (AddrsPath). Entries that do not parse are
// skipped.
func (m MapSubject) Addrs() []netip.Addr {
	if m.Addresses != nil {
		return m.Addresses
	}
	v, ok := lookup(m.Facts, AddrsPath)
	if !ok {
		return nil
	}
	return AddrsOf(v)
}

// AddrsPath is where a peel's fact document lists its addresses, the
// addresses S@ matches.
var AddrsPath = []string{"network", "addresses"}

// AddrsOf reads the value at AddrsPath: a list of strings ("10.0.0.5" or
// "10.0.0.5/24") or one string. Entries that do not parse are skipped.
func AddrsOf(v any) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		} else if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Addr())
		}
	}
	switch l := v.(type) {
	case []any:
		for _, el := range l {
			if s, ok := el.(string); ok {
				add(s)
			}
		}
	case []string:
		for _, s := range l {
			add(s)
		}
	case string:
		add(l)
	}
	return out
}

// FactPaths lists the fact paths an expression can look at (every reading
// of its G@/P@ terms, AddrsPath for S@), each once, so that a caller can
// prepare exactly those values (a master's fact index caches them per peel)
// instead of decoding whole documents. An IDOnly expression has none.
func FactPaths(e Expr) [][]string {
	var out [][]string
	seen := map[string]bool{}
	add := func(p []string) {
		k := strings.Join(p, "\x00")
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	var walk func(Expr)
	walk = func(e Expr) {
		switch x := e.(type) {
		case *AndExpr:
			for _, t := range x.terms {
				walk(t)
			}
		case *OrExpr:
			for _, t := range x.terms {
				walk(t)
			}
		case *NotExpr:
			walk(x.x)
		case *FactExpr:
			if x.settings {
				return // I@: settings, not facts
			}
			for _, c := range x.cands {
				add(c.path)
			}
		case *CIDRExpr:
			add(AddrsPath)
		}
	}
	walk(e)
	return out
}

// SubjectFromJSON is the Subject of a peel with its fact document doc (a
// JSON object). Masters and the CLI both match through it, so a target
// selects the same peels wherever it is resolved. A doc that does not parse
// gives a Subject without facts and the error.
func SubjectFromJSON(id string, doc []byte) (*MapSubject, error) {
	s := &MapSubject{PeelID: id}
	if err := json.Unmarshal(doc, &s.Facts); err != nil {
		s.Facts = nil
		return s, fmt.Errorf("facts of %s: %w", id, err)
	}
	return s, nil
}
