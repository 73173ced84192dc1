package target

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// parseState is shared by the parser of an expression and the parsers of
// the nodegroups it expands.
type parseState struct {
	opt   Options
	memo  map[string]Expr // expanded nodegroups
	stack []string        // nodegroups being expanded, outermost first
}

type parser struct {
	st     *parseState
	src    string
	nested bool // parsing a nodegroup definition
	toks   []token
	i      int
	depth  int // nesting of parentheses and "not"
}

// maxDepth bounds the nesting of parentheses and "not", so that the
// recursive-descent parser cannot exhaust the stack.
const maxDepth = 1000

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tLParen
	tRParen
	tAnd
	tOr
	tNot
)

type token struct {
	kind tokKind
	pos  int // byte offset into src
	text string
	leaf Expr // already parsed target, when the lexer had to parse it
}

// cycleError travels unwrapped from the nodegroup that closes a cycle up
// to the outermost expression, which reports it at its own N@.
type cycleError struct{ chain []string }

func (e *cycleError) Error() string {
	return "nodegroup cycle: " + strings.Join(e.chain, " -> ")
}

func (p *parser) errf(pos int, format string, args ...any) error {
	return &Error{Expr: p.src, Column: column(p.src, pos), Msg: fmt.Sprintf(format, args...)}
}

// checkText rejects what no part of the grammar can use: invalid UTF-8,
// and non-ASCII whitespace (most likely pasted by accident, and which
// would blur where words end).
func (p *parser) checkText() error {
	for i := 0; i < len(p.src); {
		r, w := utf8.DecodeRuneInString(p.src[i:])
		if r == utf8.RuneError && w == 1 {
			return p.errf(i, "invalid UTF-8")
		}
		if r >= utf8.RuneSelf && unicode.IsSpace(r) {
			return p.errf(i, "non-ASCII whitespace %U; use a plain space", r)
		}
		i += w
	}
	return nil
}

// ---- lexer ----

var keywords = map[string]tokKind{"and": tAnd, "or": tOr, "not": tNot}

func (p *parser) emit(k tokKind, pos int, text string, leaf Expr) {
	p.toks = append(p.toks, token{kind: k, pos: pos, text: text, leaf: leaf})
}

// lex splits src into tokens. Words are separated by whitespace not
// preceded by a backslash. Parentheses are tokens of their own when they
// stand alone or stick to the start or end of a word.
func (p *parser) lex() {
	s := p.src
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && !(isSpace(s[j]) && s[j-1] != '\\') {
			j++
		}
		p.lexWord(i, j)
		i = j
	}
	p.emit(tEOF, len(s), "", nil)
}

func (p *parser) lexWord(start, end int) {
	s := p.src
outer:
	for start < end {
		w := s[start:end]
		if w[0] == '(' {
			p.emit(tLParen, start, "(", nil)
			start++
			continue
		}
		for _, kw := range [...]string{"not", "and", "or"} {
			if len(w) > len(kw) && w[len(kw)] == '(' && w[:len(kw)] == kw {
				p.emit(keywords[kw], start, kw, nil)
				start += len(kw)
				continue outer
			}
		}
		t := len(w) - len(strings.TrimRight(w, ")"))
		if t == len(w) {
			for k := 0; k < t; k++ {
				p.emit(tRParen, start+k, ")", nil)
			}
			return
		}
		k := 0
		var leaf Expr
		if t > 0 {
			if letter, _, _, typed := splitEngine(w); typed && (letter == 'E' || letter == 'P') {
				// A regular expression has parentheses of its own: keep
				// them all if that makes a valid target, else peel off
				// those its own parentheses do not account for.
				if e, err := p.parseWord(w, start); err == nil {
					leaf = e
				} else if c := min(t, -regexBalance(w)); c > 0 {
					if e, err := p.parseWord(w[:len(w)-c], start); err == nil {
						k, leaf = c, e
					}
				}
			} else if b := parenBalance(w); b < 0 {
				k = min(t, -b)
			}
		}
		body := w[:len(w)-k]
		if kw, ok := keywords[body]; ok {
			p.emit(kw, start, body, nil)
		} else {
			p.emit(tWord, start, body, leaf)
		}
		for c := 0; c < k; c++ {
			p.emit(tRParen, start+len(body)+c, ")", nil)
		}
		return
	}
}

// ---- parser ----

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func describe(t token) string {
	if t.kind == tEOF {
		return "end of expression"
	}
	txt := t.text
	if utf8.RuneCountInString(txt) > 40 {
		r := []rune(txt)
		txt = string(r[:37]) + "..."
	}
	return fmt.Sprintf("%q", txt)
}

func (p *parser) parseCompound() (Expr, error) {
	if err := p.checkText(); err != nil {
		return nil, err
	}
	if s, e := trimSpaceEsc(p.src); s == e {
		return nil, p.errf(0, "empty expression")
	}
	p.lex()
	e, err := p.parseOr(nil)
	if err != nil {
		return nil, err
	}
	switch t := p.peek(); t.kind {
	case tEOF:
		return e, nil
	case tRParen:
		return nil, p.errf(t.pos, `unbalanced ")": no "(" to close`)
	default:
		return nil, p.errf(t.pos, `expected "and" or "or" before %s`, describe(t))
	}
}

// after is the token before the operand being parsed (nil at the start),
// for error messages.
func (p *parser) parseOr(after *token) (Expr, error) {
	x, err := p.parseAnd(after)
	if err != nil {
		return nil, err
	}
	terms := []Expr{x}
	for p.peek().kind == tOr {
		op := p.next()
		y, err := p.parseAnd(&op)
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	return newOr(terms), nil
}

func (p *parser) parseAnd(after *token) (Expr, error) {
	x, err := p.parseNot(after)
	if err != nil {
		return nil, err
	}
	terms := []Expr{x}
	for {
		t := p.peek()
		switch t.kind {
		case tAnd:
			p.next()
		case tNot:
			// Salt reads "a not b" as "a and not b".
		default:
			return newAnd(terms), nil
		}
		y, err := p.parseNot(&t)
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
}

func (p *parser) parseNot(after *token) (Expr, error) {
	if t := p.peek(); t.kind == tNot {
		p.next()
		x, err := p.deeper(t, func() (Expr, error) { return p.parseNot(&t) })
		if err != nil {
			return nil, err
		}
		if n, ok := x.(*NotExpr); ok {
			return n.x, nil
		}
		return &NotExpr{x: x}, nil
	}
	return p.parsePrimary(after)
}

// deeper runs parse one level deeper than t, refusing to go past maxDepth
// (the recursion is bounded, whatever the input).
func (p *parser) deeper(t token, parse func() (Expr, error)) (Expr, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, p.errf(t.pos, "expression nested too deeply")
	}
	defer func() { p.depth-- }()
	return parse()
}

func (p *parser) parsePrimary(after *token) (Expr, error) {
	t := p.next()
	switch t.kind {
	case tWord:
		if t.leaf != nil {
			return t.leaf, nil
		}
		return p.parseWord(t.text, t.pos)
	case tLParen:
		x, err := p.deeper(t, func() (Expr, error) { return p.parseOr(&t) })
		if err != nil {
			return nil, err
		}
		switch c := p.peek(); c.kind {
		case tRParen:
			p.next()
			return x, nil
		case tEOF:
			return nil, p.errf(t.pos, `unbalanced "(": no ")" closes it`)
		default:
			return nil, p.errf(c.pos, `expected "and", "or" or ")" before %s`, describe(c))
		}
	}
	if after == nil {
		return nil, p.errf(t.pos, "expected a target, found %s", describe(t))
	}
	return nil, p.errf(t.pos, "expected a target after %q, found %s", after.text, describe(t))
}

func newAnd(terms []Expr) Expr {
	return junction(terms, func(a *AndExpr) []Expr { return a.terms }, func(ts []Expr) Expr { return &AndExpr{terms: ts} })
}

func newOr(terms []Expr) Expr {
	return junction(terms, func(o *OrExpr) []Expr { return o.terms }, func(ts []Expr) Expr { return &OrExpr{terms: ts} })
}

// junction joins terms with one operator, whose node is T: the terms of a
// term that is already a T (inner) are spliced in, so that "a and (b and c)"
// is one AndExpr of three terms; build makes the node. One term stands alone.
func junction[T Expr](terms []Expr, inner func(T) []Expr, build func([]Expr) Expr) Expr {
	if len(terms) == 1 {
		return terms[0]
	}
	var flat []Expr
	for _, t := range terms {
		if same, ok := t.(T); ok {
			flat = append(flat, inner(same)...)
		} else {
			flat = append(flat, t)
		}
	}
	return build(flat)
}

// ---- targets ----

// isDelimChar reports the characters Salt's G and P engines accept as a
// custom key delimiter ("G%@os%Debian").
func isDelimChar(c byte) bool {
	return c < utf8.RuneSelf && (unicode.IsPunct(rune(c)) || unicode.IsSymbol(rune(c))) &&
		!strings.ContainsRune(`@\()[]`, rune(c))
}

func isASCIILetter(c byte) bool { return 'A' <= c&^0x20 && c&^0x20 <= 'Z' }

// splitEngine recognises a "X@" or, for G, P, I and J, "Xd@" prefix (d a
// delimiter). n is the length of the prefix.
func splitEngine(w string) (letter, delim byte, n int, typed bool) {
	if len(w) >= 2 && isASCIILetter(w[0]) && w[1] == '@' {
		return w[0], ':', 2, true
	}
	if len(w) >= 3 && strings.IndexByte("GPIJ", w[0]) >= 0 && isDelimChar(w[1]) && w[2] == '@' {
		return w[0], w[1], 3, true
	}
	return 0, 0, 0, false
}

// parseWord parses one word of a compound expression, at byte offset pos.
func (p *parser) parseWord(w string, pos int) (Expr, error) {
	letter, delim, n, typed := splitEngine(w)
	if !typed {
		return p.globLeaf(w, pos)
	}
	rest, rpos := w[n:], pos+n
	if letter >= 'a' && letter <= 'z' {
		return nil, p.errf(pos, "unknown target type %q (type letters are upper-case: G P I L E S N)", w[:n])
	}
	if rest == "" {
		if msg := missingAfter(letter, delim, w[:n]); msg != "" {
			return nil, p.errf(rpos, "%s", msg)
		}
	}
	switch letter {
	case 'G', 'P':
		return p.factLeaf(rest, rpos, delim, letter == 'P')
	case 'L':
		return p.listLeaf(rest, rpos)
	case 'E':
		return p.regexLeaf(rest, rpos)
	case 'S':
		return p.cidrLeaf(rest, rpos)
	case 'N':
		return p.nodegroupLeaf(rest, rpos)
	case 'I':
		return p.settingLeaf(rest, rpos, delim)
	case 'J':
		return nil, p.errf(pos, "pillar regex targeting (J@) is not supported (use I@ with a glob)")
	case 'R':
		return nil, p.errf(pos, "range targeting (R@) is not supported")
	}
	return nil, p.errf(pos, "unknown target type %q (want G P I L E S N)", w[:n])
}

// missingAfter is the error for a target type (typ, e.g. "G@") with
// nothing after it, "" for a letter that is not a supported type.
func missingAfter(letter, delim byte, typ string) string {
	switch letter {
	case 'G', 'P', 'I':
		return fmt.Sprintf("expected key%cvalue after %q", delim, typ)
	case 'L':
		return "empty list after L@"
	case 'E':
		return "empty regular expression after E@"
	case 'S':
		return "expected an address or CIDR after S@"
	case 'N':
		return "expected a nodegroup name after N@"
	}
	return ""
}

func (p *parser) globLeaf(s string, pos int) (Expr, error) {
	g, gerr := compileGlob(s, false)
	if gerr != nil {
		return nil, p.errf(pos+gerr.pos, "%s", gerr.msg)
	}
	return &GlobExpr{pattern: s, g: g}, nil
}

func (p *parser) listLeaf(s string, pos int) (Expr, error) {
	l := &ListExpr{set: map[string]struct{}{}}
	off := 0
	for _, el := range strings.Split(s, ",") {
		a, b := trimSpaceEsc(el)
		id := el[a:b]
		for i := 0; i < len(id); i++ {
			if isSpace(id[i]) {
				return nil, p.errf(pos+off+a+i, "whitespace in peel id %q", id)
			}
		}
		off += len(el) + 1
		if id == "" {
			continue // Salt ignores empty elements
		}
		if _, dup := l.set[id]; !dup {
			l.set[id] = struct{}{}
			l.ids = append(l.ids, id)
		}
	}
	if len(l.ids) == 0 {
		return nil, p.errf(pos, "empty list")
	}
	return l, nil
}

// compileRegex checks re on its own (so that a stray ')' cannot escape
// the anchoring group) and then compiles the anchored form.
func (p *parser) compileRegex(re string, pos int, fold bool) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(re); err != nil {
		off, msg := 0, err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			msg = fmt.Sprintf("%s: `%s`", se.Code, se.Expr)
			if k := strings.Index(re, se.Expr); se.Expr != "" && k >= 0 {
				off = k
			}
		}
		return nil, p.errf(pos+off, "bad regular expression: %s", msg)
	}
	prefix := "^(?:"
	if fold {
		prefix = "(?i)^(?:"
	}
	c, err := regexp.Compile(prefix + closeQuote(re) + ")")
	if err != nil {
		return nil, p.errf(pos, "bad regular expression: %v", err)
	}
	return c, nil
}

func (p *parser) regexLeaf(s string, pos int) (Expr, error) {
	re, err := p.compileRegex(s, pos, false)
	if err != nil {
		return nil, err
	}
	return &RegexExpr{pattern: s, re: re}, nil
}

// factLeaf parses "key:key:...:value". The last part is the value
// pattern. Like Salt, when the value itself contains the delimiter (a MAC
// or IPv6 address, say) shorter key paths are tried as well, each taking
// the rest as its value; a peel matches if any reading matches.
// settingLeaf is I@: a fact leaf matched against the peel's settings.
func (p *parser) settingLeaf(s string, pos int, delim byte) (Expr, error) {
	e, err := p.factLeaf(s, pos, delim, false)
	if err != nil {
		return nil, err
	}
	e.(*FactExpr).settings = true
	return e, nil
}

func (p *parser) factLeaf(s string, pos int, delim byte, regex bool) (Expr, error) {
	parts := strings.Split(s, string(delim))
	if len(parts) == 1 {
		return nil, p.errf(pos+len(s), "expected %q between fact key and value pattern", delim)
	}
	if parts[len(parts)-1] == "" {
		return nil, p.errf(pos+len(s)-1, "empty value pattern")
	}
	if parts[0] == "" {
		return nil, p.errf(pos, "empty fact key")
	}
	// starts[i] is the offset of parts[i] in s.
	starts := make([]int, len(parts))
	for i := 1; i < len(parts); i++ {
		starts[i] = starts[i-1] + len(parts[i-1]) + 1
	}
	f := &FactExpr{text: s, delim: delim, regex: regex}
	var primaryErr error
	for idx := len(parts) - 1; idx >= 1; idx-- {
		if idx < len(parts)-1 && idx > maxFallbackKeys {
			continue
		}
		keyErr := error(nil)
		for k, key := range parts[:idx] {
			if key == "" {
				keyErr = p.errf(pos+starts[k], "empty fact key")
				break
			}
			if i := strings.IndexAny(key, " \t\n\v\f\r\\"); i >= 0 {
				keyErr = p.errf(pos+starts[k]+i, "whitespace or backslash in fact key %q", key)
				break
			}
		}
		var c factCand
		err := keyErr
		if err == nil {
			val := s[starts[idx]:]
			vpos := pos + starts[idx]
			c = factCand{path: parts[:idx:idx]}
			if regex {
				c.re, err = p.compileRegex(val, vpos, true)
			} else {
				g, gerr := compileGlob(val, true)
				if gerr != nil {
					err = p.errf(vpos+gerr.pos, "%s", gerr.msg)
				}
				c.g = g
			}
		}
		if idx == len(parts)-1 {
			primaryErr = err
		}
		if err == nil {
			f.cands = append(f.cands, c)
		}
	}
	if len(f.cands) == 0 {
		return nil, primaryErr
	}
	return f, nil
}

// maxFallbackKeys bounds the key paths tried besides the main reading of
// a fact target, keeping the parse of a long target from going quadratic.
const maxFallbackKeys = 10

// regexBalance counts '(' minus ')' in a regular expression, skipping
// escapes, classes and \Q...\E quotes.
func regexBalance(s string) int {
	bal := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) && s[i+1] == 'Q' {
				e := strings.Index(s[i+2:], `\E`)
				if e < 0 {
					return bal
				}
				i += 2 + e + 1
			} else {
				i++
			}
		case '[':
			j := i + 1
			if j < len(s) && s[j] == '^' {
				j++
			}
			if j < len(s) && s[j] == ']' {
				j++
			}
			for j < len(s) && s[j] != ']' {
				switch {
				case s[j] == '\\':
					j += 2
				case s[j] == '[' && j+1 < len(s) && s[j+1] == ':':
					if e := strings.Index(s[j+2:], ":]"); e >= 0 {
						j += 2 + e + 2
					} else {
						j++
					}
				default:
					j++
				}
			}
			i = j
		case '(':
			bal++
		case ')':
			bal--
		}
	}
	return bal
}

func (p *parser) cidrLeaf(s string, pos int) (Expr, error) {
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		pfx, err = netip.ParsePrefix(s)
		if err != nil {
			return nil, p.errf(pos, "bad CIDR %q: %v", s, unquoteNetErr(err))
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, p.errf(pos, "bad IP address %q: %v", s, unquoteNetErr(err))
		}
		if a.Zone() != "" {
			return nil, p.errf(pos, "bad IP address %q: zones are not allowed", s)
		}
		a = a.Unmap()
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	return &CIDRExpr{prefix: pfx.Masked()}, nil
}

// unquoteNetErr drops the input echoed by net/netip errors.
func unquoteNetErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		return msg[i+3:]
	}
	if i := strings.LastIndex(msg, `": `); i >= 0 {
		return msg[i+3:]
	}
	return msg
}

func (p *parser) nodegroupLeaf(name string, pos int) (Expr, error) {
	def, ok := p.st.opt.Nodegroups[name]
	if !ok {
		return nil, p.errf(pos, "unknown nodegroup %q", name)
	}
	if e, ok := p.st.memo[name]; ok {
		return e, nil
	}
	for i, n := range p.st.stack {
		if n == name {
			chain := append(append([]string(nil), p.st.stack[i:]...), name)
			ce := &cycleError{chain: chain}
			if p.nested {
				return nil, ce
			}
			return nil, p.errf(pos, "%s", ce.Error())
		}
	}
	p.st.stack = append(p.st.stack, name)
	sub := &parser{st: p.st, src: def, nested: true}
	e, err := sub.parseCompound()
	p.st.stack = p.st.stack[:len(p.st.stack)-1]
	if err != nil {
		var ce *cycleError
		if errors.As(err, &ce) {
			if p.nested {
				return nil, ce
			}
			return nil, p.errf(pos, "%s", ce.Error())
		}
		return nil, p.errf(pos, "in nodegroup %q: %v", name, err)
	}
	p.st.memo[name] = e
	return e, nil
}
