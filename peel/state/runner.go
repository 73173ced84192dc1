package state

import (
	"context"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/peel/state/mod"
)

// Return is a run's result: mod.RunKey → mod.Run, Salt's shape.
type Return map[string]mod.Run

// Failed reports whether any state failed.
func (r Return) Failed() bool {
	for _, s := range r {
		if s.Status == mod.Failed {
			return true
		}
	}
	return false
}

// Ordered lists the keys in run order.
func (r Return) Ordered() []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return r[keys[a]].RunNum < r[keys[b]].RunNum })
	return keys
}

// RunOptions is what a run needs besides the plan.
type RunOptions struct {
	Options
	// Test asks every state what it would change and changes nothing.
	Test bool
	// Root prefixes every host path (tests: a temporary directory).
	Root string
	// Tree is the state tree, for salt:// sources and templates.
	Tree fs.FS
	// Exec runs commands; nil is Exec (os/exec with caps and runas).
	Exec func(ctx context.Context, c mod.Command) (mod.Output, error)
	Log  *slog.Logger
}

// run is the state of one Apply.
type run struct {
	p       *Plan
	env     mod.Env
	res     []mod.Result
	ran     []bool
	secrets map[string]bool
}

// Apply runs the plan: every state once, in order, with Salt's requisite
// semantics. It always returns a result for every state; a state that
// could not run says why in its comment.
func (p *Plan) Apply(ctx context.Context, ro RunOptions) Return {
	r := &run{p: p, res: make([]mod.Result, len(p.Chunks)), ran: make([]bool, len(p.Chunks)), secrets: map[string]bool{}}
	log := ro.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exec := ro.Exec
	if exec == nil {
		exec = Exec
	}
	r.env = mod.Env{Ctx: ctx, Test: ro.Test, Root: ro.Root, ID: ro.ID, Facts: ro.Facts, Tree: ro.Tree, Run: exec, Log: log}
	opt := ro.Options
	r.env.Render = func(name string, src []byte) ([]byte, error) {
		t, err := render.Parse(name, src)
		if err != nil {
			return nil, err
		}
		out, err := t.Execute(ctx, render.Data{ID: opt.ID, Facts: opt.Facts}, opt.funcs(), opt.Limits)
		if err != nil {
			return nil, err
		}
		text := string(out.Text())
		if s, ok := out.Resolve(text).(render.Secret); ok {
			// The file needs the plaintext; the run's results must not
			// show it (scrub).
			plain := s.Reveal()
			for _, tok := range secretsIn(out, text, plain) {
				r.secrets[tok] = true
			}
			return []byte(plain), nil
		}
		return out.Text(), nil
	}
	ret := make(Return, len(p.Chunks))
	for i, c := range p.Chunks {
		start := time.Now()
		res := r.state(i)
		if res.Name == "" {
			res.Name = c.Name
		}
		if res.Changes == nil {
			res.Changes = map[string]any{}
		}
		r.scrub(&res)
		r.res[i] = res
		ret[c.Key()] = mod.Run{
			Result: res, ID: c.ID, SLS: c.SLS, RunNum: i,
			StartTime: start.Format("15:04:05.000000"),
			Duration:  float64(time.Since(start).Microseconds()) / 1000,
		}
	}
	r.listeners(ret)
	return ret
}

// secretsIn finds the plaintexts of the secrets a template printed: the
// parts of plain that replaced placeholders in text. Only whole values are
// known (Output does not expose them), so the masked and the plain texts
// are diffed line by line: every line that differs is secret.
func secretsIn(out *render.Output, text, plain string) []string {
	masked := strings.Split(out.Mask(text), "\n")
	lines := strings.Split(plain, "\n")
	var toks []string
	if len(masked) != len(lines) {
		return []string{plain}
	}
	for i := range lines {
		if lines[i] != masked[i] {
			// The line's secret part: strip what it shares with the
			// masked line at both ends.
			a, b := lines[i], masked[i]
			pre := 0
			for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
				pre++
			}
			suf := 0
			for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
				suf++
			}
			if s := a[pre : len(a)-suf]; s != "" {
				toks = append(toks, s)
			}
		}
	}
	return toks
}

// scrub masks every known secret plaintext in a result.
func (r *run) scrub(res *mod.Result) {
	if len(r.secrets) == 0 {
		return
	}
	res.Comment = r.mask(res.Comment)
	for k, v := range res.Changes {
		res.Changes[k] = r.maskAny(v)
	}
}

func (r *run) mask(s string) string {
	for sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, render.Masked)
	}
	return s
}

func (r *run) maskAny(v any) any {
	switch x := v.(type) {
	case string:
		return r.mask(x)
	case map[string]any:
		for k, e := range x {
			x[k] = r.maskAny(e)
		}
	case []any:
		for i, e := range x {
			x[i] = r.maskAny(e)
		}
	}
	return v
}

func (c *Chunk) tag() string { return c.SLS + "." + c.ID }

// changed is "changed, or would change in test mode".
func changed(r mod.Result) bool { return r.Changed() || r.Status == mod.WouldChange }

// state decides and runs state i.
func (r *run) state(i int) mod.Result {
	c := r.p.Chunks[i]
	var failed []string
	for _, k := range []ReqKind{Require, Watch, OnChanges} {
		for _, d := range c.deps[k] {
			if r.res[d].Status == mod.Failed {
				failed = append(failed, r.p.Chunks[d].tag())
			}
		}
	}
	for _, d := range c.prereqOf {
		if r.res[d].Status == mod.Failed {
			failed = append(failed, r.p.Chunks[d].tag())
		}
	}
	if deps := c.deps[RequireAny]; len(deps) > 0 && r.count(deps, failedRes) == len(deps) {
		for _, d := range deps {
			failed = append(failed, r.p.Chunks[d].tag())
		}
	}
	if len(failed) > 0 {
		return mod.Result{Status: mod.Failed, Comment: "One or more requisite failed: " + strings.Join(unique(failed), ", ")}
	}
	if deps := c.deps[OnFailAll]; len(deps) > 0 && r.count(deps, failedRes) < len(deps) {
		return mod.Result{Status: mod.OK, Comment: "State was not run because onfail req did not change"}
	}
	if deps := c.deps[OnFail]; len(deps) > 0 {
		hit := false
		for _, d := range deps {
			hit = hit || r.res[d].Status == mod.Failed
		}
		if !hit {
			return mod.Result{Status: mod.OK, Comment: "State was not run because onfail req did not change"}
		}
	}
	if deps := c.deps[OnChanges]; len(deps) > 0 {
		hit := false
		for _, d := range deps {
			hit = hit || changed(r.res[d])
		}
		if !hit {
			return mod.Result{Status: mod.OK, Comment: "State was not run because none of the onchanges reqs changed"}
		}
	}
	if c.guards != nil {
		why, err := mod.Guards(&r.env, c.guards, func(script string) mod.Command {
			return mod.Command{Argv: []string{"/bin/sh", "-c", script}}
		})
		if err != nil {
			return mod.Fail(c.Name, "%v", err)
		}
		if why != "" {
			return mod.Result{Status: mod.OK, Comment: why}
		}
	}
	if deps := c.deps[Prereq]; len(deps) > 0 {
		// Run the prereq'd states in test mode: this state runs only if
		// one of them is about to change.
		hit := false
		for _, d := range deps {
			pr := r.call(r.p.Chunks[d], r.p.Chunks[d].entry.Fn, true)
			if pr.Status == mod.Failed {
				return mod.Result{Status: mod.Failed, Comment: "One or more requisite failed: " + r.p.Chunks[d].tag() + " (in test mode: " + pr.Comment + ")"}
			}
			hit = hit || changed(pr)
		}
		if !hit {
			return mod.Result{Status: mod.OK, Comment: "No changes detected"}
		}
	}
	res := r.call(c, c.entry.Fn, r.env.Test)
	if res.Status == mod.Failed || res.Changed() || c.entry.Watch == nil {
		return res
	}
	// Salt's mod_watch: when a watched state changed and this state made
	// no change of its own (a service already running), the watch action
	// runs once (restart, reload), however many watched states changed.
	var trig []string
	for _, d := range c.deps[Watch] {
		if changed(r.res[d]) {
			trig = append(trig, r.p.Chunks[d].tag())
		}
	}
	if len(trig) == 0 {
		return res
	}
	w := r.call(c, c.entry.Watch, r.env.Test)
	if w.Comment == "" {
		w.Comment = res.Comment
	}
	w.Comment += " (watch: " + strings.Join(trig, ", ") + " changed)"
	return w
}

func failedRes(r mod.Result) bool { return r.Status == mod.Failed }

// count is how many of the states deps satisfy ok.
func (r *run) count(deps []int, ok func(mod.Result) bool) int {
	n := 0
	for _, d := range deps {
		if ok(r.res[d]) {
			n++
		}
	}
	return n
}

// listeners runs, after every state, the watch action of each state that
// listens to one that changed: once per listener, under Salt's key
// module_|-listener_ID_|-name_|-mod_watch.
func (r *run) listeners(ret Return) {
	n := len(r.p.Chunks)
	for i, c := range r.p.Chunks {
		deps := c.deps[Listen]
		if len(deps) == 0 || r.res[i].Status == mod.Failed || r.count(deps, changed) == 0 {
			continue
		}
		start := time.Now()
		res := r.call(c, c.entry.Watch, r.env.Test)
		if res.Name == "" {
			res.Name = c.Name
		}
		if res.Changes == nil {
			res.Changes = map[string]any{}
		}
		r.scrub(&res)
		id := "listener_" + c.ID
		ret[mod.RunKey(c.Module, id, c.Name, "mod_watch")] = mod.Run{
			Result: res, ID: id, SLS: c.SLS, RunNum: n,
			StartTime: start.Format("15:04:05.000000"),
			Duration:  float64(time.Since(start).Microseconds()) / 1000,
		}
		n++
	}
}

// call runs one state function, turning a panic into a failed state.
func (r *run) call(c *Chunk, fn mod.Func, test bool) (res mod.Result) {
	env := r.env
	env.Test = test
	env.Log = r.env.Log.With("state", c.ID, "function", c.Module+"."+c.Function)
	for k := range c.Args {
		if c.Args.Secret(k) {
			if s, _, err := c.Args.String(k); err == nil && s != "" {
				r.secrets[s] = true
			}
		}
	}
	defer func() {
		if p := recover(); p != nil {
			res = mod.Fail(c.Name, "state function %s.%s panicked: %v", c.Module, c.Function, p)
		}
	}()
	if err := env.Ctx.Err(); err != nil {
		return mod.Fail(c.Name, "not run: %v", err)
	}
	res = fn(&env, c.Name, c.Args)
	if test && res.Status == mod.OK && res.Changed() {
		// A module that reports changes in test mode would make them.
		res.Status = mod.WouldChange
	}
	return res
}

func unique(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// Summary counts a return as Salt's summary block does.
type Summary struct {
	Succeeded, Changed, Failed, Total int
	// Duration is the sum of the states' durations, in milliseconds.
	Duration float64
}

// Summarize counts r.
func (r Return) Summarize() Summary {
	var s Summary
	for _, x := range r {
		s.Total++
		s.Duration += x.Duration
		if x.Status == mod.Failed {
			s.Failed++
			continue
		}
		s.Succeeded++
		if changed(x.Result) {
			s.Changed++
		}
	}
	return s
}
