package state_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/peel/state/mod"
)

// testTable is the shipped table plus Salt's test.* states and a fake
// service whose restarts are counted in a file under the root.
func testTable() *mod.Table {
	t := state.DefaultTable()
	fixed := func(s mod.Status, changes bool) mod.Func {
		return func(env *mod.Env, name string, args mod.Args) mod.Result {
			r := mod.Result{Name: name, Status: s, Comment: "fixed"}
			if changes {
				if env.Test {
					r.Status = mod.WouldChange
				}
				r.Changes = map[string]any{"testing": "changed"}
			}
			return r
		}
	}
	t.Add("test.succeed_with_changes", mod.Entry{Fn: fixed(mod.OK, true)})
	t.Add("test.succeed_without_changes", mod.Entry{Fn: fixed(mod.OK, false)})
	t.Add("test.fail_without_changes", mod.Entry{Fn: fixed(mod.Failed, false)})
	t.Add("svc.running", mod.Entry{
		Fn: func(env *mod.Env, name string, args mod.Args) mod.Result {
			pid := env.Path("/run/" + name + ".pid")
			if _, err := os.Stat(pid); err == nil {
				return mod.Result{Name: name, Status: mod.OK, Comment: "running"}
			}
			if env.Test {
				return mod.Result{Name: name, Status: mod.WouldChange, Comment: "would start"}
			}
			os.MkdirAll(filepath.Dir(pid), 0o755)
			os.WriteFile(pid, []byte("1"), 0o644)
			return mod.Result{Name: name, Status: mod.OK, Changes: map[string]any{name: "started"}}
		},
		Watch: func(env *mod.Env, name string, args mod.Args) mod.Result {
			if env.Test {
				return mod.Result{Name: name, Status: mod.WouldChange, Comment: "would restart"}
			}
			f, err := os.OpenFile(env.Path("/run/"+name+".restarts"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return mod.Fail(name, "%v", err)
			}
			f.WriteString("restart\n")
			f.Close()
			return mod.Result{Name: name, Status: mod.OK, Changes: map[string]any{name: "restarted"}}
		},
	})
	return t
}

func TestWatch_RestartsOnceWhateverChanged(t *testing.T) {
	root := t.TempDir()
	fsys := tree(map[string]string{"web.sls": `
conf a:
  file.managed:
    - name: /etc/web/a.conf
    - contents: "{{ .facts.role }} a"
    - makedirs: true
conf b:
  file.managed:
    - name: /etc/web/b.conf
    - contents: b
    - makedirs: true
web:
  svc.running:
    - watch:
      - file: conf a
      - file: /etc/web/b.conf
`})
	restarts := func() int {
		b, _ := os.ReadFile(filepath.Join(root, "run/web.restarts"))
		return strings.Count(string(b), "restart")
	}
	table := testTable()
	// First run: the service starts (a change of its own): no restart.
	apply(t, fsys, root, false, table, "web")
	if got := restarts(); got != 0 {
		t.Fatalf("first run (service started by it) restarted %d times", got)
	}
	// Both files change: exactly one restart.
	os.WriteFile(filepath.Join(root, "etc/web/a.conf"), []byte("edited"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/web/b.conf"), []byte("edited"), 0o644)
	test := apply(t, fsys, root, true, table, "web")
	if s := byID(t, test)["web"]; s.Status != mod.WouldChange || restarts() != 0 {
		t.Errorf("test mode: web %v %q, restarts %d", s.Status, s.Comment, restarts())
	}
	r := apply(t, fsys, root, false, table, "web")
	if got := restarts(); got != 1 {
		t.Errorf("two watched files changed: %d restarts, want 1", got)
	}
	if c := byID(t, r)["web"].Comment; !strings.Contains(c, "web.conf a") || !strings.Contains(c, "web.conf b") {
		t.Errorf("watch comment %q does not name what changed", c)
	}
	// Nothing changed: no restart.
	apply(t, fsys, root, false, table, "web")
	if got := restarts(); got != 1 {
		t.Errorf("nothing changed: %d restarts, want still 1", got)
	}
}

func TestRequisites_Semantics(t *testing.T) {
	cases := []struct {
		name string
		sls  string
		// want: state id → "true", "false" or "null", and a comment part.
		want map[string][2]string
	}{
		{"failed require fails the dependent", `
a:
  test.fail_without_changes
b:
  test.succeed_with_changes:
    - require:
      - a
c:
  test.succeed_with_changes:
    - require:
      - test: b
`, map[string][2]string{"a": {"false", "fixed"}, "b": {"false", "One or more requisite failed: s.a"}, "c": {"false", "One or more requisite failed: s.b"}}},
		{"require_in is the reverse", `
a:
  test.fail_without_changes:
    - require_in:
      - b
b:
  test.succeed_with_changes
`, map[string][2]string{"b": {"false", "requisite failed"}}},
		{"onchanges runs only after a change", `
changed:
  test.succeed_with_changes
same:
  test.succeed_without_changes
on changed:
  test.succeed_with_changes:
    - onchanges:
      - changed
on same:
  test.succeed_with_changes:
    - onchanges:
      - same
on either:
  test.succeed_with_changes:
    - onchanges:
      - same
      - changed
`, map[string][2]string{"on changed": {"true", "fixed"}, "on same": {"true", "none of the onchanges reqs changed"}, "on either": {"true", "fixed"}}},
		{"onchanges_in", `
changed:
  test.succeed_with_changes:
    - onchanges_in:
      - after
after:
  test.succeed_with_changes
`, map[string][2]string{"after": {"true", "fixed"}}},
		{"onfail runs only after a failure", `
bad:
  test.fail_without_changes
good:
  test.succeed_without_changes
cleanup:
  test.succeed_with_changes:
    - onfail:
      - bad
not needed:
  test.succeed_with_changes:
    - onfail:
      - good
`, map[string][2]string{"bad": {"false", ""}, "cleanup": {"true", "fixed"}, "not needed": {"true", "onfail req did not change"}}},
		{"prereq runs before a state that will change", `
will change:
  test.succeed_with_changes
wont change:
  test.succeed_without_changes
before change:
  test.succeed_with_changes:
    - prereq:
      - will change
before nothing:
  test.succeed_with_changes:
    - prereq:
      - wont change
`, map[string][2]string{"before change": {"true", "fixed"}, "before nothing": {"true", "No changes detected"}, "will change": {"true", "fixed"}}},
		{"a failed prereq fails the prerequired", `
target:
  test.succeed_with_changes
pre:
  test.fail_without_changes:
    - prereq:
      - target
`, map[string][2]string{"pre": {"false", "fixed"}, "target": {"false", "One or more requisite failed: s.pre"}}},
		{"require_any fails only when all failed", `
bad:
  test.fail_without_changes
good:
  test.succeed_without_changes
one good:
  test.succeed_with_changes:
    - require_any:
      - bad
      - good
all bad:
  test.succeed_with_changes:
    - require_any:
      - bad
`, map[string][2]string{"one good": {"true", "fixed"}, "all bad": {"false", "One or more requisite failed: s.bad"}}},
		{"onfail_all runs only when all failed", `
bad:
  test.fail_without_changes
good:
  test.succeed_without_changes
some failed:
  test.succeed_with_changes:
    - onfail_all:
      - bad
      - good
all failed:
  test.succeed_with_changes:
    - onfail_all:
      - bad
any failed:
  test.succeed_with_changes:
    - onfail_any:
      - bad
      - good
`, map[string][2]string{"some failed": {"true", "onfail req did not change"}, "all failed": {"true", "fixed"}, "any failed": {"true", "fixed"}}},
		{"prereq_in", `
target:
  test.succeed_without_changes:
    - prereq_in:
      - pre
pre:
  test.succeed_with_changes
`, map[string][2]string{"pre": {"true", "No changes detected"}, "target": {"true", "fixed"}}},
	}
	status := map[mod.Status]string{mod.OK: "true", mod.Failed: "false", mod.WouldChange: "null"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := apply(t, tree(map[string]string{"s.sls": c.sls}), t.TempDir(), false, testTable(), "s")
			got := byID(t, r)
			for id, w := range c.want {
				s, ok := got[id]
				if !ok {
					t.Fatalf("no result for %s in %v", id, r.Ordered())
				}
				if status[s.Status] != w[0] || !strings.Contains(s.Comment, w[1]) {
					t.Errorf("%s: result %s %q, want %s containing %q", id, status[s.Status], s.Comment, w[0], w[1])
				}
			}
		})
	}
}

func TestRequisites_PrereqRunsFirst(t *testing.T) {
	r := apply(t, tree(map[string]string{"s.sls": `
target:
  test.succeed_with_changes
pre:
  test.succeed_with_changes:
    - prereq:
      - target
`}), t.TempDir(), false, testTable(), "s")
	got := byID(t, r)
	if got["pre"].RunNum > got["target"].RunNum {
		t.Errorf("prereq ran after its target: %v", r.Ordered())
	}
}

func TestOrder_FirstNumbersDeclarationLast(t *testing.T) {
	r := apply(t, tree(map[string]string{"s.sls": `
d1:
  test.succeed_without_changes
last one:
  test.succeed_without_changes:
    - order: last
n2:
  test.succeed_without_changes:
    - order: 2
d2:
  test.succeed_without_changes
n1:
  test.succeed_without_changes:
    - order: 1
first one:
  test.succeed_without_changes:
    - order: first
needs d2:
  test.succeed_without_changes:
    - order: first
    - require:
      - d2
`}), t.TempDir(), false, testTable(), "s")
	var got []string
	for _, k := range r.Ordered() {
		got = append(got, r[k].ID)
	}
	want := "first one,n1,n2,d1,d2,needs d2,last one"
	if strings.Join(got, ",") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestCompile_RefusesBadTrees(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		sls   []string
		// every pattern must be in the error
		want []string
	}{
		{"cycle names every state with file and line", map[string]string{"a.sls": `
one:
  test.succeed_without_changes:
    - require:
      - two
two:
  test.succeed_without_changes:
    - watch:
      - test: one
`}, []string{"a"}, []string{`requisite cycle`, `one \(a\.sls:3:3\)`, `two \(a\.sls:7:3\)`, `a\.sls:5:9`, `a\.sls:9:9`}},
		{"cycle across files and _in", map[string]string{"a.sls": "include:\n  - b\none:\n  test.succeed_without_changes:\n    - require_in:\n      - two\n", "b.sls": "two:\n  test.succeed_without_changes:\n    - require_in:\n      - one\n"},
			[]string{"a"}, []string{`requisite cycle`, `one \(a\.sls:4:3\)`, `two \(b\.sls:2:3\)`}},
		{"missing requisite names both ends", map[string]string{"a.sls": `
web:
  test.succeed_without_changes:
    - require:
      - pkg: nginx
`}, []string{"a"}, []string{`a\.sls:5:9: state web \(a\.sls:3:3\) has require pkg: nginx, which names no state`}},
		{"a requisite on the wrong module is missing", map[string]string{"a.sls": "x:\n  test.succeed_without_changes\ny:\n  test.succeed_without_changes:\n    - onchanges:\n      - file: x\n"},
			[]string{"a"}, []string{`a\.sls:6:9: state y .* onchanges file: x, which names no state`}},
		{"malformed YAML names file and line", map[string]string{"web/init.sls": "a:\n  file.managed:\n    - name: /x\n   - bad indent\n"},
			[]string{"web"}, []string{`web/init\.sls:4:`}},
		{"template error names file and line", map[string]string{"a.sls": "a:\n  file.managed:\n    - name: {{ .facts.nope }}\n"},
			[]string{"a"}, []string{`a\.sls:3:\d+: .*nope`}},
		{"unknown function", map[string]string{"a.sls": "a:\n  file.manged:\n    - name: /x\n"},
			[]string{"a"}, []string{`a\.sls:2:3: state "a": no state function file\.manged \(file has .*file\.managed`}},
		{"unknown argument", map[string]string{"a.sls": "a:\n  file.managed:\n    - name: /x\n    - contnets: hi\n"},
			[]string{"a"}, []string{`a\.sls:2:3: .*unknown argument\(s\) contnets`}},
		{"id declared twice", map[string]string{"a.sls": "include: [b]\nx:\n  test.succeed_without_changes\n", "b.sls": "x:\n  test.succeed_without_changes\n"},
			[]string{"a"}, []string{`a\.sls:2:1: state id "x" is already declared at b\.sls:1:1`}},
		{"missing include", map[string]string{"a.sls": "include:\n  - nope\n"},
			[]string{"a"}, []string{`a\.sls:2:5: sls nope not found .*nope\.sls and nope/init\.sls`}},
		{"missing sls", map[string]string{}, []string{"web"}, []string{`sls web not found`}},
		{"list instead of arguments", map[string]string{"a.sls": "a:\n  file.managed: /x\n"},
			[]string{"a"}, []string{`a\.sls:2:17: .*want a list of arguments`}},
		{"old form without function", map[string]string{"a.sls": "a:\n  file:\n    - name: /x\n"},
			[]string{"a"}, []string{`a\.sls:2:3: state "a": module file has no function`}},
		{"extend of a missing state", map[string]string{"a.sls": "extend:\n  ghost:\n    file:\n      - mode: 644\n"},
			[]string{"a"}, []string{`a\.sls:2:3: extend: no state "ghost"`}},
		{"bad order", map[string]string{"a.sls": "a:\n  test.succeed_without_changes:\n    - order: soon\n"},
			[]string{"a"}, []string{`a\.sls:3:7: .*order is first, last or a number`}},
		{"several errors at once", map[string]string{"a.sls": "a:\n  file.nope: []\nb:\n  file.nada: []\n"},
			[]string{"a"}, []string{`a\.sls:2:3`, `a\.sls:4:3`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(tree(c.files), testTable(), c.sls...)
			if err == nil {
				t.Fatal("compiled")
			}
			for _, w := range c.want {
				if !regexp.MustCompile(w).MatchString(err.Error()) {
					t.Errorf("error does not match %q:\n%v", w, err)
				}
			}
			var se *state.Error
			if !errors.As(err, &se) {
				t.Errorf("not a *state.Error: %T", err)
			}
		})
	}
}

func TestLoader_SaltLayouts(t *testing.T) {
	fsys := tree(map[string]string{
		"web/init.sls":  "include:\n  - .nginx\n  - common\nweb:\n  test.succeed_without_changes\n",
		"web/nginx.sls": "include:\n  - ..common\nnginx:\n  svc:\n    - running\n    - watch:\n      - file: /etc/nginx.conf\nconf:\n  file.managed:\n    - name: /etc/nginx.conf\n    - makedirs: true\n    - contents: x\n",
		"common.sls":    "extend:\n  nginx:\n    svc:\n      - watch:\n        - file: motd\nmotd:\n  file.managed:\n    - name: /etc/motd\n    - makedirs: true\n    - contents: hi\nusers:\n  test.succeed_without_changes:\n    - names:\n      - alice\n      - bob:\n        - order: first\n",
	})
	p, err := compile(fsys, testTable(), "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Chunks {
		got = append(got, c.SLS+":"+c.ID+"/"+c.Name)
	}
	want := "common:users/bob,common:motd//etc/motd,common:users/alice,web.nginx:conf//etc/nginx.conf,web.nginx:nginx/nginx,web:web/web"
	if strings.Join(got, ",") != want {
		t.Errorf("chunks\n got %v\nwant %s", got, want)
	}
	high := p.High()
	nginx := high["nginx"].(map[string]any)
	if nginx["__sls__"] != "web.nginx" || len(nginx["svc"].([]any)) != 3 {
		t.Errorf("show_sls of nginx (extend adds a second watch): %v", nginx)
	}
	r := apply(t, fsys, t.TempDir(), false, testTable(), "web")
	if len(r) != 6 || r.Failed() {
		t.Errorf("apply: %v", failures(r))
	}
	if _, ok := r[mod.RunKey("svc", "nginx", "nginx", "running")]; !ok {
		t.Errorf("no svc_|-nginx_|-nginx_|-running in %v", r.Ordered())
	}
}

func TestTop_MatchesThisPeel(t *testing.T) {
	fsys := tree(map[string]string{"top.sls": `base:
  '*':
    - common
  'web*':
    - web
  'db*':
    - db
  'G@os:Debian and not G@role:db':
    - match: compound
    - debian
    - common
  'role:web':
    - match: grain
    - webrole
`})
	got, err := state.Top(t.Context(), fsys, opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got["base"], ","); s != "common,web,debian,webrole" {
		t.Errorf("top for web1 = %s", s)
	}
	_, err = state.Top(t.Context(), tree(map[string]string{"top.sls": "base:\n  '*':\n    - match: pillar\n    - x\n"}), opts(nil))
	if err == nil || !strings.Contains(err.Error(), "top.sls:3:7") {
		t.Errorf("unknown match: %v", err)
	}
	_, err = state.Top(t.Context(), tree(map[string]string{"top.sls": "dev:\n  '*':\n    - x\n"}), opts(nil))
	if err == nil || !strings.Contains(err.Error(), `top.sls:1:1: environment "dev"`) {
		t.Errorf("other environment: %v", err)
	}
}

func TestNames_PerNameArgumentsOverride(t *testing.T) {
	root := t.TempDir()
	r := apply(t, tree(map[string]string{"s.sls": `
confs:
  file.managed:
    - contents: shared
    - makedirs: true
    - names:
      - /etc/a.conf
      - /etc/b.conf:
        - contents: own
`}), root, false, testTable(), "s")
	if r.Failed() || len(r) != 2 {
		t.Fatalf("%v", failures(r))
	}
	for name, want := range map[string]string{"etc/a.conf": "shared\n", "etc/b.conf": "own\n"} {
		if b, _ := os.ReadFile(filepath.Join(root, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
}

// cmd.run's watch action runs the command even when its guard says it
// need not: Salt's cmd.wait idiom, once per run whatever changed.
func TestWatch_CmdRunRunsOnceWhenWatchedChanged(t *testing.T) {
	root := t.TempDir()
	log := filepath.Join(root, "reload.log")
	fsys := tree(map[string]string{"s.sls": `
a:
  file.managed:
    - name: /etc/a
    - contents: "{{ .id }}"
    - makedirs: true
b:
  file.managed:
    - name: /etc/b
    - contents: b
    - makedirs: true
reload:
  cmd.run:
    - name: echo reload >> ` + log + `
    - unless: "true"
    - watch:
      - file: a
      - file: b
`})
	count := func() int { b, _ := os.ReadFile(log); return strings.Count(string(b), "reload") }
	apply(t, fsys, root, false, nil, "s")
	if count() != 1 {
		t.Fatalf("two watched files created: ran %d times, want 1", count())
	}
	apply(t, fsys, root, false, nil, "s")
	if count() != 1 {
		t.Errorf("nothing changed: ran %d times, want still 1", count())
	}
}

// require: - sls: NAME waits on every state of that sls, and fails with
// any of them.
func TestRequisites_SLS(t *testing.T) {
	fsys := tree(map[string]string{
		"s.sls":    "include:\n  - base\nlast:\n  test.succeed_without_changes:\n    - order: first\n    - require:\n      - sls: base\n",
		"base.sls": "one:\n  test.succeed_without_changes\ntwo:\n  test.fail_without_changes\n",
	})
	r := apply(t, fsys, t.TempDir(), false, testTable(), "s")
	got := byID(t, r)
	if got["last"].RunNum != 2 || got["last"].Status != mod.Failed || got["last"].Comment != "One or more requisite failed: base.two" {
		t.Errorf("last: run %d, %v %q", got["last"].RunNum, got["last"].Status, got["last"].Comment)
	}
}

// listen runs the watch action once after every state, whatever the
// order, and only when a listened state changed.
func TestListen_RunsOnceAtTheEnd(t *testing.T) {
	root := t.TempDir()
	fsys := tree(map[string]string{"s.sls": `
web:
  svc.running:
    - listen:
      - file: a
      - file: b
a:
  file.managed:
    - name: /etc/a
    - contents: a
    - makedirs: true
b:
  file.managed:
    - name: /etc/b
    - contents: b
    - makedirs: true
`})
	table := testTable()
	restarts := func() int {
		b, _ := os.ReadFile(filepath.Join(root, "run/web.restarts"))
		return strings.Count(string(b), "restart")
	}
	r := apply(t, fsys, root, false, table, "s")
	l, ok := r[mod.RunKey("svc", "listener_web", "web", "mod_watch")]
	if !ok || restarts() != 1 || l.RunNum != 3 || l.ID != "listener_web" {
		t.Fatalf("listener: %+v (present %v), %d restarts, keys %v", l, ok, restarts(), r.Ordered())
	}
	if got := byID(t, r)["web"]; got.RunNum != 0 {
		t.Errorf("listen ordered the listener after its states: run %d", got.RunNum)
	}
	r = apply(t, fsys, root, false, table, "s")
	if _, ok := r[mod.RunKey("svc", "listener_web", "web", "mod_watch")]; ok || restarts() != 1 {
		t.Errorf("nothing changed: listener ran (%d restarts)", restarts())
	}
	_, err := compile(tree(map[string]string{"s.sls": "a:\n  test.succeed_without_changes:\n    - listen:\n      - b\nb:\n  test.succeed_without_changes\n"}), table, "s")
	if err == nil || !strings.Contains(err.Error(), "s.sls:4:9: state a (s.sls:2:3) listens to b, but test.succeed_without_changes has no watch action") {
		t.Errorf("listen without a watch action: %v", err)
	}
}

// creates, unless and onlyif work on any state, as in Salt: the engine
// checks them when the module does not take them (in test mode too).
func TestGuards_OnAnyState(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "flag"), nil, 0o644)
	fsys := tree(map[string]string{"s.sls": `
skipped by creates:
  file.managed:
    - name: /a
    - contents: a
    - creates: /flag
skipped by unless:
  file.managed:
    - name: /b
    - contents: b
    - unless: "test -e ` + root + `/flag"
skipped by onlyif:
  file.managed:
    - name: /c
    - contents: c
    - onlyif:
      - "true"
      - "false"
runs:
  file.managed:
    - name: /d
    - contents: d
    - onlyif: "true"
    - unless: "false"
`})
	for _, test := range []bool{true, false} {
		got := byID(t, apply(t, fsys, root, test, nil, "s"))
		for id, want := range map[string]string{"skipped by creates": "/flag exists", "skipped by unless": "unless condition is true", "skipped by onlyif": "onlyif condition is false"} {
			if got[id].Status != mod.OK || got[id].Comment != want || got[id].Changed() {
				t.Errorf("test=%v %s: %v %q", test, id, got[id].Status, got[id].Comment)
			}
		}
		if !changed(got["runs"]) {
			t.Errorf("test=%v runs: %v %q", test, got["runs"].Status, got["runs"].Comment)
		}
	}
	for _, f := range []string{"a", "b", "c"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("/%s written", f)
		}
	}
}

func changed(r mod.Run) bool { return r.Changed() || r.Status == mod.WouldChange }
