package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// rewrite adjusts every parsed tree of t, once, before any execution:
//
//   - each range body starts with a call of zesterStep, so a loop counts
//     against MaxSteps and the clock even when its body does nothing;
//   - the value default tests is looked up leniently (doc.go: Strict keys);
//   - {{ template }} calls must name a defined template and form no cycle.
func rewrite(file string, t *template.Template) error {
	calls := map[string][]*parse.TemplateNode{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		r := &rewriter{tree: tt.Tree}
		r.list(tt.Tree.Root)
		calls[tt.Name()] = r.calls
	}
	for name, cs := range calls {
		for _, c := range cs {
			if t.Lookup(c.Name) == nil || t.Lookup(c.Name).Tree == nil {
				return nodeError(file, t.Lookup(name), c, fmt.Sprintf("template %q is not defined", c.Name))
			}
		}
	}
	// Cycle check over the call graph, in a fixed order for stable errors.
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	slices.Sort(names)
	const (
		unseen = iota
		active
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(name string) error
	visit = func(name string) error {
		mark[name] = active
		path = append(path, name)
		for _, c := range calls[name] {
			switch mark[c.Name] {
			case active:
				i := slices.Index(path, c.Name)
				cycle := append(append([]string(nil), path[i:]...), c.Name)
				return nodeError(file, t.Lookup(name), c, "template call cycle: "+quoteJoin(cycle))
			case unseen:
				if err := visit(c.Name); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		mark[name] = done
		return nil
	}
	for _, n := range names {
		if mark[n] == unseen {
			if err := visit(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func quoteJoin(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " → ")
}

func nodeError(file string, t *template.Template, n parse.Node, msg string) error {
	e := &Error{File: file, Msg: msg}
	if t != nil && t.Tree != nil {
		loc, _ := t.Tree.ErrorContext(n)
		// loc is NAME:LINE:COL with a 0-based byte column.
		parts := strings.Split(loc, ":")
		if len(parts) >= 3 {
			e.Line, _ = strconv.Atoi(parts[len(parts)-2])
			c, _ := strconv.Atoi(parts[len(parts)-1])
			e.Col = c + 1
		}
	}
	return e
}

type rewriter struct {
	tree  *parse.Tree
	calls []*parse.TemplateNode
}

func (r *rewriter) list(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		r.node(n)
	}
}

func (r *rewriter) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		r.pipe(n.Pipe)
	case *parse.IfNode:
		r.pipe(n.Pipe)
		r.list(n.List)
		r.list(n.ElseList)
	case *parse.WithNode:
		r.pipe(n.Pipe)
		r.list(n.List)
		r.list(n.ElseList)
	case *parse.RangeNode:
		r.pipe(n.Pipe)
		r.list(n.List)
		r.list(n.ElseList)
		n.List.Nodes = append([]parse.Node{stepAction(n.Position(), n.Line)}, n.List.Nodes...)
	case *parse.TemplateNode:
		r.pipe(n.Pipe)
		r.calls = append(r.calls, n)
	case *parse.ListNode:
		r.list(n)
	}
}

func stepAction(pos parse.Pos, line int) *parse.ActionNode {
	return &parse.ActionNode{
		NodeType: parse.NodeAction, Pos: pos, Line: line,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Line: line, Cmds: []*parse.CommandNode{
			{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{ident(fnStep, pos)}},
		}},
	}
}

func ident(name string, pos parse.Pos) *parse.IdentifierNode {
	return parse.NewIdentifier(name).SetPos(pos)
}

func (r *rewriter) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for j, c := range p.Cmds {
		for _, a := range c.Args {
			if sub, ok := a.(*parse.PipeNode); ok {
				r.pipe(sub)
			}
			if ch, ok := a.(*parse.ChainNode); ok {
				if sub, ok := ch.Node.(*parse.PipeNode); ok {
					r.pipe(sub)
				}
			}
		}
		id, ok := c.Args[0].(*parse.IdentifierNode)
		if !ok || id.Ident != "default" {
			continue
		}
		switch {
		case len(c.Args) >= 3:
			// default DEF VALUE
			c.Args[len(c.Args)-1] = lenient(c.Args[len(c.Args)-1])
		case len(c.Args) == 2 && j > 0:
			// VALUE | default DEF: VALUE is the whole previous command.
			prev := p.Cmds[j-1]
			if len(prev.Args) == 1 {
				if l := lenient(prev.Args[0]); l != prev.Args[0] {
					prev.Args[0] = l
				}
			} else {
				lenientCall(prev)
			}
		}
	}
}

// lenient returns a node that evaluates like n but gives nil where n would
// fail on a missing key; n itself when it is not a lookup.
func lenient(n parse.Node) parse.Node {
	pos := n.Position()
	call := func(base parse.Node, keys []string) parse.Node {
		args := []parse.Node{ident(fnMissingOK, pos), base}
		for _, k := range keys {
			args = append(args, &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(k), Text: k})
		}
		return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: pos, Args: args}}}
	}
	switch x := n.(type) {
	case *parse.FieldNode:
		return call(&parse.DotNode{NodeType: parse.NodeDot, Pos: pos}, x.Ident)
	case *parse.VariableNode:
		if len(x.Ident) > 1 {
			return call(&parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: x.Ident[:1]}, x.Ident[1:])
		}
	case *parse.ChainNode:
		return call(x.Node, x.Field)
	case *parse.PipeNode:
		if len(x.Decl) == 0 && len(x.Cmds) == 1 {
			c := x.Cmds[0]
			if len(c.Args) == 1 {
				c.Args[0] = lenient(c.Args[0])
			} else {
				lenientCall(c)
			}
		}
	}
	return n
}

// lenientCall turns a call of index or setting into its lenient twin.
func lenientCall(c *parse.CommandNode) {
	id, ok := c.Args[0].(*parse.IdentifierNode)
	if !ok {
		return
	}
	switch id.Ident {
	case "index":
		c.Args[0] = ident(fnIndexOK, id.Position())
	case "setting":
		if len(c.Args) == 2 {
			c.Args[0] = ident(fnSettingOK, id.Position())
		}
	}
}
