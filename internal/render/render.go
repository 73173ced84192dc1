package render

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Limits bound one execution. Zero fields take the defaults.
type Limits struct {
	// MaxOutput is the most bytes an execution may write, and the largest
	// value (string, list or map, by expanded size) a function may return.
	MaxOutput int
	// MaxSteps bounds loop iterations + function calls + value nodes
	// examined.
	MaxSteps int64
	// Timeout is the wall-clock bound of one execution.
	Timeout time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxOutput = 1 << 20
	DefaultMaxSteps  = 1_000_000
	DefaultTimeout   = 2 * time.Second
	// MaxDepth is how deeply values built in a template may nest.
	MaxDepth = 100
)

func (l Limits) withDefaults() Limits {
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// Funcs are the callbacks behind secret, setting and basket for one
// execution. A nil callback makes its function an error, except Secret: nil
// renders every secret as "<secret>" (a masked render).
type Funcs struct {
	// Secret opens a sealed token (the text inside {{ secret "…" }}).
	Secret func(token string) (string, error)
	// Setting looks up a merged setting by its colon path ("a:b:c"),
	// returning an error wrapping ErrNotSet for a key that is not set.
	// Values may hold Secret leaves; they come into the template as
	// secrets. The result is copied before the template sees it.
	Setting func(key string) (any, error)
	// Basket returns entry name of every peel target matches, by peel id.
	Basket func(target, name string) (map[string]any, error)
}

// Data is what a template sees: .id and .facts.
type Data struct {
	ID    string
	Facts map[string]any
}

// Template is a parsed file. It is safe for concurrent Execute.
type Template struct {
	name   string
	base   *template.Template
	static bool // no actions at all: the output is the source
	src    []byte
	pool   sync.Pool
}

// Parse parses src as the template file name. Errors are *Error.
func Parse(name string, src []byte) (*Template, error) {
	t := &Template{name: name, src: src}
	t.static = !bytes.Contains(src, []byte("{{"))
	base := template.New(name).Option("missingkey=error").Funcs(prototypeFuncs)
	if _, err := base.Parse(string(src)); err != nil {
		return nil, parseError(name, src, err)
	}
	if err := rewrite(name, base); err != nil {
		return nil, err
	}
	t.base = base
	return t, nil
}

// Name is the file name given to Parse.
func (t *Template) Name() string { return t.name }

// Static reports whether the file has no template actions, so that its
// output is its source for every peel (callers may decode it once).
func (t *Template) Static() bool { return t.static }

// executor is one clone of the template with functions bound to its state;
// used by one execution at a time.
type executor struct {
	tmpl *template.Template
	st   *state
}

func (t *Template) executor() (*executor, error) {
	if e, ok := t.pool.Get().(*executor); ok {
		return e, nil
	}
	c, err := t.base.Clone()
	if err != nil {
		return nil, err
	}
	st := &state{}
	c.Funcs(st.funcMap())
	return &executor{tmpl: c, st: st}, nil
}

// Execute renders the template for one peel. The output's text holds
// placeholders where secrets go; see Output.
func (t *Template) Execute(ctx context.Context, data Data, fns Funcs, lim Limits) (*Output, error) {
	lim = lim.withDefaults()
	if t.static {
		if len(t.src) > lim.MaxOutput {
			return nil, &Error{File: t.name, Msg: (&LimitError{What: "output", Limit: int64(lim.MaxOutput)}).Error(), Err: &LimitError{What: "output", Limit: int64(lim.MaxOutput)}}
		}
		return &Output{text: t.src}, nil
	}
	e, err := t.executor()
	if err != nil {
		return nil, &Error{File: t.name, Msg: err.Error(), Err: err}
	}
	st := e.st
	st.reset(ctx, fns, lim)
	w := &limitWriter{st: st, max: lim.MaxOutput}
	root := map[string]any{"id": data.ID, "facts": data.Facts}
	if data.Facts == nil {
		root["facts"] = map[string]any{}
	}
	err = e.tmpl.Execute(w, root)
	out := &Output{text: w.buf.Bytes(), nonce: st.nonce, secrets: st.secrets, tokens: st.tokens}
	st.release()
	t.pool.Put(e)
	if err != nil {
		return nil, execError(t.name, err)
	}
	return out, nil
}

// limitWriter caps the output and checks the clock.
type limitWriter struct {
	st  *state
	buf bytes.Buffer
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, &LimitError{What: "output", Limit: int64(w.max)}
	}
	if err := w.st.step(1); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

// state is the per-execution state the bound functions share.
type state struct {
	ctx      context.Context
	deadline time.Time
	fns      Funcs
	lim      Limits
	steps    int64
	nextTime int64 // steps count at which the clock is read next
	nonce    string
	secrets  []string       // plaintext by placeholder index
	tokens   []string       // the argument of each secret call, by index
	byToken  map[string]int // token → index, so a token used twice is one secret
	memo     map[memoKey]weight
}

func (s *state) reset(ctx context.Context, fns Funcs, lim Limits) {
	s.ctx, s.fns, s.lim = ctx, fns, lim
	s.deadline = time.Now().Add(lim.Timeout)
	s.steps, s.nextTime = 0, 1024
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.nonce = hex.EncodeToString(b[:])
	s.secrets, s.tokens, s.byToken = nil, nil, nil
	clear(s.memo)
}

// release drops references the pooled executor must not keep.
func (s *state) release() {
	s.ctx, s.fns = nil, Funcs{}
	s.secrets, s.tokens, s.byToken = nil, nil, nil
	if len(s.memo) > 1024 {
		s.memo = nil
	} else {
		clear(s.memo)
	}
}

// step charges n steps and, every 1024, checks the clock and the context.
func (s *state) step(n int64) error {
	s.steps += n
	if s.steps > s.lim.MaxSteps {
		return &LimitError{What: "steps", Limit: s.lim.MaxSteps}
	}
	if s.steps >= s.nextTime {
		s.nextTime = s.steps + 1024
		if time.Now().After(s.deadline) {
			return &LimitError{What: "time", Limit: int64(s.lim.Timeout)}
		}
		if s.ctx != nil {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Placeholders are "ZS" + 16 hex digits of nonce + "N" + index + "Z": only
// letters and digits, so they survive any YAML scalar style, quote and
// toJson unchanged, and the nonce is new for every execution so a template
// cannot forge one.
func placeholder(nonce string, i int) string {
	return "ZS" + nonce + "N" + strconv.Itoa(i) + "Z"
}

// secretArg is a secret inside a running template: printed as its
// placeholder, refused by functions that take text.
type secretArg struct{ ph string }

func (s secretArg) String() string { return s.ph }

// MarshalJSON keeps the placeholder through toJson.
func (s secretArg) MarshalJSON() ([]byte, error) { return json.Marshal(s.ph) }

func (s *state) addSecret(token, plain string) secretArg {
	if i, ok := s.byToken[token]; ok && token != "" {
		return secretArg{placeholder(s.nonce, i)}
	}
	i := len(s.secrets)
	s.secrets = append(s.secrets, plain)
	s.tokens = append(s.tokens, token)
	if token != "" {
		if s.byToken == nil {
			s.byToken = map[string]int{}
		}
		s.byToken[token] = i
	}
	return secretArg{placeholder(s.nonce, i)}
}

// Output is one execution's result. Its text holds a placeholder wherever a
// secret was printed; the plaintexts stay beside it, so the text may be
// logged, quoted in errors or parsed without exposing them.
type Output struct {
	text    []byte
	nonce   string
	secrets []string
	tokens  []string
}

// Text is the rendered text with placeholders for secrets.
func (o *Output) Text() []byte { return o.text }

// String is the text with every secret shown as <secret>.
func (o *Output) String() string { return o.Mask(string(o.text)) }

// Tokens are the arguments of the secret calls the execution made, in
// order, without repeats.
func (o *Output) Tokens() []string {
	var out []string
	for _, t := range o.tokens {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// HasSecret reports whether s holds a placeholder of this output.
func (o *Output) HasSecret(s string) bool {
	return o.nonce != "" && strings.Contains(s, "ZS"+o.nonce+"N")
}

// Mask replaces this output's placeholders in s with <secret>.
func (o *Output) Mask(s string) string {
	if !o.HasSecret(s) {
		return s
	}
	v, _ := o.substitute(s, func(int) string { return Masked })
	return v
}

// Resolve turns a decoded scalar back into what it is: s itself, or a
// Secret when it holds a placeholder (the whole scalar becomes secret).
func (o *Output) Resolve(s string) any {
	if !o.HasSecret(s) {
		return s
	}
	v, ok := o.substitute(s, func(i int) string { return o.secrets[i] })
	if !ok {
		// A broken placeholder (a function cut one): keep it masked.
		return NewSecret(Masked)
	}
	return NewSecret(v)
}

func (o *Output) substitute(s string, val func(int) string) (string, bool) {
	return o.substituteWith(s, "ZS"+o.nonce+"N", val)
}

func (o *Output) substituteWith(s, prefix string, val func(int) string) (string, bool) {
	var b strings.Builder
	ok := true
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String(), ok
		}
		b.WriteString(s[:i])
		rest := s[i+len(prefix):]
		j := strings.IndexByte(rest, 'Z')
		n, err := strconv.Atoi(rest[:max(j, 0)])
		if j < 0 || err != nil || n < 0 || n >= len(o.secrets) {
			ok = false
			b.WriteString(Masked)
			s = rest
			continue
		}
		b.WriteString(val(n))
		s = rest[j+1:]
	}
}

// Masked is how a secret is shown.
const Masked = "<secret>"

// Secret is a secret value in a rendered document. Every way of printing,
// logging or marshalling it shows <secret>; Reveal is the only way to the
// plaintext. The plaintext sits behind a pointer so that even printing by
// reflection (a Secret in an unexported field, where fmt cannot call its
// methods) shows an address, not the text.
type Secret struct{ p *string }

// NewSecret wraps a plaintext.
func NewSecret(plain string) Secret { return Secret{p: &plain} }

// Reveal returns the plaintext.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

func (s Secret) String() string   { return Masked }
func (s Secret) GoString() string { return Masked }

// Format masks the value whatever the verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Masked)) }

// MarshalJSON masks the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(Masked) }

// MarshalText masks the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Masked), nil }

// MarshalYAML masks the value.
func (s Secret) MarshalYAML() (any, error) { return Masked, nil }

// ErrNoCallback is returned by setting or basket when the caller gave no
// callback for it.
var ErrNoCallback = errors.New("not available here")
