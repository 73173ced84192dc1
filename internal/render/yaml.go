package render

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Kind is the kind of a Node.
type Kind int

// Node kinds.
const (
	Scalar Kind = iota
	Map
	List
)

// Node is a decoded YAML value with its position and explicit local tag
// (such as "!append"; standard !! tags are applied and dropped). Maps keep
// their key order (top.zy and state files depend on it).
type Node struct {
	Kind  Kind
	Tag   string
	Line  int
	Col   int
	Value any // Scalar: string, int64, uint64, float64, bool, nil or Secret
	Pairs []Pair
	Items []*Node
}

// Pair is one entry of a map node.
type Pair struct {
	Key     string
	KeyLine int
	KeyCol  int
	Value   *Node
}

// Get returns the value of key in a map node.
func (n *Node) Get(key string) (*Node, bool) {
	if n == nil || n.Kind != Map {
		return nil, false
	}
	for _, p := range n.Pairs {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// Decode parses the output of an execution as one YAML document. Scalars
// holding a secret's placeholder become Secret values; a secret as a map
// key is an error. Aliases are expanded up to MaxOutput nodes (a "billion
// laughs" document is refused). An empty document is a nil Node. Errors are
// *Error naming file and the line and column in the rendered text.
func Decode(file string, out *Output, maxNodes int) (*Node, error) {
	if maxNodes <= 0 {
		maxNodes = DefaultMaxOutput
	}
	f, err := parser.ParseBytes(out.Text(), 0)
	if err != nil {
		return nil, yamlError(file, out, err)
	}
	d := &decoder{file: file, out: out, budget: maxNodes, anchors: map[string]*Node{}}
	var root *Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if _, ok := doc.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if root != nil {
			tk := doc.Body.GetToken()
			return nil, d.errAt(tk.Position.Line, tk.Position.Column, "more than one YAML document (---): a file is one document")
		}
		if root, err = d.node(doc.Body, 0); err != nil {
			return nil, err
		}
	}
	return root, nil
}

func yamlError(file string, out *Output, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil {
			return &Error{File: file, Line: tk.Position.Line, Col: tk.Position.Column, Msg: "YAML: " + out.Mask(ye.GetMessage())}
		}
		return &Error{File: file, Msg: "YAML: " + out.Mask(ye.GetMessage())}
	}
	return &Error{File: file, Msg: "YAML: " + out.Mask(err.Error())}
}

type decoder struct {
	file    string
	out     *Output
	budget  int
	anchors map[string]*Node
}

func (d *decoder) errAt(line, col int, format string, args ...any) error {
	return &Error{File: d.file, Line: line, Col: col, Msg: d.out.Mask(fmt.Sprintf(format, args...))}
}

func (d *decoder) errNode(n ast.Node, format string, args ...any) error {
	tk := n.GetToken()
	if tk == nil {
		return &Error{File: d.file, Msg: d.out.Mask(fmt.Sprintf(format, args...))}
	}
	return d.errAt(tk.Position.Line, tk.Position.Column, format, args...)
}

// charge counts expanded nodes, so aliases cannot multiply a document.
func (d *decoder) charge(n ast.Node, size int) error {
	d.budget -= size
	if d.budget < 0 {
		return d.errNode(n, "YAML document over the limit of nodes (aliases expanded)")
	}
	return nil
}

func nodeSize(n *Node) int {
	if n == nil {
		return 1
	}
	s := 1
	for _, p := range n.Pairs {
		s += nodeSize(p.Value)
	}
	for _, it := range n.Items {
		s += nodeSize(it)
	}
	return s
}

func (d *decoder) node(n ast.Node, depth int) (*Node, error) {
	if depth > MaxDepth {
		return nil, d.errNode(n, "YAML nested more than %d levels deep", MaxDepth)
	}
	if err := d.charge(n, 1); err != nil {
		return nil, err
	}
	tk := n.GetToken()
	pos := func(x *Node) *Node {
		if tk != nil {
			x.Line, x.Col = tk.Position.Line, tk.Position.Column
		}
		return x
	}
	switch x := n.(type) {
	case *ast.NullNode:
		return pos(&Node{Kind: Scalar}), nil
	case *ast.BoolNode:
		return pos(&Node{Kind: Scalar, Value: x.Value}), nil
	case *ast.IntegerNode:
		switch v := x.Value.(type) {
		case int64:
			return pos(&Node{Kind: Scalar, Value: v}), nil
		case uint64:
			if v <= math.MaxInt64 {
				return pos(&Node{Kind: Scalar, Value: int64(v)}), nil
			}
			return pos(&Node{Kind: Scalar, Value: v}), nil
		}
		return pos(&Node{Kind: Scalar, Value: x.Value}), nil
	case *ast.FloatNode:
		return pos(&Node{Kind: Scalar, Value: x.Value}), nil
	case *ast.InfinityNode:
		return pos(&Node{Kind: Scalar, Value: x.Value}), nil
	case *ast.NanNode:
		return pos(&Node{Kind: Scalar, Value: math.NaN()}), nil
	case *ast.StringNode:
		return pos(&Node{Kind: Scalar, Value: d.out.Resolve(x.Value)}), nil
	case *ast.LiteralNode:
		v := ""
		if x.Value != nil {
			v = x.Value.Value
		}
		return pos(&Node{Kind: Scalar, Value: d.out.Resolve(v)}), nil
	case *ast.MappingNode:
		return d.mapping(x, x.Values, depth)
	case *ast.MappingValueNode:
		return d.mapping(x, []*ast.MappingValueNode{x}, depth)
	case *ast.SequenceNode:
		l := pos(&Node{Kind: List})
		for _, e := range x.Values {
			c, err := d.node(e, depth+1)
			if err != nil {
				return nil, err
			}
			l.Items = append(l.Items, c)
		}
		return l, nil
	case *ast.AnchorNode:
		name := x.Name.GetToken().Value
		v, err := d.node(x.Value, depth)
		if err != nil {
			return nil, err
		}
		d.anchors[name] = v
		return v, nil
	case *ast.AliasNode:
		name := x.Value.GetToken().Value
		v, ok := d.anchors[name]
		if !ok {
			return nil, d.errNode(n, "alias *%s names no anchor before it", name)
		}
		if err := d.charge(n, nodeSize(v)); err != nil {
			return nil, err
		}
		return v, nil
	case *ast.TagNode:
		return d.tagged(x, depth)
	}
	return nil, d.errNode(n, "unsupported YAML node %s", n.Type())
}

func (d *decoder) tagged(x *ast.TagNode, depth int) (*Node, error) {
	tag := x.Start.Value
	if x.Value == nil {
		return &Node{Kind: Scalar, Tag: tag, Line: x.Start.Position.Line, Col: x.Start.Position.Column}, nil
	}
	switch tag {
	case "!!str":
		tk := x.Value.GetToken()
		v, err := d.node(x.Value, depth)
		if err != nil {
			return nil, err
		}
		if v.Kind == Scalar {
			if _, isSecret := v.Value.(Secret); !isSecret && tk != nil {
				v = &Node{Kind: Scalar, Value: d.out.Resolve(tk.Value), Line: v.Line, Col: v.Col}
			}
		}
		return v, nil
	case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!binary", "!!timestamp", "!!omap", "!!set":
		return d.node(x.Value, depth)
	}
	v, err := d.node(x.Value, depth)
	if err != nil {
		return nil, err
	}
	// Copy: an anchored node may be shared, and the tag belongs to this use.
	c := *v
	c.Tag = tag
	c.Line, c.Col = x.Start.Position.Line, x.Start.Position.Column
	return &c, nil
}

func (d *decoder) mapping(n ast.Node, values []*ast.MappingValueNode, depth int) (*Node, error) {
	m := &Node{Kind: Map}
	if tk := n.GetToken(); tk != nil {
		m.Line, m.Col = tk.Position.Line, tk.Position.Column
	}
	if len(values) > 0 && values[0].Key != nil {
		if tk := values[0].Key.GetToken(); tk != nil {
			m.Line, m.Col = tk.Position.Line, tk.Position.Column
		}
	}
	seen := map[string]int{}
	var merged []Pair // from << merge keys: explicit keys win
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			v, err := d.node(mv.Value, depth+1)
			if err != nil {
				return nil, err
			}
			var srcs []*Node
			switch v.Kind {
			case Map:
				srcs = []*Node{v}
			case List:
				srcs = v.Items
			}
			for _, s := range srcs {
				if s.Kind != Map {
					return nil, d.errNode(mv.Value, "<< merges maps, not a %s", kindName(s.Kind))
				}
				merged = append(merged, s.Pairs...)
			}
			if len(srcs) == 0 {
				return nil, d.errNode(mv.Value, "<< merges maps, not a %s", kindName(v.Kind))
			}
			continue
		}
		key, line, col, err := d.key(mv.Key)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[key]; dup {
			return nil, d.errAt(line, col, "key %q is already set on line %d", key, prev)
		}
		seen[key] = line
		var v *Node
		if mv.Value == nil {
			v = &Node{Kind: Scalar, Line: line, Col: col}
		} else if v, err = d.node(mv.Value, depth+1); err != nil {
			return nil, err
		}
		m.Pairs = append(m.Pairs, Pair{Key: key, KeyLine: line, KeyCol: col, Value: v})
	}
	for _, p := range merged {
		if _, ok := seen[p.Key]; !ok {
			seen[p.Key] = p.KeyLine
			m.Pairs = append(m.Pairs, p)
		}
	}
	return m, nil
}

func kindName(k Kind) string {
	switch k {
	case Map:
		return "map"
	case List:
		return "list"
	}
	return "scalar"
}

// key returns a map key as text: strings as they are, numbers and booleans
// in their YAML spelling. A secret, a null, a list or a map as key is an
// error.
func (d *decoder) key(k ast.MapKeyNode) (string, int, int, error) {
	tk := k.GetToken()
	line, col := 0, 0
	if tk != nil {
		line, col = tk.Position.Line, tk.Position.Column
	}
	var n ast.Node = k
	if t, ok := n.(*ast.TagNode); ok && t.Value != nil {
		n = t.Value
	}
	if a, ok := n.(*ast.AnchorNode); ok {
		n = a.Value
	}
	switch x := n.(type) {
	case *ast.StringNode:
		if d.out.HasSecret(x.Value) {
			return "", 0, 0, d.errAt(line, col, "a secret cannot be a map key")
		}
		return x.Value, line, col, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return tk.Value, line, col, nil
	case *ast.NullNode:
		return "", 0, 0, d.errAt(line, col, "a null map key")
	case *ast.AliasNode:
		v, ok := d.anchors[x.Value.GetToken().Value]
		if ok && v.Kind == Scalar {
			switch s := v.Value.(type) {
			case string:
				return s, line, col, nil
			case Secret:
				return "", 0, 0, d.errAt(line, col, "a secret cannot be a map key")
			case nil:
			default:
				return fmt.Sprint(s), line, col, nil
			}
		}
	}
	return "", 0, 0, d.errAt(line, col, "a map key must be text or a number")
}

// Plain converts a node to plain Go values: map[string]any, []any and
// scalars (Secrets kept). Tags are dropped.
func (n *Node) Plain() any {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case Map:
		m := make(map[string]any, len(n.Pairs))
		for _, p := range n.Pairs {
			m[p.Key] = p.Value.Plain()
		}
		return m
	case List:
		l := make([]any, len(n.Items))
		for i, it := range n.Items {
			l[i] = it.Plain()
		}
		return l
	}
	return n.Value
}

// Where formats a node's position as "LINE:COL".
func (n *Node) Where() string {
	return strconv.Itoa(n.Line) + ":" + strconv.Itoa(n.Col)
}
