package state

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/peel/state/mod"
)

// DefaultStatesDir is where the state tree lives (the seed's path).
const DefaultStatesDir = "/srv/zester/states"

// TopFile is the file that maps targets to sls names.
const TopFile = "top.sls"

// Options configure compiling a tree for one peel.
type Options struct {
	// ID and Facts are the peel's: what templates see as .id and .facts,
	// and what top.sls targets match.
	ID    string
	Facts map[string]any
	// Funcs back setting, basket and secret in templates; nil callbacks
	// make those functions an error (settings and basket are optional).
	Funcs  render.Funcs
	Limits render.Limits
	// Table holds the state functions; nil is DefaultTable().
	Table *mod.Table
}

// ErrSecretInState is the error of a {{ secret }} written in a state file
// or a template of the tree, where no callback opens it.
var ErrSecretInState = errors.New(`a {{ secret }} in the state tree cannot be opened on a peel: states read secret values only through settings; put the token in a settings file (db: {password: {{ secret "zs1:…" }}}) and write {{ setting "db:password" }} here`)

// funcs is Funcs with secret refused when no callback opens it: the
// masters seal a peel only the values its settings use, so a token
// written in the tree would reach the host as the text <secret>.
func (o *Options) funcs() render.Funcs {
	f := o.Funcs
	if f.Secret == nil {
		f.Secret = func(string) (string, error) { return "", ErrSecretInState }
	}
	return f
}

func (o *Options) table() *mod.Table {
	if o.Table == nil {
		o.Table = DefaultTable()
	}
	return o.Table
}

// Environment is the one saltenv Zester reads; other top-level keys of
// top.sls are other environments and are refused.
const Environment = "base"

// arg is one "- key: value" item of a state's argument list.
type arg struct {
	key string
	val *render.Node
	pos Pos
}

// block is one module's call in a state declaration (file.managed and its
// arguments).
type block struct {
	module, function string
	args             []arg
	pos              Pos
}

// decl is one state id and its blocks, as written.
type decl struct {
	id, sls string
	pos     Pos
	blocks  []*block
}

// extension is one entry of an extend: section.
type extension struct {
	id     string
	blocks []*block
	pos    Pos
}

type loader struct {
	ctx     context.Context
	fsys    fs.FS
	opt     *Options
	done    map[string]bool
	decls   map[string]*decl
	order   []*decl
	extends []extension
	errs    errList
	// lines is the rendered text of the file being read, for modeSpelling.
	lines []string
}

func newLoader(ctx context.Context, fsys fs.FS, opt *Options) *loader {
	return &loader{ctx: ctx, fsys: fsys, opt: opt, done: map[string]bool{}, decls: map[string]*decl{}}
}

// slsFiles are the files an sls name may live in, in Salt's order of
// preference: web.nginx is web/nginx.sls, else web/nginx/init.sls.
func slsFiles(name string) []string {
	p := strings.ReplaceAll(name, ".", "/")
	return []string{p + ".sls", p + "/init.sls"}
}

// checkSLSName refuses names that are not a dotted path inside the tree.
func checkSLSName(name string) error {
	if name == "" {
		return errors.New("empty sls name")
	}
	if strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("sls name %q: write sls names with dots (web.nginx), not paths", name)
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return fmt.Errorf("sls name %q has an empty part", name)
		}
	}
	return nil
}

// relative resolves an include that starts with dots against the sls that
// includes it: in web/init.sls (sls web) ".nginx" is web.nginx, in
// web/app.sls (sls web.app) it is web.nginx too; each further dot goes up
// one level.
func relative(name, from string, fromInit bool) (string, error) {
	dots := len(name) - len(strings.TrimLeft(name, "."))
	if dots == 0 {
		return name, nil
	}
	pkg := strings.Split(from, ".")
	if !fromInit {
		pkg = pkg[:len(pkg)-1]
	}
	up := dots - 1
	if up > len(pkg) {
		return "", fmt.Errorf("include %q goes above the top of the tree from sls %s", name, from)
	}
	pkg = pkg[:len(pkg)-up]
	rest := name[dots:]
	if rest == "" {
		return "", fmt.Errorf("include %q names no sls", name)
	}
	return strings.Join(append(pkg, rest), "."), nil
}

// MaxFileSize bounds an .sls file (before rendering; render.Limits bounds
// the output).
const MaxFileSize = 8 << 20

// render reads, renders and decodes one file of the tree.
func (l *loader) render(file string) (*render.Node, error) {
	if st, err := fs.Stat(l.fsys, file); err == nil && st.Size() > MaxFileSize {
		return nil, errAt(Pos{File: file}, "%d bytes: over the limit of %d for an .sls file", st.Size(), MaxFileSize)
	}
	src, err := fs.ReadFile(l.fsys, file)
	if err != nil {
		return nil, &Error{Pos: Pos{File: file}, Msg: "cannot read: " + err.Error(), Err: err}
	}
	t, err := parsed(file, src)
	if err != nil {
		return nil, fromRender(err)
	}
	out, err := t.Execute(l.ctx, render.Data{ID: l.opt.ID, Facts: l.opt.Facts}, l.opt.funcs(), l.opt.Limits)
	if err != nil {
		return nil, fromRender(err)
	}
	n, err := render.Decode(file, out, 0)
	if err != nil {
		return nil, fromRender(err)
	}
	l.lines = strings.Split(string(out.Text()), "\n")
	return n, nil
}

// templates keeps parsed .sls templates across compiles, keyed by name
// and content: a peel applying the same tree again (a schedule, a second
// state.apply) skips parsing, and the template's pooled executors (a clone
// with ~200 functions bound, most of a small file's render) are reused.
// It is bounded; when full it starts over.
var templates = struct {
	sync.Mutex
	m map[[32]byte]*render.Template
}{m: map[[32]byte]*render.Template{}}

const maxTemplates = 4096

func parsed(file string, src []byte) (*render.Template, error) {
	h := sha256.New()
	h.Write([]byte(file))
	h.Write([]byte{0})
	h.Write(src)
	var key [32]byte
	h.Sum(key[:0])
	templates.Lock()
	t, ok := templates.m[key]
	templates.Unlock()
	if ok {
		return t, nil
	}
	t, err := render.Parse(file, src)
	if err != nil {
		return nil, err
	}
	templates.Lock()
	if len(templates.m) >= maxTemplates {
		clear(templates.m)
	}
	templates.m[key] = t
	templates.Unlock()
	return t, nil
}

// find returns the file of an sls name.
func (l *loader) find(name string) (string, bool) {
	for _, f := range slsFiles(name) {
		if st, err := fs.Stat(l.fsys, f); err == nil && !st.IsDir() {
			return f, true
		}
	}
	return "", false
}

// load loads sls name and, first, what it includes. from is where it was
// asked for (a top.sls entry, an include, the command line).
func (l *loader) load(name string, from Pos) {
	if l.done[name] {
		return
	}
	l.done[name] = true
	if err := checkSLSName(name); err != nil {
		l.errs.add(errAt(from, "%v", err))
		return
	}
	file, ok := l.find(name)
	if !ok {
		l.errs.add(errAt(from, "sls %s not found in the state tree (looked for %s)", name, strings.Join(slsFiles(name), " and ")))
		return
	}
	root, err := l.render(file)
	if err != nil {
		l.errs.add(err)
		return
	}
	if root == nil {
		return
	}
	if root.Kind != render.Map {
		l.errs.add(errAt(Pos{file, root.Line, root.Col}, "an .sls file is a map of state ids, not a %s", kindName(root.Kind)))
		return
	}
	isInit := strings.HasSuffix(file, "/init.sls")
	lines := l.lines // includes read other files
	for _, p := range root.Pairs {
		pos := Pos{file, p.KeyLine, p.KeyCol}
		switch p.Key {
		case "include":
			l.include(p.Value, name, isInit, file)
		case "extend":
			l.lines = lines
			l.extend(p.Value, file, pos)
		case "exclude":
			l.errs.add(errAt(pos, "exclude is not supported: remove the states from the include instead"))
		}
	}
	l.lines = lines
	for _, p := range root.Pairs {
		pos := Pos{file, p.KeyLine, p.KeyCol}
		switch p.Key {
		case "include", "extend", "exclude":
			continue
		}
		if strings.HasPrefix(p.Key, "__") {
			continue
		}
		d, err := l.decl(p.Key, name, p.Value, pos)
		if err != nil {
			l.errs.add(err)
			continue
		}
		if prev, dup := l.decls[d.id]; dup {
			l.errs.add(errAt(pos, "state id %q is already declared at %s (sls %s): state ids are unique in a run", d.id, prev.pos, prev.sls))
			continue
		}
		l.decls[d.id] = d
		l.order = append(l.order, d)
	}
}

func (l *loader) include(n *render.Node, from string, fromInit bool, file string) {
	items := []*render.Node{n}
	if n.Kind == render.List {
		items = n.Items
	}
	for _, it := range items {
		pos := Pos{file, it.Line, it.Col}
		var name string
		switch {
		case it.Kind == render.Scalar:
			s, ok := it.Value.(string)
			if !ok {
				l.errs.add(errAt(pos, "include: want an sls name, got %v", it.Value))
				continue
			}
			name = s
		case it.Kind == render.Map && len(it.Pairs) == 1:
			// Salt's "- web: {defaults: ...}": the defaults are Jinja
			// context, which this engine has no use for.
			l.errs.add(errAt(pos, "include: %s with a map (Jinja defaults/context) is not supported; write - %s", it.Pairs[0].Key, it.Pairs[0].Key))
			continue
		default:
			l.errs.add(errAt(pos, "include: want a list of sls names, got a %s", kindName(it.Kind)))
			continue
		}
		resolved, err := relative(name, from, fromInit)
		if err != nil {
			l.errs.add(errAt(pos, "%v", err))
			continue
		}
		l.load(resolved, pos)
	}
}

func (l *loader) extend(n *render.Node, file string, pos Pos) {
	if n.Kind != render.Map {
		l.errs.add(errAt(pos, "extend: want a map of state ids, got a %s", kindName(n.Kind)))
		return
	}
	for _, p := range n.Pairs {
		d, err := l.decl(p.Key, "", p.Value, Pos{file, p.KeyLine, p.KeyCol})
		if err != nil {
			l.errs.add(err)
			continue
		}
		l.extends = append(l.extends, extension{id: d.id, blocks: d.blocks, pos: d.pos})
	}
}

// decl parses one state id's map of module.function → arguments, in both
// of Salt's forms:
//
//	motd:                         nginx:
//	  file.managed:                 pkg:
//	    - contents: hi                - installed
//	                                  - version: 1.2
func (l *loader) decl(id, sls string, n *render.Node, pos Pos) (*decl, error) {
	if n != nil && n.Kind == render.Scalar {
		// The short form "vim: pkg.installed": one function, no arguments.
		if s, ok := n.Value.(string); ok && strings.Contains(s, ".") {
			n = &render.Node{Kind: render.Map, Line: n.Line, Col: n.Col, Pairs: []render.Pair{{Key: s, KeyLine: n.Line, KeyCol: n.Col}}}
		}
	}
	if n == nil || n.Kind != render.Map {
		k := "empty value"
		if n != nil && n.Value != nil {
			k = kindName(n.Kind)
		} else if n != nil && n.Kind != render.Scalar {
			k = kindName(n.Kind)
		}
		return nil, errAt(pos, "state %q: want a map of module.function to its arguments, got a %s", id, k)
	}
	d := &decl{id: id, sls: sls, pos: pos}
	seen := map[string]Pos{}
	for _, p := range n.Pairs {
		bpos := Pos{pos.File, p.KeyLine, p.KeyCol}
		if strings.HasPrefix(p.Key, "__") {
			continue
		}
		module, function, dotted := strings.Cut(p.Key, ".")
		if module == "" || (dotted && (function == "" || strings.Contains(function, "."))) {
			return nil, errAt(bpos, "state %q: %q is not module.function", id, p.Key)
		}
		if prev, dup := seen[module]; dup {
			return nil, errAt(bpos, "state %q: a second %s function (the first at %s): one state id calls each module once", id, module, prev)
		}
		seen[module] = bpos
		b := &block{module: module, function: function, pos: bpos}
		v := p.Value
		var items []*render.Node
		switch {
		case v == nil || (v.Kind == render.Scalar && v.Value == nil):
		case !dotted && v.Kind == render.Scalar:
			// "pkg: installed"
			items = []*render.Node{v}
		case v == nil || (v.Kind == render.Scalar && v.Value == nil):
		case v.Kind == render.List:
			items = v.Items
		default:
			return nil, errAt(Pos{pos.File, v.Line, v.Col}, "state %q, %s: want a list of arguments (- key: value), got a %s", id, p.Key, kindName(v.Kind))
		}
		for _, it := range items {
			ipos := Pos{pos.File, it.Line, it.Col}
			switch {
			case it.Kind == render.Scalar && !dotted:
				fn, ok := it.Value.(string)
				if !ok || fn == "" {
					return nil, errAt(ipos, "state %q, %s: want a function name, got %v", id, module, it.Value)
				}
				if b.function != "" {
					return nil, errAt(ipos, "state %q, %s: a second function %q (already %q)", id, module, fn, b.function)
				}
				b.function = fn
			case it.Kind == render.Map && len(it.Pairs) == 1:
				a := it.Pairs[0]
				b.args = append(b.args, arg{key: a.Key, val: l.modeSpelling(a.Key, a.Value), pos: Pos{pos.File, a.KeyLine, a.KeyCol}})
			default:
				return nil, errAt(ipos, "state %q, %s: each argument is one \"- key: value\" item, got a %s", id, p.Key, describe(it))
			}
		}
		if b.function == "" && sls != "" {
			return nil, errAt(bpos, "state %q: module %s has no function (write %s.installed, or - installed in its list)", id, module, module)
		}
		d.blocks = append(d.blocks, b)
	}
	if len(d.blocks) == 0 {
		return nil, errAt(pos, "state %q declares no module.function", id)
	}
	return d, nil
}

func describe(n *render.Node) string {
	if n.Kind == render.Map {
		return fmt.Sprintf("map of %d keys", len(n.Pairs))
	}
	return kindName(n.Kind)
}

func kindName(k render.Kind) string {
	switch k {
	case render.Map:
		return "map"
	case render.List:
		return "list"
	}
	return "scalar"
}

// applyExtends merges extend: entries into the states they name: a
// requisite list is appended to, any other argument replaced, and a module
// the state does not call yet is added.
func (l *loader) applyExtends() {
	for _, e := range l.extends {
		d, ok := l.decls[e.id]
		if !ok {
			l.errs.add(errAt(e.pos, "extend: no state %q in this run to extend", e.id))
			continue
		}
		for _, eb := range e.blocks {
			var b *block
			for _, x := range d.blocks {
				if x.module == eb.module {
					b = x
				}
			}
			if b == nil {
				if eb.function == "" {
					l.errs.add(errAt(eb.pos, "extend: state %q has no %s function to extend; name one (%s.FUNCTION)", e.id, eb.module, eb.module))
					continue
				}
				d.blocks = append(d.blocks, eb)
				continue
			}
			if eb.function != "" && eb.function != b.function {
				l.errs.add(errAt(eb.pos, "extend: state %q calls %s.%s (at %s), not %s.%s", e.id, b.module, b.function, b.pos, eb.module, eb.function))
				continue
			}
			for _, a := range eb.args {
				if _, isReq := reqKind(a.key); isReq {
					b.args = append(b.args, a)
					continue
				}
				replaced := false
				for i := range b.args {
					if b.args[i].key == a.key {
						b.args[i], replaced = a, true
					}
				}
				if !replaced {
					b.args = append(b.args, a)
				}
			}
		}
	}
}

// loadTree runs the loader over sls names and gives the declarations in
// order, extends applied.
func loadTree(ctx context.Context, fsys fs.FS, names []string, from Pos, opt *Options) ([]*decl, error) {
	l := newLoader(ctx, fsys, opt)
	for _, n := range names {
		l.load(n, from)
	}
	if len(l.errs.errs) == 0 {
		l.applyExtends()
	}
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	return l.order, nil
}

// modeSpelling keeps a file mode as written. YAML 1.1 reads mode: 0644 as
// the octal number 420 and mode: 644 as the decimal 644; Salt's trees
// use both and mean 0644 either way. Given the number, the module cannot
// tell them apart, so a mode argument whose token starts with 0 is passed
// on as its text ("0644").
func (l *loader) modeSpelling(key string, n *render.Node) *render.Node {
	if !strings.HasSuffix(key, "mode") || n == nil || n.Kind != render.Scalar || n.Line < 1 || n.Line > len(l.lines) || n.Col < 1 {
		return n
	}
	if _, ok := n.Value.(int64); !ok {
		return n
	}
	line := l.lines[n.Line-1]
	col := n.Col - 1
	if col >= len(line) {
		return n
	}
	tok := line[col:]
	end := 0
	for end < len(tok) && (tok[end] >= '0' && tok[end] <= '9' || tok[end] == 'o') {
		end++
	}
	if tok = tok[:end]; strings.HasPrefix(tok, "0") {
		c := *n
		c.Value = strings.Replace(tok, "0o", "0", 1)
		return &c
	}
	return n
}
