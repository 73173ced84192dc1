package state

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/peel/state/mod"
)

// ReqKind is a requisite's kind.
type ReqKind uint8

// The requisites, as Salt names them.
const (
	Require ReqKind = iota
	Watch
	OnChanges
	OnFail
	Prereq
	// RequireAny fails the state only when every named state failed.
	RequireAny
	// OnFailAll runs the state only when every named state failed.
	OnFailAll
	// Listen is watch deferred to the end of the run, without ordering:
	// the watch action runs once after every state, if a named state
	// changed.
	Listen
	numReqKinds
)

var reqNames = [numReqKinds]string{"require", "watch", "onchanges", "onfail", "prereq", "require_any", "onfail_all", "listen"}

// reqAliases are Salt's spellings of the same behaviour: onchanges and
// onfail already run when any one of their states changed or failed.
var reqAliases = map[string]ReqKind{"onchanges_any": OnChanges, "onfail_any": OnFail}

func (k ReqKind) String() string { return reqNames[k] }

type reqSpec struct {
	kind ReqKind
	in   bool
}

// reqKind parses a requisite argument's key: require, require_in, ...
func reqKind(key string) (reqSpec, bool) {
	base, in := strings.CutSuffix(key, "_in")
	for k, n := range reqNames {
		if n == base {
			return reqSpec{ReqKind(k), in}, true
		}
	}
	if k, ok := reqAliases[base]; ok {
		return reqSpec{k, in}, true
	}
	return reqSpec{}, false
}

// reqDecl is one requisite as written: "- require: - file: /etc/motd".
type reqDecl struct {
	reqSpec
	module, target string
	pos            Pos
}

func (r reqDecl) String() string {
	if r.module == "" {
		return r.target
	}
	return r.module + ": " + r.target
}

// orderKey sorts states that no requisite orders: order: first, then
// numbers, then the rest in declaration order, then order: last.
type orderKey struct {
	class int
	num   float64
	seq   int
}

func (a orderKey) less(b orderKey) bool {
	if a.class != b.class {
		return a.class < b.class
	}
	if a.num != b.num {
		return a.num < b.num
	}
	return a.seq < b.seq
}

// Chunk is one state function call after names expansion: Salt's "low
// chunk".
type Chunk struct {
	ID, SLS, Module, Function, Name string
	Args                            mod.Args
	Pos                             Pos

	order orderKey
	reqs  []reqDecl
	entry mod.Entry
	// guards are creates/unless/onlyif the module does not take itself.
	guards mod.Args
	// deps[k] are the indexes (into Plan.Chunks) of the states this one
	// has a requisite of kind k on; prereqOf are the states that prereq
	// this one (they run first, and their failure fails this one).
	deps     [numReqKinds][]int
	prereqOf []int
}

// Key is the state's RunKey.
func (c *Chunk) Key() string { return mod.RunKey(c.Module, c.ID, c.Name, c.Function) }

func (c *Chunk) String() string {
	return fmt.Sprintf("%s.%s %s (%s)", c.Module, c.Function, c.ID, c.Pos)
}

// Plan is a compiled run: its states in run order, requisites resolved.
type Plan struct {
	Chunks []*Chunk
	decls  []*decl
}

// Compile loads sls names (state.apply web db) and orders their states.
func Compile(ctx context.Context, fsys fs.FS, names []string, opt Options) (*Plan, error) {
	decls, err := loadTree(ctx, fsys, names, Pos{File: "(command line)"}, &opt)
	if err != nil {
		return nil, err
	}
	return plan(decls, opt.table())
}

// CompileHighstate compiles what top.sls gives this peel.
func CompileHighstate(ctx context.Context, fsys fs.FS, opt Options) (*Plan, error) {
	refs, err := topRefs(ctx, fsys, &opt)
	if err != nil {
		return nil, err
	}
	l := newLoader(ctx, fsys, &opt)
	for _, r := range refs {
		l.load(r.name, r.pos)
	}
	if len(l.errs.errs) == 0 {
		l.applyExtends()
	}
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	return plan(l.order, opt.table())
}

func plan(decls []*decl, table *mod.Table) (*Plan, error) {
	p := &Plan{decls: decls}
	var errs errList
	for _, d := range decls {
		for _, b := range d.blocks {
			cs, err := chunks(d, b, len(p.Chunks), table)
			if err != nil {
				errs.add(err)
				continue
			}
			p.Chunks = append(p.Chunks, cs...)
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	order, err := buildGraph(p.Chunks)
	if err != nil {
		return nil, err
	}
	p.reorder(order)
	return p, nil
}

// reorder puts Chunks in run order and renumbers the dependency indexes.
func (p *Plan) reorder(order []int) {
	at := make([]int, len(order))
	for newIdx, old := range order {
		at[old] = newIdx
	}
	out := make([]*Chunk, len(order))
	for newIdx, old := range order {
		c := p.Chunks[old]
		for k := range c.deps {
			for i, d := range c.deps[k] {
				c.deps[k][i] = at[d]
			}
		}
		for i, d := range c.prereqOf {
			c.prereqOf[i] = at[d]
		}
		out[newIdx] = c
	}
	p.Chunks = out
}

// chunks turns one block into its chunks: one, or one per entry of names.
func chunks(d *decl, b *block, seq int, table *mod.Table) ([]*Chunk, error) {
	fn := b.module + "." + b.function
	entry, ok := table.Lookup(fn)
	if !ok {
		return nil, errAt(b.pos, "state %q: no state function %s%s", d.id, fn, suggest(table, b.module))
	}
	base := &Chunk{ID: d.id, SLS: d.sls, Module: b.module, Function: b.function, Name: d.id, Pos: b.pos, entry: entry, Args: mod.Args{}}
	base.order = orderKey{class: 2}
	var names *arg
	for i := range b.args {
		a := &b.args[i]
		if err := base.set(a, &names); err != nil {
			return nil, err
		}
	}
	if err := base.Args.Unknown(entry.Args); err != nil {
		return nil, errAt(b.pos, "state %q (%s): %v", d.id, fn, err)
	}
	if names == nil {
		base.order.seq = seq
		return []*Chunk{base}, nil
	}
	if names.val.Kind != render.List {
		return nil, errAt(names.pos, "state %q: names is a list", d.id)
	}
	var out []*Chunk
	for _, it := range names.val.Items {
		c := base.clone()
		c.Pos = Pos{names.pos.File, it.Line, it.Col}
		c.order.seq = seq + len(out)
		switch {
		case it.Kind == render.Scalar && it.Value != nil:
			c.Name = fmt.Sprint(it.Value)
		case it.Kind == render.Map && len(it.Pairs) == 1:
			// - NAME: [- key: value, ...] overrides arguments for this name.
			p := it.Pairs[0]
			c.Name = p.Key
			if p.Value.Kind == render.List {
				for _, o := range p.Value.Items {
					if o.Kind != render.Map || len(o.Pairs) != 1 {
						return nil, errAt(Pos{names.pos.File, o.Line, o.Col}, "state %q, names entry %s: each argument is one \"- key: value\" item", d.id, p.Key)
					}
					op := o.Pairs[0]
					delete(c.Args, op.Key) // a per-name argument overrides the shared one
					var nested *arg
					if err := c.set(&arg{key: op.Key, val: op.Value, pos: Pos{names.pos.File, op.KeyLine, op.KeyCol}}, &nested); err != nil {
						return nil, err
					}
					if nested != nil {
						return nil, errAt(nested.pos, "state %q: names inside names", d.id)
					}
				}
			} else if p.Value.Kind != render.Scalar || p.Value.Value != nil {
				return nil, errAt(Pos{names.pos.File, p.KeyLine, p.KeyCol}, "state %q, names entry %s: want a list of arguments", d.id, p.Key)
			}
		default:
			return nil, errAt(c.Pos, "state %q: a names entry is a name, or a name with a list of arguments", d.id)
		}
		if err := c.Args.Unknown(entry.Args); err != nil {
			return nil, errAt(c.Pos, "state %q (%s): %v", d.id, fn, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errAt(names.pos, "state %q: names is empty", d.id)
	}
	return out, nil
}

func (c *Chunk) clone() *Chunk {
	n := *c
	n.Args = make(mod.Args, len(c.Args))
	for k, v := range c.Args {
		n.Args[k] = v
	}
	n.reqs = append([]reqDecl(nil), c.reqs...)
	if c.guards != nil {
		n.guards = mod.Args{}
		for k, v := range c.guards {
			n.guards[k] = v
		}
	}
	return &n
}

// set applies one argument: name, names, order and requisites are the
// engine's; anything else goes to the module.
func (c *Chunk) set(a *arg, names **arg) error {
	switch a.key {
	case "name":
		if a.val.Kind != render.Scalar || a.val.Value == nil {
			return errAt(a.pos, "state %q: name is a string", c.ID)
		}
		c.Name = fmt.Sprint(a.val.Value)
		return nil
	case "names":
		*names = a
		return nil
	case "order":
		return c.setOrder(a)
	}
	if rs, ok := reqKind(a.key); ok {
		reqs, err := parseReqs(rs, a)
		if err != nil {
			return err
		}
		c.reqs = append(c.reqs, reqs...)
		return nil
	}
	if slices.Contains(mod.GuardArgs, a.key) && !slices.Contains(c.entry.Args, a.key) {
		// Salt's creates/unless/onlyif on any state: the engine checks
		// them when the module does not.
		if c.guards == nil {
			c.guards = mod.Args{}
		}
		c.guards[a.key] = a.val.Plain()
		return nil
	}
	if _, dup := c.Args[a.key]; dup {
		return errAt(a.pos, "state %q: argument %s given twice", c.ID, a.key)
	}
	c.Args[a.key] = a.val.Plain()
	return nil
}

func (c *Chunk) setOrder(a *arg) error {
	switch v := a.val.Value.(type) {
	case string:
		switch v {
		case "first":
			c.order.class = 0
			return nil
		case "last":
			c.order.class = 3
			return nil
		}
	case int64:
		if v == -1 {
			c.order.class = 3
			return nil
		}
		if v >= 0 {
			c.order.class, c.order.num = 1, float64(v)
			return nil
		}
	case float64:
		if v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			c.order.class, c.order.num = 1, v
			return nil
		}
	}
	return errAt(a.pos, "state %q: order is first, last or a number ≥ 0, got %v", c.ID, a.val.Value)
}

// parseReqs reads a requisite list: items "module: target" or a bare
// state id (Salt 2016.3+: any module).
func parseReqs(rs reqSpec, a *arg) ([]reqDecl, error) {
	items := []*render.Node{a.val}
	if a.val.Kind == render.List {
		items = a.val.Items
	}
	var out []reqDecl
	for _, it := range items {
		pos := Pos{a.pos.File, it.Line, it.Col}
		switch {
		case it.Kind == render.Scalar && it.Value != nil:
			out = append(out, reqDecl{reqSpec: rs, target: fmt.Sprint(it.Value), pos: pos})
		case it.Kind == render.Map && len(it.Pairs) == 1 && it.Pairs[0].Value.Kind == render.Scalar && it.Pairs[0].Value.Value != nil:
			p := it.Pairs[0]
			out = append(out, reqDecl{reqSpec: rs, module: p.Key, target: fmt.Sprint(p.Value.Value), pos: Pos{a.pos.File, p.KeyLine, p.KeyCol}})
		default:
			return nil, errAt(pos, "%s: each entry is \"- module: id-or-name\" or a state id, got a %s", a.key, describe(it))
		}
	}
	return out, nil
}

func suggest(t *mod.Table, module string) string {
	var same []string
	for _, n := range t.Names() {
		if strings.HasPrefix(n, module+".") {
			same = append(same, n)
		}
	}
	if len(same) == 0 {
		return " (no " + module + " module)"
	}
	return " (" + module + " has " + strings.Join(same, ", ") + ")"
}

// High is the plan's states in Salt's show_sls shape: id → {module:
// [function, {arg: value}...], __sls__, __env__}.
func (p *Plan) High() map[string]any {
	out := make(map[string]any, len(p.decls))
	for _, d := range p.decls {
		m := map[string]any{"__sls__": d.sls, "__env__": Environment}
		for _, b := range d.blocks {
			l := []any{b.function}
			for _, a := range b.args {
				l = append(l, map[string]any{a.key: masked(a.val.Plain())})
			}
			m[b.module] = l
		}
		out[d.id] = m
	}
	return out
}

// masked replaces secrets by their masked form for display.
func masked(v any) any {
	switch x := v.(type) {
	case render.Secret:
		return render.Masked
	case map[string]any:
		for k, e := range x {
			x[k] = masked(e)
		}
	case []any:
		for i, e := range x {
			x[i] = masked(e)
		}
	}
	return v
}
