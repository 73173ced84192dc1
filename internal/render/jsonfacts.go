package render

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ParseFacts decodes a JSON fact document (an object) into what
// NormalizeFacts(json.Unmarshal(doc)) gives, in one pass and without
// encoding/json's reflection: objects as map[string]any, arrays as []any,
// whole numbers below 2^53 as int64, other numbers as float64, strings
// (invalid UTF-8 as U+FFFD, like encoding/json), bools and nil. A master
// decodes every peel's facts for each render, so this is on its hot path.
// Errors name the byte offset.
func ParseFacts(doc []byte) (map[string]any, error) {
	p := &jsonParser{b: doc}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, p.err("a fact document is a JSON object")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.err("text after the document")
	}
	return v.(map[string]any), nil
}

// FactFilter is the set of fact paths a reader needs (a trie): ParseFacts
// with one keeps, at each level, only the keys on a path, and below a
// path's end the whole value; other values are checked and skipped,
// without building them. A value on a path that is not an object is kept
// whole (a path may index into a list). The nil filter keeps everything.
type FactFilter struct {
	next map[string]*FactFilter
	all  bool
	// keys (NewFactKeysFilter) keeps every key of an object at a path's
	// end, with the value nil unless a longer path goes on through it.
	keys bool
}

// NewFactFilter returns the filter of paths (below .facts). An empty path
// keeps everything: nil.
func NewFactFilter(paths [][]string) *FactFilter {
	root := &FactFilter{next: map[string]*FactFilter{}}
	for _, p := range paths {
		if len(p) == 0 {
			return nil
		}
		n := root
		for _, k := range p {
			if n.all {
				break
			}
			c := n.next[k]
			if c == nil {
				c = &FactFilter{next: map[string]*FactFilter{}}
				n.next[k] = c
			}
			n = c
		}
		n.all, n.next = true, nil
	}
	return root
}

// NewFactKeysFilter returns the filter of paths for a reader that needs, of
// an object at a path's end, only its keys (a fact target matches a map by
// its keys): such an object keeps every key, its values nil (checked and
// skipped) unless a longer path goes on through them. A value at a path's
// end that is not an object is kept whole, as NewFactFilter keeps it. An
// empty path keeps the keys of the document.
func NewFactKeysFilter(paths [][]string) *FactFilter {
	root := &FactFilter{next: map[string]*FactFilter{}}
	for _, p := range paths {
		n := root
		for _, k := range p {
			c := n.next[k]
			if c == nil {
				c = &FactFilter{next: map[string]*FactFilter{}}
				n.next[k] = c
			}
			n = c
		}
		n.keys = true
	}
	return root
}

// ParseFactsFiltered is ParseFacts keeping only what f needs: every lookup
// of a path of f finds what it finds in ParseFacts' result, and the
// document is refused where ParseFacts refuses it.
func ParseFactsFiltered(doc []byte, f *FactFilter) (map[string]any, error) {
	if f == nil {
		return ParseFacts(doc)
	}
	p := &jsonParser{b: doc}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, p.err("a fact document is a JSON object")
	}
	v, err := p.object(0, f)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.err("text after the document")
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

// maxJSONDepth bounds nesting (encoding/json's own bound is 10,000).
const maxJSONDepth = 10000

func (p *jsonParser) err(msg string) error {
	return fmt.Errorf("facts JSON at byte %d: %s", p.i, msg)
}

var errJSONEnd = errors.New("unexpected end")

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, p.err("nested too deeply")
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, p.err(errJSONEnd.Error())
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth, nil)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.err(fmt.Sprintf("unexpected %q", p.b[p.i]))
}

func (p *jsonParser) literal(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return p.err("invalid literal")
	}
	p.i += len(s)
	return nil
}

// object reads an object (p at '{'), keeping only the keys of f unless f
// is nil.
func (p *jsonParser) object(depth int, f *FactFilter) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, p.err("nested too deeply")
	}
	p.i++ // {
	m := map[string]any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.err("want an object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.err("want ':'")
		}
		p.i++
		p.space()
		var c *FactFilter
		if f != nil {
			c = f.next[k]
		}
		switch {
		case f != nil && c == nil:
			// Not needed: checked and passed.
			if err := p.skip(depth + 1); err != nil {
				return nil, err
			}
			if f.keys {
				m[k] = nil
			}
		case c != nil && !c.all && p.i < len(p.b) && p.b[p.i] == '{':
			v, err := p.object(depth+1, c)
			if err != nil {
				return nil, err
			}
			m[k] = v
		default:
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		if done, err := p.after('}'); done || err != nil {
			return m, err
		}
	}
}

// after passes what follows a member or an element: a comma (false) or
// the end of its object or array (true).
func (p *jsonParser) after(end byte) (bool, error) {
	p.space()
	if p.i >= len(p.b) {
		return false, p.err(errJSONEnd.Error())
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case end:
		p.i++
		return true, nil
	}
	return false, p.err(fmt.Sprintf("want ',' or '%c'", end))
}

// skip checks and passes one value without building it.
func (p *jsonParser) skip(depth int) error {
	if depth > maxJSONDepth {
		return p.err("nested too deeply")
	}
	p.space()
	if p.i >= len(p.b) {
		return p.err(errJSONEnd.Error())
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return nil
		}
		for {
			if c == '{' {
				p.space()
				if p.i >= len(p.b) || p.b[p.i] != '"' {
					return p.err("want an object key")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				p.space()
				if p.i >= len(p.b) || p.b[p.i] != ':' {
					return p.err("want ':'")
				}
				p.i++
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			if done, err := p.after(end); done || err != nil {
				return err
			}
		}
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	}
	return p.err(fmt.Sprintf("unexpected %q", p.b[p.i]))
}

// skipString checks and passes a string (p at its quote).
func (p *jsonParser) skipString() error {
	p.i++
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.err("control character in a string")
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return p.err(errJSONEnd.Error())
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				if _, ok := p.hex4(); !ok {
					return p.err("bad \\u escape")
				}
			default:
				return p.err("bad escape")
			}
			continue
		}
		p.i++
	}
	return p.err(errJSONEnd.Error())
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	l := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return l, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		if done, err := p.after(']'); done || err != nil {
			return l, err
		}
	}
}

// str reads a string; the plain case (no escape, ASCII or valid UTF-8) is
// one allocation.
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return string(appendValidUTF8(nil, s)), nil
			}
			return string(s), nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.err("control character in a string")
		}
		p.i++
	}
	return "", p.err(errJSONEnd.Error())
}

// escaped finishes a string with escapes, from its first one.
func (p *jsonParser) escaped(start int) (string, error) {
	buf := make([]byte, 0, p.i-start+16)
	buf = appendValidUTF8(buf, p.b[start:p.i])
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.err("control character in a string")
		case c != '\\':
			j := p.i
			for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
				j++
			}
			buf = appendValidUTF8(buf, p.b[p.i:j])
			p.i = j
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.b) {
			return "", p.err(errJSONEnd.Error())
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.err("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; a lone half is U+FFFD.
				r2 := rune(-1)
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return "", p.err("bad \\u escape")
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						buf = utf8.AppendRune(buf, dec)
						continue
					}
					p.i = save // the second escape stands on its own
				}
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.err("bad escape")
		}
	}
	return "", p.err(errJSONEnd.Error())
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// appendValidUTF8 appends s with each invalid byte as U+FFFD.
func appendValidUTF8(buf, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			buf = utf8.AppendRune(buf, utf8.RuneError)
		} else {
			buf = append(buf, s[:n]...)
		}
		s = s[n:]
	}
	return buf
}

// number reads a JSON number as Normalize gives it.
func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
	default:
		return nil, p.err("bad number")
	}
	digits := p.i - intStart
	plain := true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		plain = false
		p.i++
		if !p.digits() {
			return nil, p.err("bad number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		plain = false
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, p.err("bad number")
		}
	}
	text := p.b[start:p.i]
	if plain && digits <= 15 {
		// Below 10^15 < 2^53: exact, and what Normalize makes of it.
		var n int64
		for _, c := range text[intStart-start:] {
			n = n*10 + int64(c-'0')
		}
		if start != intStart {
			n = -n
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return nil, p.err(fmt.Sprintf("number %s: %v", text, err))
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), nil
	}
	return f, nil
}

func (p *jsonParser) digits() bool {
	s := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > s
}

// AppendFactsJSON appends a JSON text of facts as ParseFacts and
// ParseFactsFiltered give them (strings, whole numbers below 2^53 as
// int64, other numbers as float64, bools, nil, lists, maps), which those
// parse back to an equal value: a compact copy of what a filter kept, for a
// caller that reads it again and again. ok is false for a value of another
// type (nothing to rely on then).
func AppendFactsJSON(dst []byte, facts map[string]any) (out []byte, ok bool) {
	return appendFactJSON(dst, facts, 0)
}

func appendFactJSON(b []byte, v any, depth int) ([]byte, bool) {
	if depth > maxJSONDepth {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		if x {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case string:
		if !utf8.ValidString(x) {
			return b, false
		}
		return appendFactString(b, x), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) || (x == math.Trunc(x) && math.Abs(x) < 1<<53) {
			return b, false // not what the parsers make
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64), true
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendFactJSON(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case map[string]any:
		b = append(b, '{')
		first := true
		for k, e := range x {
			if !first {
				b = append(b, ',')
			}
			first = false
			if !utf8.ValidString(k) {
				return b, false
			}
			b = append(appendFactString(b, k), ':')
			var ok bool
			if b, ok = appendFactJSON(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	}
	return b, false
}

// appendFactString appends s as a JSON string: quote, backslash and control
// characters escaped, the rest as it is (the parsers make valid UTF-8).
func appendFactString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	return append(append(b, s[start:]...), '"')
}
