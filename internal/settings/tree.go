package settings

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
)

// TopFile is the name of the file that maps targets to settings files.
const TopFile = "top.zy"

// Ext is the extension of settings files.
const Ext = ".zy"

// LoadOptions tune Load.
type LoadOptions struct {
	// Nodegroups are the master's nodegroups (N@ in top.zy targets).
	Nodegroups map[string]string
}

// Tree is a loaded settings tree: every file parsed once, ready to compile
// for any number of peels concurrently.
type Tree struct {
	top     *render.Template
	topSrc  []byte
	topNode *render.Node // decoded once when top.zy has no template actions
	// topEntries are topNode's entries, parsed once (read-only).
	topEntries []topEntry
	files      map[string]*file
	// problems are per-file errors (a template that does not parse, a
	// name two files claim, a name with a dot): they fail only the
	// peels whose top.zy entries use the file.
	problems map[string]error
	topts    target.Options
	exprs    sync.Map // exprKey → target.Expr
	decoded  *render.DecodeCache
	// factPaths are the fact paths the tree can read (FactPaths), or
	// factsAll when it can read any.
	factPaths [][]string
	factsAll  bool
	// bundleFiles is the JSON of the bundle files of each distinct file
	// list (BundleJSON), by the names joined with NUL.
	bundleFiles sync.Map
}

// decodeCacheBytes bounds the rendered texts a tree keeps decoded: most
// files render to a handful of distinct texts over a whole fleet.
const decodeCacheBytes = 64 << 20

type file struct {
	name string
	path string
	// src is the file as read; sanitized is src with every token replaced
	// by its reference (what a peel renders from).
	src, sanitized []byte
	sanErr         error
	tmpl           *render.Template
	// static is the decoded file when it has no template actions: it is
	// the same for every peel.
	static *render.Node
	// inputs are the data paths the template's output is a function of,
	// when memoOK (memoInputs): what its Memo key is built from.
	inputs [][]string
	memoOK bool
}

type exprKey struct {
	kind target.Kind
	expr string
}

// Load reads a settings tree: top.zy and every *.zy file below it. It fails
// when top.zy is missing or does not parse, or (when top.zy has no template
// actions) names a file that does not exist or a target that does not
// parse. Other files that fail are reported by Problems and fail only the
// peels that use them.
func Load(fsys fs.FS, o LoadOptions) (*Tree, error) {
	t := &Tree{files: map[string]*file{}, problems: map[string]error{}, topts: target.Options{Nodegroups: o.Nodegroups}, decoded: render.NewDecodeCache(decodeCacheBytes)}
	src, err := fs.ReadFile(fsys, TopFile)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if t.top, err = render.Parse(TopFile, src); err != nil {
		return nil, err
	}
	t.topSrc = src
	claimed := map[string]string{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		if p != "." && strings.HasPrefix(base, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(base, Ext) || p == TopFile {
			return nil
		}
		name, nerr := nameOf(p)
		if nerr != nil {
			t.problems[p] = nerr
			return nil
		}
		if other, dup := claimed[name]; dup {
			t.problems[name] = fmt.Errorf("settings file %s is both %s and %s: remove one", name, other, p)
			delete(t.files, name)
			return nil
		}
		claimed[name] = p
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		tmpl, perr := render.Parse(p, b)
		if perr != nil {
			t.problems[name] = perr
			return nil
		}
		// A malformed token fails the compile of the peels that use the
		// file, at the template action (and so before Bundle needs this).
		clean, serr := Sanitize(p, b)
		f := &file{name: name, path: p, tmpl: tmpl, src: b, sanitized: clean, sanErr: serr}
		f.inputs, f.memoOK = memoInputs(tmpl)
		if tmpl.Static() {
			// Decoded once here; a YAML error is this file's problem.
			out, xerr := tmpl.Execute(context.Background(), render.Data{}, render.Funcs{}, render.Limits{})
			if xerr == nil {
				f.static, xerr = render.Decode(p, out, 0)
			}
			if xerr == nil {
				xerr = checkFileRoot(p, f.static)
			}
			if xerr != nil {
				t.problems[name] = xerr
				return nil
			}
		}
		t.files[name] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if t.top.Static() {
		out, err := t.top.Execute(context.Background(), render.Data{}, render.Funcs{}, render.Limits{})
		if err != nil {
			return nil, err
		}
		if t.topNode, err = render.Decode(TopFile, out, 0); err != nil {
			return nil, err
		}
		// Check every entry now: a static top.zy is the same for all
		// peels, so a bad target or a missing file is an error of the
		// tree, not of some peel later.
		entries, err := t.parseTop(t.topNode)
		if err != nil {
			return nil, err
		}
		t.topEntries = entries
		for _, e := range entries {
			t.factPaths = append(t.factPaths, target.FactPaths(e.expr)...)
			for _, ref := range e.files {
				if _, bad := t.problems[ref.name]; bad {
					continue // the file's own problem, for the peels that use it
				}
				if _, err := t.lookup(ref); err != nil {
					return nil, err
				}
			}
		}
	} else {
		t.factsAll = true // top.zy's targets are known only once rendered
	}
	for _, f := range t.files {
		if f.static != nil {
			continue
		}
		p, ok := f.tmpl.FactPaths()
		if !ok {
			t.factsAll = true
		}
		t.factPaths = append(t.factPaths, p...)
	}
	return t, nil
}

// FactPaths lists the fact paths a compile of this tree can read: top.zy's
// targets' and every file's (render.Template.FactPaths), repeats allowed,
// so that a caller may decode only those (render.FactFilter). ok is false
// when a compile can read the whole document (top.zy is a template, or a
// file uses .facts or the root as a value).
func (t *Tree) FactPaths() (paths [][]string, ok bool) {
	if t.factsAll {
		return nil, false
	}
	return t.factPaths, true
}

// nameOf maps a path to its settings name, Salt's way: web.zy and
// web/init.zy are "web", web/nginx.zy is "web.nginx".
func nameOf(p string) (string, error) {
	p = strings.TrimSuffix(p, Ext)
	parts := strings.Split(p, "/")
	if len(parts) > 1 && parts[len(parts)-1] == "init" {
		parts = parts[:len(parts)-1]
	}
	for _, s := range parts {
		if strings.Contains(s, ".") || s == "" {
			return "", fmt.Errorf("%s%s: a settings file or directory name may not contain a dot (web.nginx in top.zy means web/nginx.zy)", p, Ext)
		}
	}
	return strings.Join(parts, "."), nil
}

// Problems lists the files that failed to load (by name, or by path when
// the path gives no name), sorted. The master reports them as events.
func (t *Tree) Problems() []error {
	keys := make([]string, 0, len(t.problems))
	for k := range t.problems {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]error, len(keys))
	for i, k := range keys {
		out[i] = t.problems[k]
	}
	return out
}

// Files lists the names of the settings files that loaded, sorted.
func (t *Tree) Files() []string {
	out := make([]string, 0, len(t.files))
	for n := range t.files {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// fileRef is a settings file named in top.zy, with where.
type fileRef struct {
	name      string
	line, col int
}

func (t *Tree) lookup(ref fileRef) (*file, error) {
	if f, ok := t.files[ref.name]; ok {
		return f, nil
	}
	if err, ok := t.problems[ref.name]; ok {
		return nil, err
	}
	if err := validName(ref.name); err != nil {
		return nil, &render.Error{File: TopFile, Line: ref.line, Col: ref.col, Msg: err.Error()}
	}
	p := strings.ReplaceAll(ref.name, ".", "/")
	return nil, &render.Error{File: TopFile, Line: ref.line, Col: ref.col,
		Msg: fmt.Sprintf("settings file %q not found (looked for %s%s and %s/init%s)", ref.name, p, Ext, p, Ext)}
}

func validName(n string) error {
	if n == "" {
		return errors.New("empty settings file name")
	}
	for _, part := range strings.Split(n, ".") {
		if part == "" || part == ".." || strings.ContainsAny(part, "/\\") || path.Clean(part) != part {
			return fmt.Errorf("settings file name %q: want names like web or web.nginx (dots separate directories)", n)
		}
	}
	return nil
}

func checkFileRoot(p string, n *render.Node) error {
	if n != nil && n.Kind != render.Map {
		return &render.Error{File: p, Line: n.Line, Col: n.Col, Msg: "a settings file is a map of keys at the top"}
	}
	return nil
}
