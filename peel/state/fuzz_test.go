package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/zester-io/zester/peel/state/file"
	"github.com/zester-io/zester/peel/state/mod"
)

// fuzzTable has no module that executes anything: fuzzed trees run in
// test mode, and file functions only look in test mode.
func fuzzTable() *mod.Table {
	t := mod.NewTable()
	file.Register(t)
	t.Add("test.nop", mod.Entry{Fn: func(env *mod.Env, name string, args mod.Args) mod.Result {
		return mod.Result{Name: name, Status: mod.OK}
	}, Args: []string{"x"}})
	return t
}

// FuzzCompile feeds any text to the loader as an .sls file (with a top.sls
// and a second file it may include): compiling must not panic, errors
// must be *Error naming a file of the tree, and a plan that compiles must
// run in test mode with a result per state.
func FuzzCompile(f *testing.F) {
	f.Add("a:\n  test.nop:\n    - x: 1\n")
	f.Add("include:\n  - b\na:\n  test.nop:\n    - require:\n      - b\n")
	f.Add("a:\n  file.managed:\n    - name: /etc/x\n    - contents: '{{ .id }}'\n    - names:\n      - /a\n      - /b:\n        - mode: 0600\n")
	f.Add("extend:\n  b:\n    test:\n      - x: 2\n")
	f.Add("a: test.nop\nc:\n  test:\n    - nop\n    - order: last\n    - watch_in:\n      - test: b\n")
	f.Fuzz(func(t *testing.T, sls string) {
		fsys := fstest.MapFS{
			"a.sls":   {Data: []byte(sls)},
			"b.sls":   {Data: []byte("b:\n  test.nop\n")},
			"top.sls": {Data: []byte("base:\n  '*':\n    - a\n")},
		}
		opt := Options{ID: "p1", Table: fuzzTable()}
		p, err := CompileHighstate(context.Background(), fsys, opt)
		if err != nil {
			for _, e := range flatten(err) {
				var se *Error
				if !errors.As(e, &se) {
					t.Fatalf("error %T is not *Error: %v", e, e)
				}
				if se.File != "a.sls" && se.File != "b.sls" && se.File != "top.sls" {
					t.Fatalf("error names file %q: %v", se.File, e)
				}
			}
			return
		}
		checkOrder(t, p.Chunks)
		r := p.Apply(context.Background(), RunOptions{Options: opt, Test: true, Root: t.TempDir(), Tree: fsys})
		if len(r) != len(p.Chunks) {
			t.Fatalf("%d results for %d states", len(r), len(p.Chunks))
		}
	})
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkOrder: every state runs after what it requires, watches, ... and
// before what it has a prereq on.
func checkOrder(t *testing.T, cs []*Chunk) {
	t.Helper()
	for i, c := range cs {
		for k, deps := range c.deps {
			for _, d := range deps {
				if ReqKind(k) == Listen {
					continue // no order: runs after every state
				}
				if ReqKind(k) == Prereq {
					if d < i {
						t.Fatalf("%s has prereq on %s but runs after it", c, cs[d])
					}
				} else if d > i {
					t.Fatalf("%s has %s on %s but runs before it", c, ReqKind(k), cs[d])
				}
			}
		}
	}
}

func nop(env *mod.Env, name string, args mod.Args) mod.Result { return mod.Result{Name: name} }

// FuzzGraph builds random requisite graphs: the builder must order every
// acyclic graph consistently with its edges and refuse exactly the
// cyclic ones, naming states of the tree.
func FuzzGraph(f *testing.F) {
	f.Add([]byte{3, 0, 0, 1, 0, 1, 2})
	f.Add([]byte{2, 0, 0, 1, 0, 1, 0})
	f.Add([]byte{5, 4, 0, 4, 1, 1, 2, 2, 3, 3, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		n := int(b[0])%12 + 1
		b = b[1:]
		cs := make([]*Chunk, n)
		for i := range cs {
			cs[i] = &Chunk{ID: fmt.Sprint("s", i), Name: fmt.Sprint("s", i), Module: "test", Function: "nop", SLS: "x", Pos: Pos{"x.sls", i + 1, 1}, order: orderKey{class: 2, seq: i}, entry: mod.Entry{Watch: nop}}
		}
		// after[x] lists what must run before x (for the independent
		// cycle check).
		before := make([][]int, n)
		self := false
		for len(b) >= 3 {
			kind, from, to := ReqKind(b[0]%byte(numReqKinds)), int(b[1])%n, int(b[2])%n
			in := b[0]&0x80 != 0
			b = b[3:]
			r := reqDecl{reqSpec: reqSpec{kind, in}, module: "test", target: cs[to].ID, pos: Pos{"x.sls", from + 1, 5}}
			cs[from].reqs = append(cs[from].reqs, r)
			if from == to {
				self = true
				continue
			}
			dependent, dependency := from, to
			if in {
				dependent, dependency = to, from
			}
			if kind == Listen {
				continue // no order
			}
			if kind == Prereq {
				dependent, dependency = dependency, dependent
			}
			before[dependent] = append(before[dependent], dependency)
		}
		order, err := buildGraph(cs)
		cyclic := hasCycle(before)
		switch {
		case self || cyclic:
			if err == nil {
				t.Fatalf("cyclic graph accepted (self %v)", self)
			}
			if !strings.Contains(err.Error(), "x.sls:") {
				t.Fatalf("error names no place: %v", err)
			}
			return
		case err != nil:
			t.Fatalf("acyclic graph refused: %v", err)
		}
		if len(order) != n {
			t.Fatalf("order has %d of %d states", len(order), n)
		}
		at := make([]int, n)
		for i, c := range order {
			at[c] = i
		}
		for x, bs := range before {
			for _, y := range bs {
				if at[y] > at[x] {
					t.Fatalf("s%d runs before s%d, which it waits on", x, y)
				}
			}
		}
	})
}

func hasCycle(before [][]int) bool {
	state := make([]int, len(before)) // 0 new, 1 on stack, 2 done
	var visit func(int) bool
	visit = func(i int) bool {
		state[i] = 1
		for _, j := range before[i] {
			if state[j] == 1 || (state[j] == 0 && visit(j)) {
				return true
			}
		}
		state[i] = 2
		return false
	}
	for i := range before {
		if state[i] == 0 && visit(i) {
			return true
		}
	}
	return false
}
