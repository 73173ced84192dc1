package state

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
)

// topMatch is Salt's "- match:" word → our target kind.
var topMatch = map[string]target.Kind{
	"glob":       target.KindGlob,
	"grain":      target.KindFact,
	"fact":       target.KindFact,
	"grain_pcre": target.KindFactPCRE,
	"fact_pcre":  target.KindFactPCRE,
	"list":       target.KindList,
	"pcre":       target.KindPCRE,
	"compound":   target.KindCompound,
	"ipcidr":     target.KindIPCIDR,
}

// slsRef is an sls name and where it was named.
type slsRef struct {
	name string
	pos  Pos
}

// topRefs renders top.sls and returns the sls names whose targets match
// this peel, in the order the file lists them, each once.
func topRefs(ctx context.Context, fsys fs.FS, opt *Options) ([]slsRef, error) {
	l := newLoader(ctx, fsys, opt)
	root, err := l.render(TopFile)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, nil
	}
	if root.Kind != render.Map {
		return nil, errAt(Pos{TopFile, root.Line, root.Col}, "top.sls is a map of environments (base:), not a %s", kindName(root.Kind))
	}
	subj := &target.MapSubject{PeelID: opt.ID, Facts: opt.Facts}
	var out []slsRef
	seen := map[string]bool{}
	var errs errList
	for _, env := range root.Pairs {
		epos := Pos{TopFile, env.KeyLine, env.KeyCol}
		if env.Key != Environment {
			errs.add(errAt(epos, "environment %q: Zester has one environment, %s", env.Key, Environment))
			continue
		}
		if env.Value.Kind != render.Map {
			if env.Value.Kind == render.Scalar && env.Value.Value == nil {
				continue
			}
			errs.add(errAt(epos, "environment %s: want a map of targets to sls lists, got a %s", env.Key, kindName(env.Value.Kind)))
			continue
		}
		for _, t := range env.Value.Pairs {
			tpos := Pos{TopFile, t.KeyLine, t.KeyCol}
			refs, kind, err := topEntry(t.Value, tpos)
			if err != nil {
				errs.add(err)
				continue
			}
			expr, err := target.Parse(kind, t.Key, target.Options{})
			if err != nil {
				errs.add(errAt(tpos, "target %q: %v", t.Key, err))
				continue
			}
			if !expr.Match(subj) {
				continue
			}
			for _, r := range refs {
				if !seen[r.name] {
					seen[r.name] = true
					out = append(out, r)
				}
			}
		}
	}
	return out, errs.err()
}

// topEntry reads one target's list: sls names and an optional - match: KIND.
func topEntry(n *render.Node, tpos Pos) ([]slsRef, target.Kind, error) {
	kind := target.KindGlob
	if n == nil || (n.Kind == render.Scalar && n.Value == nil) {
		return nil, kind, nil
	}
	if n.Kind != render.List {
		return nil, "", errAt(tpos, "target: want a list of sls names, got a %s", kindName(n.Kind))
	}
	var refs []slsRef
	for _, it := range n.Items {
		ipos := Pos{TopFile, it.Line, it.Col}
		switch {
		case it.Kind == render.Scalar:
			s, ok := it.Value.(string)
			if !ok {
				return nil, "", errAt(ipos, "want an sls name, got %v", it.Value)
			}
			if err := checkSLSName(s); err != nil {
				return nil, "", errAt(ipos, "%v", err)
			}
			refs = append(refs, slsRef{s, ipos})
		case it.Kind == render.Map && len(it.Pairs) == 1 && it.Pairs[0].Key == "match":
			m, _ := it.Pairs[0].Value.Value.(string)
			k, ok := topMatch[m]
			if !ok {
				return nil, "", errAt(ipos, "match: %q is not a target type Zester knows (glob, grain, grain_pcre, list, pcre, compound, ipcidr)", fmt.Sprint(it.Pairs[0].Value.Value))
			}
			kind = k
		default:
			return nil, "", errAt(ipos, "want an sls name or - match: TYPE, got a %s", describe(it))
		}
	}
	return refs, kind, nil
}

// Top returns what top.sls gives this peel, in Salt's show_top shape:
// {"base": ["common", "web"]}.
func Top(ctx context.Context, fsys fs.FS, opt Options) (map[string][]string, error) {
	refs, err := topRefs(ctx, fsys, &opt)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(refs))
	for _, r := range refs {
		names = append(names, r.name)
	}
	return map[string][]string{Environment: names}, nil
}
