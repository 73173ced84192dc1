package state

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
)

// edge says chunk `after` runs after chunk `before`, because of the
// requisite written at pos.
type edge struct {
	before, after int
	kind          ReqKind
	pos           Pos
}

type graph struct {
	chunks              []*Chunk
	byID, byName, bySLS map[string][]int
	after               [][]edge // after[i]: edges whose before is i
	indeg               []int
	errs                errList
	preds               [][]edge // preds[i]: edges whose after is i
}

// buildGraph resolves every chunk's requisites into deps and returns the
// run order: a topological order of the requisite edges in which ties go
// to the smaller order key (order: first/N/last, then declaration order).
// A requisite naming no state, or a cycle, is an error naming both ends.
func buildGraph(chunks []*Chunk) ([]int, error) {
	g := &graph{chunks: chunks, byID: map[string][]int{}, byName: map[string][]int{}, bySLS: map[string][]int{},
		after: make([][]edge, len(chunks)), preds: make([][]edge, len(chunks)), indeg: make([]int, len(chunks))}
	for i, c := range chunks {
		g.byID[c.ID] = append(g.byID[c.ID], i)
		if c.Name != c.ID {
			g.byName[c.Name] = append(g.byName[c.Name], i)
		}
		g.bySLS[c.SLS] = append(g.bySLS[c.SLS], i)
	}
	for i, c := range chunks {
		for _, r := range c.reqs {
			g.resolve(i, r)
		}
	}
	if err := g.errs.err(); err != nil {
		return nil, err
	}
	return g.sort()
}

// match finds the states a requisite names: by sls, or by id or name
// within a module ("file: /etc/motd"), or by id or name in any module.
func (g *graph) match(r reqDecl) []int {
	if r.module == "sls" {
		return g.bySLS[r.target]
	}
	var out []int
	for _, i := range g.byID[r.target] {
		if r.module == "" || r.module == "id" || g.chunks[i].Module == r.module {
			out = append(out, i)
		}
	}
	for _, i := range g.byName[r.target] {
		if (r.module == "" || r.module == "id" || g.chunks[i].Module == r.module) && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

func (g *graph) resolve(i int, r reqDecl) {
	c := g.chunks[i]
	targets := g.match(r)
	kind := r.kind.String()
	if r.in {
		kind += "_in"
	}
	if len(targets) == 0 {
		g.errs.add(errAt(r.pos, "state %s (%s) has %s %s, which names no state in this run", c.ID, c.Pos, kind, r))
		return
	}
	for _, t := range targets {
		if t == i {
			g.errs.add(errAt(r.pos, "state %s (%s) has %s %s, which is itself", c.ID, c.Pos, kind, r))
			continue
		}
		// dependent has the requisite of kind on dependency.
		dependent, dependency := i, t
		if r.in {
			dependent, dependency = t, i
		}
		d := g.chunks[dependent]
		if slices.Contains(d.deps[r.kind], dependency) {
			continue
		}
		if r.kind == Listen {
			// No order: the listener's watch action runs after every
			// state. It must have one.
			if d.entry.Watch == nil {
				g.errs.add(errAt(r.pos, "state %s (%s) listens to %s, but %s.%s has no watch action to run", d.ID, d.Pos, g.chunks[dependency].ID, d.Module, d.Function))
				continue
			}
			d.deps[Listen] = append(d.deps[Listen], dependency)
			continue
		}
		d.deps[r.kind] = append(d.deps[r.kind], dependency)
		e := edge{before: dependency, after: dependent, kind: r.kind, pos: r.pos}
		if r.kind == Prereq {
			// The state with the prereq runs first (if the other would
			// change), so the order edge points the other way.
			g.chunks[dependency].prereqOf = append(g.chunks[dependency].prereqOf, dependent)
			e.before, e.after = dependent, dependency
		}
		g.after[e.before] = append(g.after[e.before], e)
		g.preds[e.after] = append(g.preds[e.after], e)
		g.indeg[e.after]++
	}
}

type readyHeap struct {
	idx    []int
	chunks []*Chunk
}

func (h readyHeap) Len() int { return len(h.idx) }
func (h readyHeap) Less(a, b int) bool {
	return h.chunks[h.idx[a]].order.less(h.chunks[h.idx[b]].order)
}
func (h readyHeap) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *readyHeap) Push(x any)   { h.idx = append(h.idx, x.(int)) }
func (h *readyHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

func (g *graph) sort() ([]int, error) {
	indeg := slices.Clone(g.indeg)
	h := &readyHeap{chunks: g.chunks}
	for i, d := range indeg {
		if d == 0 {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	order := make([]int, 0, len(g.chunks))
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		order = append(order, i)
		for _, e := range g.after[i] {
			indeg[e.after]--
			if indeg[e.after] == 0 {
				heap.Push(h, e.after)
			}
		}
	}
	if len(order) == len(g.chunks) {
		return order, nil
	}
	return nil, g.cycle(indeg)
}

// cycle finds one cycle among the states left with unmet requisites and
// names every state on it with the requisite that links it to the next.
func (g *graph) cycle(indeg []int) error {
	// Every state left has a predecessor also left; walking predecessors
	// from any of them must revisit one, and the walk from there on is a
	// cycle.
	start := -1
	for i, d := range indeg {
		if d > 0 {
			start = i
			break
		}
	}
	seen := map[int]int{}
	var path []edge
	cur := start
	for {
		if at, ok := seen[cur]; ok {
			path = path[at:]
			break
		}
		seen[cur] = len(path)
		var next edge
		found := false
		for _, e := range g.preds[cur] {
			if indeg[e.before] > 0 {
				next, found = e, true
				break
			}
		}
		if !found {
			// Cannot happen: a state with unmet requisites has a
			// predecessor that is unmet too.
			return errAt(g.chunks[cur].Pos, "requisite cycle through state %s", g.chunks[cur].ID)
		}
		path = append(path, next)
		cur = next.before
	}
	// path walks backwards (after → before); print it forwards.
	slices.Reverse(path)
	var b strings.Builder
	for _, e := range path {
		a, z := g.chunks[e.after], g.chunks[e.before]
		verb := "requires"
		if e.kind != Require {
			verb = "has " + e.kind.String() + " on"
		}
		if e.kind == Prereq {
			// after prereqs... the order edge is reversed for prereq.
			a, z = z, a
			verb = "has prereq on"
		}
		fmt.Fprintf(&b, "\n  %s %s (%s) %s %s %s (%s) [written at %s]", a.Module, a.ID, a.Pos, verb, z.Module, z.ID, z.Pos, e.pos)
	}
	first := g.chunks[path[0].after]
	return errAt(first.Pos, "requisite cycle: %d states wait on each other:%s", len(path), b.String())
}
