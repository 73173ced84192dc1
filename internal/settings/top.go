package settings

import (
	"errors"
	"fmt"
	"strings"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
)

// topEntry is one target of top.zy and the files it applies.
type topEntry struct {
	expr  target.Expr
	files []fileRef
}

// Salt's match types (top.sls "- match: grain") and the target kind each
// selects. The default, for an entry without one, is compound (so a plain
// glob works, and so does "G@os:Debian and web*").
var matchKinds = map[string]target.Kind{
	"glob": target.KindGlob, "pcre": target.KindPCRE, "list": target.KindList,
	"grain": target.KindFact, "grain_pcre": target.KindFactPCRE, "ipcidr": target.KindIPCIDR,
	"compound": target.KindCompound, "nodegroup": target.KindNodegroup,
}

// parseTop reads a decoded top.zy:
//
//	'web-*': [common, web]
//	'G@os:Debian and not db*':
//	  - debian
//	'os:Debian':                   # Salt's form: a match type in the list
//	  - match: grain
//	  - debian
//
// A document whose only key is "base" with a map under it is Salt's
// top.sls with its environment level, and is read as that map (Zester has
// one environment).
func (t *Tree) parseTop(root *render.Node) ([]topEntry, error) {
	if root == nil {
		return nil, nil
	}
	if root.Kind != render.Map {
		return nil, topErr(root.Line, root.Col, "top.zy maps targets to lists of settings files ('web-*': [common, web])")
	}
	if len(root.Pairs) == 1 && root.Pairs[0].Key == "base" && root.Pairs[0].Value != nil && root.Pairs[0].Value.Kind == render.Map {
		root = root.Pairs[0].Value
	}
	entries := make([]topEntry, 0, len(root.Pairs))
	for _, p := range root.Pairs {
		v := p.Value
		if v == nil || v.Kind != render.List {
			line, col := p.KeyLine, p.KeyCol
			if v != nil {
				line, col = v.Line, v.Col
			}
			return nil, topErr(line, col, "target %q: want a list of settings file names", p.Key)
		}
		kind := target.KindCompound
		var files []fileRef
		for _, it := range v.Items {
			switch {
			case it.Kind == render.Scalar:
				name, ok := it.Value.(string)
				if !ok {
					return nil, topErr(it.Line, it.Col, "target %q: %v is not a settings file name", p.Key, it.Value)
				}
				files = append(files, fileRef{name: name, line: it.Line, col: it.Col})
			case it.Kind == render.Map && len(it.Pairs) == 1 && it.Pairs[0].Key == "match":
				m, _ := it.Pairs[0].Value.Value.(string)
				k, ok := matchKinds[m]
				if !ok {
					return nil, topErr(it.Pairs[0].Value.Line, it.Pairs[0].Value.Col, "target %q: match type %q: want one of glob, pcre, list, grain, grain_pcre, ipcidr, compound, nodegroup", p.Key, m)
				}
				kind = k
			default:
				return nil, topErr(it.Line, it.Col, "target %q: want a settings file name or match: TYPE", p.Key)
			}
		}
		e, err := t.expr(kind, p.Key)
		if err != nil {
			var te *target.Error
			if errors.As(err, &te) {
				// The target's column counts from the start of the key.
				return nil, topErr(p.KeyLine, p.KeyCol, "%s", te.Error())
			}
			return nil, topErr(p.KeyLine, p.KeyCol, "%v", err)
		}
		entries = append(entries, topEntry{expr: e, files: files})
	}
	return entries, nil
}

func topErr(line, col int, format string, args ...any) error {
	return &render.Error{File: TopFile, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// expr parses a target once per tree: top.zy's keys are the same text for
// every peel even when top.zy is a template.
func (t *Tree) expr(kind target.Kind, s string) (target.Expr, error) {
	k := exprKey{kind: kind, expr: s}
	if e, ok := t.exprs.Load(k); ok {
		return e.(target.Expr), nil
	}
	e, err := target.Parse(kind, strings.TrimSpace(s), t.topts)
	if err != nil {
		return nil, err
	}
	if target.UsesSettings(e) {
		return nil, fmt.Errorf("target %q: I@ matches settings, and top.zy decides which settings a peel has: target on ids or facts here", s)
	}
	t.exprs.Store(k, e)
	return e, nil
}

// select_ returns the settings files that apply to subj, in merge order:
// top.zy's entries in order, each entry's files in order, a file named
// again later keeping its first place (Salt applies an SLS once).
func selectFiles(entries []topEntry, subj target.Subject) []fileRef {
	var out []fileRef
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.expr.Match(subj) {
			continue
		}
		for _, f := range e.files {
			if !seen[f.name] {
				seen[f.name] = true
				out = append(out, f)
			}
		}
	}
	return out
}
