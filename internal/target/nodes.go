package target

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The node types below are what Parse builds. They are exported so that
// callers can inspect a parsed expression (see also IDs); build them only
// through Parse.

// AndExpr matches when every term matches.
type AndExpr struct{ terms []Expr }

// OrExpr matches when any term matches.
type OrExpr struct{ terms []Expr }

// NotExpr matches when its operand does not.
type NotExpr struct{ x Expr }

// GlobExpr is a glob on the peel id.
type GlobExpr struct {
	pattern string
	g       *glob
}

// ListExpr is a set of peel ids.
type ListExpr struct {
	ids []string
	set map[string]struct{}
}

// RegexExpr is a regular expression on the peel id, anchored at the start
// like Python's re.match.
type RegexExpr struct {
	pattern string
	re      *regexp.Regexp
}

// FactExpr matches a fact value against a glob (G@) or a regular
// expression (P@), case-insensitively as Salt does; or, with settings, a
// setting value against a glob (I@, Salt's pillar match).
type FactExpr struct {
	text     string // everything after "G@"
	delim    byte
	regex    bool
	settings bool
	cands    []factCand // readings of text, longest key path first
}

type factCand struct {
	path []string
	g    *glob
	re   *regexp.Regexp
}

// CIDRExpr matches peels with an address inside a prefix.
type CIDRExpr struct{ prefix netip.Prefix }

// Terms returns the operands.
func (e *AndExpr) Terms() []Expr { return append([]Expr(nil), e.terms...) }

// Terms returns the operands.
func (e *OrExpr) Terms() []Expr { return append([]Expr(nil), e.terms...) }

// Operand returns the negated expression.
func (e *NotExpr) Operand() Expr { return e.x }

// Pattern returns the glob as written.
func (e *GlobExpr) Pattern() string { return e.pattern }

// Literal returns the one id the glob matches when it has no wildcards.
func (e *GlobExpr) Literal() (string, bool) { return e.g.lit, e.g.literal }

// IDs returns the listed ids, without duplicates.
func (e *ListExpr) IDs() []string { return append([]string(nil), e.ids...) }

// Pattern returns the regular expression as written.
func (e *RegexExpr) Pattern() string { return e.pattern }

// Path returns the key path of the main reading (all parts but the last).
func (e *FactExpr) Path() []string {
	parts := strings.Split(e.text, string(e.delim))
	return parts[:len(parts)-1]
}

// Pattern returns the value pattern of the main reading (the last part).
func (e *FactExpr) Pattern() string {
	return e.text[strings.LastIndexByte(e.text, e.delim)+1:]
}

// IsSettings reports whether the expression matches settings (I@), not
// facts.
func (e *FactExpr) IsSettings() bool { return e.settings }

// IsRegex reports whether the value pattern is a regular expression (P@)
// rather than a glob (G@).
func (e *FactExpr) IsRegex() bool { return e.regex }

// Prefix returns the network; a single address is a full-length prefix.
func (e *CIDRExpr) Prefix() netip.Prefix { return e.prefix }

// ---- Match ----

func (e *AndExpr) Match(p Subject) bool {
	for _, t := range e.terms {
		if !t.Match(p) {
			return false
		}
	}
	return true
}

func (e *OrExpr) Match(p Subject) bool {
	for _, t := range e.terms {
		if t.Match(p) {
			return true
		}
	}
	return false
}

func (e *NotExpr) Match(p Subject) bool { return !e.x.Match(p) }

func (e *GlobExpr) Match(p Subject) bool { return e.g.match(p.ID()) }

func (e *ListExpr) Match(p Subject) bool {
	_, ok := e.set[p.ID()]
	return ok
}

func (e *RegexExpr) Match(p Subject) bool { return e.re.MatchString(p.ID()) }

func (e *FactExpr) Match(p Subject) bool {
	get := p.Fact
	if e.settings {
		s, ok := p.(SettingsSubject)
		if !ok {
			return false
		}
		get = s.Setting
	}
	for i := range e.cands {
		c := &e.cands[i]
		if v, ok := get(c.path); ok && c.matchValue(v) {
			return true
		}
	}
	return false
}

func (c *factCand) matchString(s string) bool {
	if c.re != nil {
		return c.re.MatchString(s)
	}
	return c.g.match(s)
}

// matchKeys is Salt's test on a dict: the pattern names one of its keys
// ('*' matches any dict).
func (c *factCand) matchKeys(m map[string]any) bool {
	if c.g != nil && c.g.allStar {
		return true
	}
	for k := range m {
		if c.matchString(k) {
			return true
		}
	}
	return false
}

func (c *factCand) matchValue(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return c.matchKeys(x)
	case []any:
		for _, el := range x {
			if m, ok := el.(map[string]any); ok {
				if c.matchKeys(m) {
					return true
				}
				continue
			}
			if s, ok := scalarString(el); ok && c.matchString(s) {
				return true
			}
		}
		return false
	case []string:
		for _, s := range x {
			if c.matchString(s) {
				return true
			}
		}
		return false
	}
	s, ok := scalarString(v)
	return ok && c.matchString(s)
}

// scalarString is the text a fact value is matched as, following Python's
// str() where it matters: whole numbers without a fraction, null as None.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case float64:
		return formatFloat(x), true
	case float32:
		return formatFloat(float64(x)), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case json.Number:
		return string(x), true
	case nil:
		return "None", true
	}
	return "", false
}

func formatFloat(f float64) string {
	if f > -1e18 && f < 1e18 && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func (e *CIDRExpr) Match(p Subject) bool {
	is4 := e.prefix.Addr().Is4()
	for _, a := range p.Addrs() {
		a = a.WithZone("")
		if is4 {
			a = a.Unmap()
		}
		if e.prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ---- IDOnly ----

func (e *AndExpr) IDOnly() bool   { return allIDOnly(e.terms) }
func (e *OrExpr) IDOnly() bool    { return allIDOnly(e.terms) }
func (e *NotExpr) IDOnly() bool   { return e.x.IDOnly() }
func (e *GlobExpr) IDOnly() bool  { return true }
func (e *ListExpr) IDOnly() bool  { return true }
func (e *RegexExpr) IDOnly() bool { return true }
func (e *FactExpr) IDOnly() bool  { return false }
func (e *CIDRExpr) IDOnly() bool  { return false }

func allIDOnly(ts []Expr) bool {
	for _, t := range ts {
		if !t.IDOnly() {
			return false
		}
	}
	return true
}

// ---- String ----

func (e *AndExpr) String() string {
	parts := make([]string, len(e.terms))
	for i, t := range e.terms {
		if _, ok := t.(*OrExpr); ok {
			parts[i] = "( " + t.String() + " )"
		} else {
			parts[i] = t.String()
		}
	}
	return strings.Join(parts, " and ")
}

func (e *OrExpr) String() string {
	parts := make([]string, len(e.terms))
	for i, t := range e.terms {
		parts[i] = t.String()
	}
	return strings.Join(parts, " or ")
}

func (e *NotExpr) String() string {
	switch e.x.(type) {
	case *AndExpr, *OrExpr:
		return "not ( " + e.x.String() + " )"
	}
	return "not " + e.x.String()
}

// String renders the glob as a bare word, disguising what the compound
// lexer would otherwise read differently: a leading '(', trailing ')'s, a
// keyword, or a type prefix such as "G@". Each disguise is a one-character
// class, which matches the same.
func (e *GlobExpr) String() string {
	w := escapeWS(e.pattern)
	_, _, _, typed := splitEngine(w)
	kwPrefix := false
	for _, kw := range [...]string{"not(", "and(", "or("} {
		if strings.HasPrefix(w, kw) {
			kwPrefix = true
		}
	}
	if _, kw := keywords[w]; kw || typed || kwPrefix || w[0] == '(' {
		// All of these start with an ASCII letter or '('.
		w = "[" + w[:1] + "]" + w[1:]
	}
	return escapeTrailingBackslash(escapeTrailingParens(w))
}

// escapeTrailingParens turns the closing parentheses at the end of a glob
// word into classes when the lexer would take them for group ends.
func escapeTrailingParens(w string) string {
	b := parenBalance(w)
	if !strings.HasSuffix(w, ")") || b >= 0 {
		return w
	}
	n := min(len(w)-len(strings.TrimRight(w, ")")), -b)
	return w[:len(w)-n] + strings.Repeat("[)]", n)
}

func (e *ListExpr) String() string {
	w := "L@" + strings.Join(e.ids, ",")
	if strings.HasSuffix(w, ")") && parenBalance(w) < 0 || strings.HasSuffix(w, `\`) {
		// Ids ending the word in a way the lexer would misread: spell
		// the set as an exact regex.
		q := make([]string, len(e.ids))
		for i, id := range e.ids {
			q[i] = regexp.QuoteMeta(id)
		}
		return "E@(?:" + strings.Join(q, "|") + ")$"
	}
	return w
}

func (e *RegexExpr) String() string { return "E@" + closeQuote(escapeRegexWS(e.pattern)) }

func (e *FactExpr) String() string {
	head := "G"
	switch {
	case e.regex:
		head = "P"
	case e.settings:
		head = "I"
	}
	if e.delim != ':' {
		head += string(e.delim)
	}
	head += "@"
	i := strings.IndexByte(e.text, e.delim) // the first part is a key: no whitespace
	key, rest := e.text[:i+1], e.text[i+1:]
	if e.regex {
		return head + key + closeQuote(escapeRegexWS(rest))
	}
	return escapeTrailingBackslash(escapeTrailingParens(head + key + escapeWS(rest)))
}

func (e *CIDRExpr) String() string { return "S@" + e.prefix.String() }
