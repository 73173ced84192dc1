package settings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
)

// Options are the per-compile callbacks and bounds.
type Options struct {
	// Context bounds the compile (nil: Background).
	Context context.Context
	// Secret opens a token. Nil gives a masked compile: every secret is
	// "<secret>", and tokens are still checked to be well formed.
	Secret func(token string) (string, error)
	// Basket answers {{ basket TARGET NAME }}; nil makes it an error.
	Basket func(target, name string) (map[string]any, error)
	// Limits bound each file's execution.
	Limits render.Limits
	// FactsNormalized says that facts are in NormalizeFacts' form already
	// (render.ParseFacts gives them so) and that the caller does not change
	// them while the result lives: Compile then uses them without a copy.
	FactsNormalized bool
	// Memo, when set, shares file outputs between compiles with the same
	// tree and Secret callback (see Memo); nil renders every file.
	Memo *Memo
}

// Result is one peel's compiled settings.
type Result struct {
	ID string
	// Files are the settings files applied, in merge order (names), and
	// Paths their paths in the tree.
	Files []string
	Paths []string
	// Tokens are the secret tokens the render opened, without repeats:
	// what the master seals to this peel (by Ref) for its local render.
	Tokens []string
	tree   map[string]any // secrets as render.Secret leaves
	// shared is what a result from a Memo has in common with the other
	// peels' results it is shared with (nil for one compiled alone).
	shared *sharedResult
}

// sharedResult is one compiled result that peels whose files all have the
// same inputs share (Memo): their tree, file lists and tokens are the same
// values, and its masked JSON is computed once.
type sharedResult struct {
	res        *Result
	maskedOnce sync.Once
	masked     []byte
	maskedErr  error
	hashOnce   sync.Once
	hash       string
}

// Compile loads the tree in fsys and compiles it for one peel. A master
// compiling for many peels Loads once and calls Tree.Compile.
func Compile(fsys fs.FS, id string, facts map[string]any, o Options) (*Result, error) {
	t, err := Load(fsys, LoadOptions{})
	if err != nil {
		return nil, err
	}
	return t.Compile(id, facts, o)
}

// Compile renders top.zy for the peel, picks the settings files whose
// targets match, renders each in order and deep-merges them (doc.go: the
// merge rule). Each file's {{ setting }} sees the merge of the files before
// it. facts are not changed: the templates get a normalised copy. Errors
// are *render.Error naming the file, line and column where known.
func (t *Tree) Compile(id string, facts map[string]any, o Options) (*Result, error) {
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !o.FactsNormalized || facts == nil {
		facts = render.NormalizeFacts(facts)
	}
	data := render.Data{ID: id, Facts: facts}
	entries, topOut, err := t.topFor(ctx, data, o)
	if err != nil {
		return nil, err
	}
	subj := &target.MapSubject{PeelID: id, Facts: facts}
	refs := selectFiles(entries, subj)
	var rkey []byte
	if o.Memo != nil && o.Limits == (render.Limits{}) {
		bp := memoBufs.Get().(*[]byte)
		defer memoBufs.Put(bp)
		if *bp = t.resultKey(*bp, refs, data); *bp != nil {
			rkey = *bp
			if sh := o.Memo.getResult(rkey); sh != nil {
				r := *sh.res
				r.ID = id
				return &r, nil
			}
		}
	}
	res := &Result{ID: id, tree: map[string]any{}}
	secret := o.Secret
	if secret == nil {
		secret = checkToken
	}
	seenTok := map[string]bool{}
	for _, ref := range refs {
		f, err := t.lookup(ref)
		if err != nil {
			if topOut != nil && ref.line > 0 && !t.hasProblem(ref.name) {
				return nil, renderedPosition(err, topOut)
			}
			return nil, err
		}
		n := f.static
		var out *render.Output
		if n == nil {
			var e *memoEntry
			if e, err = t.execute(ctx, f, data, o, secret, res); err != nil {
				return nil, err
			}
			n, out = e.node, e.out
			for _, tok := range e.tokens {
				if !seenTok[tok] {
					seenTok[tok] = true
					res.Tokens = append(res.Tokens, tok)
				}
			}
		}
		if err := mergeMap(f.path, res.tree, n); err != nil {
			if out != nil {
				return nil, renderedPosition(err, out)
			}
			return nil, err
		}
		res.Files = append(res.Files, f.name)
		res.Paths = append(res.Paths, f.path)
	}
	if rkey != nil {
		res.shared = &sharedResult{res: res}
		o.Memo.putResult(rkey, res.shared)
	}
	return res, nil
}

// resultKey is the Memo key of a whole result: the files selected, in
// order, with each one's memo key; nil when a file's output is not shared
// (it reads .id, calls setting, …) or not found.
func (t *Tree) resultKey(buf []byte, refs []fileRef, data render.Data) []byte {
	buf = append(buf[:0], "result\x00"...)
	for _, ref := range refs {
		f, ok := t.files[ref.name]
		if !ok {
			return nil
		}
		if f.static != nil {
			buf = append(append(buf, f.path...), 0)
			continue
		}
		if !f.memoOK {
			return nil
		}
		if buf, ok = appendMemoKey(buf, f, data); !ok {
			return nil
		}
	}
	return buf
}

// execute renders and decodes file f for one peel, or takes the output of
// an earlier peel with the same inputs from o.Memo.
func (t *Tree) execute(ctx context.Context, f *file, data render.Data, o Options, secret func(string) (string, error), res *Result) (*memoEntry, error) {
	var key []byte
	if o.Memo != nil && f.memoOK && o.Limits == (render.Limits{}) {
		bp := memoBufs.Get().(*[]byte)
		defer memoBufs.Put(bp)
		var ok bool
		if *bp, ok = memoKey(*bp, f, data); ok {
			key = *bp
			if e := o.Memo.get(key); e != nil {
				return e, nil
			}
		}
	}
	fns := render.Funcs{
		Secret:  secret,
		Basket:  o.Basket,
		Setting: settingLookup(res.tree, res.Files),
	}
	out, err := f.tmpl.Execute(ctx, data, fns, o.Limits)
	if err != nil {
		return nil, err
	}
	n, err := t.decoded.Decode(f.path, out, o.Limits.MaxOutput)
	if err != nil {
		return nil, renderedPosition(err, out)
	}
	if err := checkFileRoot(f.path, n); err != nil {
		return nil, renderedPosition(err, out)
	}
	e := &memoEntry{node: n, out: out, tokens: out.Tokens()}
	if key != nil {
		o.Memo.put(f.path, string(key), e)
	}
	return e, nil
}

// topFor gives the decoded top.zy for a peel, and its rendered output when
// top.zy is a template (positions are then in that output).
func (t *Tree) topFor(ctx context.Context, data render.Data, o Options) ([]topEntry, *render.Output, error) {
	if t.topNode != nil {
		return t.topEntries, nil, nil
	}
	fns := render.Funcs{
		Secret: func(string) (string, error) {
			return "", errors.New("top.zy cannot use secrets")
		},
	}
	out, err := t.top.Execute(ctx, data, fns, o.Limits)
	if err != nil {
		return nil, nil, err
	}
	n, err := t.decoded.Decode(TopFile, out, o.Limits.MaxOutput)
	if err != nil {
		return nil, nil, renderedPosition(err, out)
	}
	e, err := t.parseTop(n)
	if err != nil {
		return nil, nil, renderedPosition(err, out)
	}
	return e, out, nil
}

func (t *Tree) hasProblem(name string) bool {
	_, ok := t.problems[name]
	return ok
}

// renderedPosition says that a position is in the rendered text (not the
// template) and quotes that line, masked.
func renderedPosition(err error, out *render.Output) error {
	var re *render.Error
	if !errors.As(err, &re) || re.Line == 0 {
		return err
	}
	lines := bytes.Split(out.Text(), []byte("\n"))
	quote := ""
	if re.Line <= len(lines) {
		l := out.Mask(string(lines[re.Line-1]))
		if len(l) > 120 {
			l = l[:120] + "…"
		}
		quote = fmt.Sprintf(" [rendered line %d: %q]", re.Line, l)
	}
	return &render.Error{File: re.File, Msg: fmt.Sprintf("rendered line %d column %d: %s%s", re.Line, re.Col, re.Msg, quote), Err: re.Err}
}

// checkToken is the masked compile's Secret: the token must parse; its
// value stays unknown.
func checkToken(tok string) (string, error) {
	if _, err := ParseToken(tok); err != nil {
		return "", err
	}
	return render.Masked, nil
}

// settingLookup is {{ setting }} for the file after files: it sees the
// merge so far.
func settingLookup(tree map[string]any, files []string) func(string) (any, error) {
	return func(key string) (any, error) {
		v, ok, err := lookupPath(tree, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			before := "no file is merged before this one"
			if len(files) > 0 {
				before = "files merged before this one: " + strings.Join(files, ", ")
			}
			return nil, fmt.Errorf("%q is %w (%s)", key, render.ErrNotSet, before)
		}
		return v, nil
	}
}

// lookupPath walks a colon path ("a:b:0:c") through maps and lists.
func lookupPath(tree map[string]any, key string) (any, bool, error) {
	if key == "" {
		return nil, false, errors.New("empty setting key (want a:b:c)")
	}
	var cur any = tree
	for _, k := range strings.Split(key, ":") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false, nil
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false, nil
			}
			cur = c[i]
		default:
			return nil, false, nil
		}
	}
	return cur, true, nil
}

// Get returns the value at a colon path (secrets as render.Secret).
func (r *Result) Get(key string) (any, bool) {
	v, ok, err := lookupPath(r.tree, key)
	return v, ok && err == nil
}

// MaskedJSON is the JSON of Masked (keys sorted), computed once for all
// the peels a Memo shares the result with. The bytes are shared: do not
// change them.
func (r *Result) MaskedJSON() ([]byte, error) {
	if r.shared == nil {
		return r.maskedJSON()
	}
	sh := r.shared
	sh.maskedOnce.Do(func() { sh.masked, sh.maskedErr = r.maskedJSON() })
	return sh.masked, sh.maskedErr
}

// MaskedJSONHash is MaskedJSON with SettingsHashOf of it, both computed
// once for all the peels a Memo shares the result with.
func (r *Result) MaskedJSONHash() ([]byte, string, error) {
	masked, err := r.MaskedJSON()
	if err != nil {
		return nil, "", err
	}
	if r.shared == nil {
		return masked, SettingsHashOf(masked), nil
	}
	sh := r.shared
	sh.hashOnce.Do(func() { sh.hash = SettingsHashOf(masked) })
	return masked, sh.hash, nil
}

// maskedJSON is json.Marshal(r.Masked()) without the copy: a render.Secret
// marshals as the string Masked does (its MarshalJSON), and json.Marshal
// compacts and HTML-escapes a Marshaler's output as it escapes a string,
// so the bytes are the same (TestMaskedJSON_AsMasked).
func (r *Result) maskedJSON() ([]byte, error) { return json.Marshal(r.tree) }

// Masked returns a copy of the settings with every secret as "<secret>".
func (r *Result) Masked() map[string]any {
	return copyTree(r.tree, func(render.Secret) any { return render.Masked }).(map[string]any)
}

// Revealed returns a copy of the settings with secrets in plaintext. Only
// for a sealed copy or an operator who asked to reveal.
func (r *Result) Revealed() map[string]any {
	return copyTree(r.tree, func(s render.Secret) any { return s.Reveal() }).(map[string]any)
}

// Tree returns the settings as merged, secrets as render.Secret values
// (masked when printed or marshalled). It is the result's own map: do not
// change it.
func (r *Result) Tree() map[string]any { return r.tree }

// SecretPaths lists the colon paths of the secret values, sorted.
func (r *Result) SecretPaths() []string {
	var out []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		switch x := v.(type) {
		case render.Secret:
			out = append(out, strings.Join(path, ":"))
		case map[string]any:
			for k, e := range x {
				walk(e, append(path, k))
			}
		case []any:
			for i, e := range x {
				walk(e, append(path, strconv.Itoa(i)))
			}
		}
	}
	walk(r.tree, nil)
	slices.Sort(out)
	return out
}

func copyTree(v any, secret func(render.Secret) any) any {
	switch x := v.(type) {
	case render.Secret:
		return secret(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyTree(e, secret)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = copyTree(e, secret)
		}
		return l
	}
	return v
}
