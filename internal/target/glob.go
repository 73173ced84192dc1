package target

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Glob patterns follow Python's fnmatch, which Salt uses: '*' matches any
// run of characters (dots and slashes included), '?' any one character,
// "[...]" one character of a class ("[!...]" or "[^...]" negated, ranges
// with '-', a ']' or '[' first in the class is a member). A backslash
// followed by whitespace stands for that whitespace character, so that a
// compound expression can carry it; any other backslash is literal.

const (
	gLit = iota
	gAny
	gStar
	gClass
)

type runeRange struct{ lo, hi rune }

type globItem struct {
	kind   uint8
	neg    bool
	r      rune
	ranges []runeRange
}

type glob struct {
	items   []globItem
	fold    bool
	literal bool   // no wildcards: matches lit only
	lit     string // unescaped pattern when literal
	prefix  string // when hasPre: pattern is a literal prefix then one '*'
	hasPre  bool
	allStar bool // pattern is nothing but '*'
}

type globError struct {
	pos int // byte offset into the pattern
	msg string
}

func compileGlob(p string, fold bool) (*glob, *globError) {
	g := &glob{fold: fold, literal: true}
	var lit strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && isSpace(p[i+1]):
			g.items = append(g.items, globItem{kind: gLit, r: rune(p[i+1])})
			lit.WriteByte(p[i+1])
			i += 2
		case c == '*':
			g.literal = false
			if n := len(g.items); n == 0 || g.items[n-1].kind != gStar {
				g.items = append(g.items, globItem{kind: gStar})
			}
			i++
		case c == '?':
			g.literal = false
			g.items = append(g.items, globItem{kind: gAny})
			i++
		case c == '[':
			g.literal = false
			it, end, err := parseClass(p, i)
			if err != nil {
				return nil, err
			}
			g.items = append(g.items, it)
			i = end
		default:
			r, w := utf8.DecodeRuneInString(p[i:])
			g.items = append(g.items, globItem{kind: gLit, r: r})
			lit.WriteString(p[i : i+w])
			i += w
		}
	}
	if g.literal {
		g.lit = lit.String()
		return g, nil
	}
	n := len(g.items)
	g.allStar = n == 1 && g.items[0].kind == gStar
	if !fold && n > 0 && g.items[n-1].kind == gStar {
		pre := true
		var b strings.Builder
		for _, it := range g.items[:n-1] {
			if it.kind != gLit {
				pre = false
				break
			}
			b.WriteRune(it.r)
		}
		if pre {
			g.hasPre, g.prefix = true, b.String()
		}
	}
	return g, nil
}

// classRune decodes one class member at p[i], honouring the
// backslash-whitespace escape.
func classRune(p string, i int) (rune, int) {
	if p[i] == '\\' && i+1 < len(p) && isSpace(p[i+1]) {
		return rune(p[i+1]), 2
	}
	return utf8.DecodeRuneInString(p[i:])
}

// parseClass parses the class opening at p[i] == '['. It returns the item
// and the offset just past the closing ']'.
func parseClass(p string, i int) (globItem, int, *globError) {
	it := globItem{kind: gClass}
	j := i + 1
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		it.neg = true
		j++
	}
	first := true
	for {
		if j >= len(p) {
			return it, 0, &globError{i, `unclosed "[" in pattern`}
		}
		if p[j] == ']' && !first {
			return it, j + 1, nil
		}
		if p[j] == '[' && !first {
			return it, 0, &globError{j, `"[" inside a [...] class (allowed only as its first member)`}
		}
		lo, w := classRune(p, j)
		j += w
		first = false
		hi := lo
		if j+1 < len(p) && p[j] == '-' && p[j+1] != ']' {
			if p[j+1] == '[' {
				return it, 0, &globError{j + 1, `"[" inside a [...] class (allowed only as its first member)`}
			}
			hi, w = classRune(p, j+1)
			j += 1 + w
		}
		it.ranges = append(it.ranges, runeRange{lo, hi})
	}
}

func (it *globItem) inClass(r rune) bool {
	for _, rg := range it.ranges {
		if rg.lo <= r && r <= rg.hi {
			return true
		}
	}
	return false
}

func (it *globItem) matchRune(r rune, fold bool) bool {
	switch it.kind {
	case gAny:
		return true
	case gLit:
		return r == it.r || fold && equalFoldRune(r, it.r)
	case gClass:
		in := it.inClass(r)
		if !in && fold {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if it.inClass(f) {
					in = true
					break
				}
			}
		}
		return in != it.neg
	}
	return false
}

func equalFoldRune(a, b rune) bool {
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}

func (g *glob) match(s string) bool {
	if g.literal {
		if g.fold {
			return strings.EqualFold(s, g.lit)
		}
		return s == g.lit
	}
	if g.allStar {
		return true
	}
	if g.hasPre {
		return strings.HasPrefix(s, g.prefix)
	}
	items := g.items
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for {
		if px < len(items) {
			it := &items[px]
			if it.kind == gStar {
				starPx, starSx = px, sx
				px++
				continue
			}
			if sx < len(s) {
				r, w := utf8.DecodeRuneInString(s[sx:])
				if it.matchRune(r, g.fold) {
					px++
					sx += w
					continue
				}
			}
		} else if sx == len(s) {
			return true
		}
		if starPx >= 0 && starSx < len(s) {
			_, w := utf8.DecodeRuneInString(s[starSx:])
			starSx += w
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
}

// parenBalance counts '(' minus ')' in a word, skipping glob classes. The
// lexer uses it to tell a target's own parentheses from closing groups.
func parenBalance(w string) int {
	bal := 0
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case '[':
			if _, end, err := parseClass(w, i); err == nil {
				i = end - 1
			}
		case '(':
			bal++
		case ')':
			bal--
		}
	}
	return bal
}

// escapeWS puts a backslash before every whitespace character that has
// none, so a glob or key path can stand as one word.
func escapeWS(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) && (i == 0 || s[i-1] != '\\') {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + n)
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) && (i == 0 || s[i-1] != '\\') {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// closeQuote ends a \Q quote left open at the end of a regular
// expression, so that text can follow it.
func closeQuote(re string) string {
	inQ := false
	for i := 0; i < len(re); i++ {
		if re[i] != '\\' || i+1 >= len(re) {
			continue
		}
		switch {
		case inQ && re[i+1] == 'E':
			inQ = false
		case !inQ && re[i+1] == 'Q':
			inQ = true
		case inQ:
			continue // a backslash in a quote is a literal
		}
		i++
	}
	if inQ {
		return re + `\E`
	}
	return re
}

// escapeTrailingBackslash turns a glob's final backslash into a class, so
// that the whitespace after the word does not join it.
func escapeTrailingBackslash(w string) string {
	if strings.HasSuffix(w, `\`) {
		return w[:len(w)-1] + `[\]`
	}
	return w
}

// escapeRegexWS makes a regular expression whitespace-free, or at least
// free of whitespace without a backslash before it, without changing what
// it matches: "a b" becomes `a\ b`, and inside \Q...\E the quote is
// closed around the escaped character.
func escapeRegexWS(s string) string {
	has := false
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			has = true
			break
		}
	}
	if !has {
		return s
	}
	var b strings.Builder
	inQ := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inQ {
			switch {
			case c == '\\' && i+1 < len(s) && s[i+1] == 'E':
				b.WriteString(`\E`)
				i++
				inQ = false
			case isSpace(c) && (i == 0 || s[i-1] != '\\'):
				b.WriteString(`\E\`)
				b.WriteByte(c)
				b.WriteString(`\Q`)
			default:
				b.WriteByte(c)
			}
			continue
		}
		switch {
		case c == '\\' && i+1 < len(s):
			if s[i+1] == 'Q' {
				inQ = true
			}
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case isSpace(c):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
