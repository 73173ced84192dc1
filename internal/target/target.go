package target

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"
)

// Kind names a target type. The zero value means glob.
type Kind string

// The target kinds, with the salt/zester command-line flag that selects each.
const (
	KindGlob      Kind = "glob"      // default: shell glob on peel ids
	KindList      Kind = "list"      // -L: comma-separated peel ids
	KindPCRE      Kind = "pcre"      // -E: RE2 regular expression on peel ids
	KindFact      Kind = "fact"      // -G: key:key:glob on facts (Salt grains)
	KindFactPCRE  Kind = "factpcre"  // -P: key:key:regex on facts
	KindIPCIDR    Kind = "ipcidr"    // -S: CIDR or single address
	KindNodegroup Kind = "nodegroup" // -N: nodegroup name from the master config
	KindSettings  Kind = "settings"  // -I: key:key:glob on settings (Salt's pillar)
	KindCompound  Kind = "compound"  // -C: compound expression
)

// Options carries the master-side configuration Parse needs.
type Options struct {
	// Nodegroups maps a nodegroup name to its compound expression, as in
	// Salt's master "nodegroups" setting. Nodegroups are expanded at
	// parse time and may refer to each other with N@.
	Nodegroups map[string]string
}

// Expr is a parsed target expression. Exprs are immutable and safe for
// concurrent use.
type Expr interface {
	// Match reports whether the peel described by p is targeted.
	Match(p Subject) bool
	// String renders the expression in compound syntax, with nodegroups
	// expanded: Parse(KindCompound, e.String(), Options{}) yields an
	// expression that matches exactly the same peels.
	String() string
	// IDOnly reports whether Match looks at nothing but the peel id, so
	// that a master can resolve the target without facts or addresses.
	IDOnly() bool
}

// SettingsSubject is a Subject that also knows the peel's settings, as the
// masters rendered them (I@). A Subject without it matches no I@ target.
// Secret values must be masked ("<secret>") in what Setting returns: a
// target must not tell anyone a secret one guess at a time.
type SettingsSubject interface {
	Setting(path []string) (any, bool)
}

// UsesSettings reports whether e has an I@ term, so that a resolver knows
// it must give Match a SettingsSubject.
func UsesSettings(e Expr) bool {
	switch n := e.(type) {
	case *AndExpr:
		return slices.ContainsFunc(n.terms, UsesSettings)
	case *OrExpr:
		return slices.ContainsFunc(n.terms, UsesSettings)
	case *NotExpr:
		return UsesSettings(n.x)
	case *FactExpr:
		return n.settings
	}
	return false
}

// Subject is what an expression is matched against: one peel.
type Subject interface {
	ID() string
	// Fact returns the value at a nested path in the peel's facts. Maps
	// are map[string]any, lists []any, scalars string, float64, bool or
	// json.Number.
	Fact(path []string) (any, bool)
	// Addrs returns every IP address the peel has.
	Addrs() []netip.Addr
}

// Error is a syntax or semantic error in a target expression.
type Error struct {
	Expr   string // the expression as given
	Column int    // 1-based, counted in characters (runes) into Expr
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("target %q column %d: %s", e.Expr, e.Column, e.Msg)
}

// KindFromFlag maps a salt-style command-line flag letter ("L", "E",
// "G", "P", "S", "N", "C"; "" for the default glob) to a Kind. A leading
// '-' is accepted.
func KindFromFlag(letter string) (Kind, error) {
	switch strings.TrimPrefix(letter, "-") {
	case "":
		return KindGlob, nil
	case "L":
		return KindList, nil
	case "E":
		return KindPCRE, nil
	case "G":
		return KindFact, nil
	case "P":
		return KindFactPCRE, nil
	case "S":
		return KindIPCIDR, nil
	case "N":
		return KindNodegroup, nil
	case "C":
		return KindCompound, nil
	case "I":
		return KindSettings, nil
	case "J":
		return "", fmt.Errorf("target: flag %q: pillar regex targeting is not supported (use -I with a glob)", letter)
	case "R":
		return "", fmt.Errorf("target: flag %q: range targeting is not supported", letter)
	}
	return "", fmt.Errorf("target: unknown target flag %q (want one of L E G P S N I C)", letter)
}

// Parse parses expr as a target of the given kind ("" means glob).
// Nodegroups are expanded, regular expressions compiled and patterns
// checked here, so Match cannot fail. Errors are *Error values naming the
// column at fault.
func Parse(kind Kind, expr string, opt Options) (Expr, error) {
	p := &parser{st: &parseState{opt: opt, memo: map[string]Expr{}}, src: expr}
	if err := p.checkText(); err != nil {
		return nil, err
	}
	if kind == KindCompound {
		return p.parseCompound()
	}
	start, end := trimSpaceEsc(expr)
	s := expr[start:end]
	if s == "" {
		if !isKnownKind(kind) {
			return nil, fmt.Errorf("target: unknown kind %q", kind)
		}
		return nil, p.errf(0, "empty expression")
	}
	switch kind {
	case "", KindGlob:
		return p.globLeaf(s, start)
	case KindList:
		return p.listLeaf(s, start)
	case KindPCRE:
		return p.regexLeaf(s, start)
	case KindFact:
		return p.factLeaf(s, start, ':', false)
	case KindFactPCRE:
		return p.factLeaf(s, start, ':', true)
	case KindIPCIDR:
		return p.cidrLeaf(s, start)
	case KindNodegroup:
		return p.nodegroupLeaf(s, start)
	case KindSettings:
		return p.settingLeaf(s, start, ':')
	}
	return nil, fmt.Errorf("target: unknown kind %q", kind)
}

func isKnownKind(k Kind) bool {
	switch k {
	case "", KindGlob, KindList, KindPCRE, KindFact, KindFactPCRE, KindIPCIDR, KindNodegroup, KindSettings, KindCompound:
		return true
	}
	return false
}

// IDs returns the exact set of peel ids the expression matches when that
// set is known without looking at any peel: a list, a glob without
// wildcards, or an "or" of those. ok is false for anything else. The ids
// are in first-seen order without duplicates.
func IDs(e Expr) (ids []string, ok bool) {
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	var walk func(Expr) bool
	walk = func(e Expr) bool {
		switch n := e.(type) {
		case *ListExpr:
			for _, id := range n.ids {
				add(id)
			}
			return true
		case *GlobExpr:
			lit, ok := n.Literal()
			if ok {
				add(lit)
			}
			return ok
		case *OrExpr:
			for _, t := range n.terms {
				if !walk(t) {
					return false
				}
			}
			return true
		}
		return false
	}
	if e == nil || !walk(e) {
		return nil, false
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, true
}

// isSpace reports ASCII whitespace, the only whitespace allowed in an
// expression.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// trimSpaceEsc returns the bounds of s without surrounding whitespace; a
// trailing whitespace character escaped with a backslash is kept.
func trimSpaceEsc(s string) (start, end int) {
	end = len(s)
	for start < end && isSpace(s[start]) {
		start++
	}
	for end > start && isSpace(s[end-1]) && !(end-2 >= start && s[end-2] == '\\') {
		end--
	}
	return start, end
}

// column converts a byte offset into src to a 1-based rune column.
func column(src string, off int) int {
	if off > len(src) {
		off = len(src)
	}
	if off < 0 {
		off = 0
	}
	return utf8.RuneCountInString(src[:off]) + 1
}
