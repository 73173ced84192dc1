package render

import (
	"slices"
	"text/template/parse"
)

// Inputs reports what the output of t is a function of, when that is a
// short list: the paths below the data root it reads (["id"],
// ["facts","network","dns"]), each as a whole value, and the tokens its
// secret calls open. ok is false when the output may depend on anything
// else, and then an output may not be shared between executions:
//
//   - setting or basket is called (the merge so far, other peels' data);
//   - the root is used as a value ({{ . }} or {{ $ }} at the top, with or
//     range over it, passed to a function or to {{ template }});
//   - {{ template }} or {{ block }} is called (its dot may be the root).
//
// Every other function is a pure function of its arguments (doc.go: the
// function set has no clock, randomness or environment), and every other
// value is a literal, a path's value or derived from those, so two
// executions whose paths hold the same values (and whose Secret callback
// is the same) write the same text. A static template has no paths.
func (t *Template) Inputs() (paths [][]string, ok bool) {
	d := t.deps()
	if d.whole || d.impure {
		return nil, false
	}
	return d.paths, true
}

// FactPaths lists the paths below .facts the template can read (each as a
// whole value), so that a caller may give it only those (FactFilter); ok is
// false when it can read the whole document (the root or .facts used as a
// value, a {{ template }} call). Unlike Inputs, setting and basket are no
// obstacle: they do not read this peel's facts.
func (t *Template) FactPaths() (paths [][]string, ok bool) {
	d := t.deps()
	if d.whole {
		return nil, false
	}
	for _, p := range d.paths {
		if p[0] != "facts" {
			continue
		}
		if len(p) == 1 {
			return nil, false
		}
		paths = append(paths, p[1:])
	}
	return paths, true
}

func (t *Template) deps() *deps {
	d := &deps{}
	if t.static {
		return d
	}
	root := t.base.Lookup(t.name)
	if root == nil || root.Tree == nil {
		d.whole = true
		return d
	}
	d.list(root.Tree.Root, true)
	return d
}

// deps walks a parsed tree; dotRoot is whether dot is the data root where a
// node is evaluated (it is at the top; inside with and range it is a value
// derived from their pipeline, whose own inputs are recorded).
type deps struct {
	paths [][]string
	// whole: the root is used as a value, or passed on ({{ template }}).
	whole bool
	// impure: setting or basket is called.
	impure bool
}

func (d *deps) add(p []string) {
	if len(p) == 0 {
		d.whole = true
		return
	}
	for _, q := range d.paths {
		if slices.Equal(p, q) {
			return
		}
	}
	d.paths = append(d.paths, slices.Clone(p))
}

func (d *deps) list(l *parse.ListNode, dotRoot bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		d.node(n, dotRoot)
	}
}

func (d *deps) node(n parse.Node, dotRoot bool) {
	switch n := n.(type) {
	case *parse.ActionNode:
		d.pipe(n.Pipe, dotRoot)
	case *parse.IfNode:
		d.branch(&n.BranchNode, dotRoot, dotRoot)
	case *parse.WithNode:
		d.branch(&n.BranchNode, dotRoot, false)
	case *parse.RangeNode:
		d.branch(&n.BranchNode, dotRoot, false)
	case *parse.TemplateNode:
		d.whole = true
	case *parse.ListNode:
		d.list(n, dotRoot)
	}
}

// branch is if, with or range: the pipeline and the else branch see the
// dot outside; the body sees bodyRoot (with and range set dot to a value).
func (d *deps) branch(b *parse.BranchNode, dotRoot, bodyRoot bool) {
	d.pipe(b.Pipe, dotRoot)
	d.list(b.List, bodyRoot)
	d.list(b.ElseList, dotRoot)
}

func (d *deps) pipe(p *parse.PipeNode, dotRoot bool) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		d.command(c, dotRoot)
	}
}

func (d *deps) command(c *parse.CommandNode, dotRoot bool) {
	args := c.Args
	if id, ok := args[0].(*parse.IdentifierNode); ok {
		switch id.Ident {
		case "setting", fnSettingOK, "basket":
			d.impure = true
		case fnMissingOK, "index", fnIndexOK:
			// A lookup by constant keys below a root path is that
			// longer path (the rewriter's lenient .a.b is
			// zesterMissingOK . "a" "b").
			if len(args) >= 3 {
				if base, isRoot := rootPath(args[1], dotRoot); isRoot {
					if keys, all := constKeys(args[2:]); all {
						d.add(append(base, keys...))
						return
					}
				}
			}
		}
	}
	for _, a := range args {
		d.arg(a, dotRoot)
	}
}

// arg records the inputs of one argument.
func (d *deps) arg(a parse.Node, dotRoot bool) {
	if p, isRoot := rootPath(a, dotRoot); isRoot {
		d.add(p) // an empty path: the root itself
		return
	}
	switch a := a.(type) {
	case *parse.PipeNode:
		d.pipe(a, dotRoot)
	case *parse.ChainNode:
		d.arg(a.Node, dotRoot)
	}
}

// rootPath is the path below the root that n reads, when n is a lookup on
// the root: .a.b where dot is the root, $.a.b, $ (the empty path), or . at
// the top (the empty path), or such a node with fields chained on.
func rootPath(n parse.Node, dotRoot bool) ([]string, bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		return n.Ident, dotRoot
	case *parse.DotNode:
		return nil, dotRoot
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			return n.Ident[1:], true
		}
	case *parse.ChainNode:
		if p, ok := rootPath(n.Node, dotRoot); ok {
			return append(slices.Clone(p), n.Field...), true
		}
	case *parse.PipeNode:
		// (.a).b: a parenthesised lookup.
		if len(n.Decl) == 0 && len(n.Cmds) == 1 && len(n.Cmds[0].Args) == 1 {
			return rootPath(n.Cmds[0].Args[0], dotRoot)
		}
	}
	return nil, false
}

func constKeys(args []parse.Node) ([]string, bool) {
	keys := make([]string, 0, len(args))
	for _, a := range args {
		s, ok := a.(*parse.StringNode)
		if !ok {
			return nil, false
		}
		keys = append(keys, s.Text)
	}
	return keys, true
}
