// Package mod is the contract between the state engine (peel/state) and the
// state modules (file, cmd, pkg, service, user): what a state function
// receives, what it returns, and the table the engine looks functions up in.
//
// A state function makes one declaration true ("package nginx is installed")
// or, in test mode, says what it would change without changing anything. It
// is idempotent: run twice, the second run reports no changes.
package mod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/staterun"
)

// The result types live in internal/staterun (the CLI decodes them too,
// and it sits below both daemons); these names keep the modules' code unchanged.
type (
	// Status is a state's outcome: Salt's true, false or null.
	Status = staterun.Status
	// Result is what one state function returns.
	Result = staterun.Result
	// Run is one state's entry in a state.apply return.
	Run = staterun.Run
)

// The three outcomes.
const (
	OK          = staterun.OK
	Failed      = staterun.Failed
	WouldChange = staterun.WouldChange
)

// RunKey is staterun.Key: "<module>_|-<id>_|-<name>_|-<function>".
func RunKey(module, id, name, function string) string {
	return staterun.Key(module, id, name, function)
}

// SplitRunKey is staterun.SplitKey.
func SplitRunKey(key string) (module, id, name, function string, ok bool) {
	return staterun.SplitKey(key)
}

// Fail is a failed result with a formatted comment.
func Fail(name, format string, args ...any) Result {
	return Result{Name: name, Status: Failed, Comment: fmt.Sprintf(format, args...)}
}

// Command is one program run by a module (package managers, systemctl,
// useradd, cmd.run). Argv[0] is looked up in PATH.
type Command struct {
	Argv  []string
	Dir   string
	Env   []string // added to the peel's environment
	Stdin []byte
	// User runs the command as this user (cmd.run runas); "" = the peel's.
	User    string
	Timeout time.Duration
}

// Output is what a Command produced.
type Output struct {
	Stdout, Stderr string
	Code           int
}

// Env is what the engine gives every state function. It is read-only to
// modules.
type Env struct {
	Ctx context.Context
	// Test: report what would change, change nothing.
	Test bool
	// Root prefixes every host path a module reads or writes ("" is "/").
	// Tests point it at a temporary directory.
	Root string
	// ID is the peel's id; Facts its facts (os, os_family, ... decide the
	// package and service backends).
	ID    string
	Facts map[string]any
	// Tree is the state tree, for salt:// and zester:// sources (paths
	// relative to the tree's root).
	Tree fs.FS
	// Render renders a template from the tree (file.managed template: zy
	// or jinja-less text templates) with the same engine and data as the
	// .sls files.
	Render func(name string, src []byte) ([]byte, error)
	// Run runs a command; every module that execs goes through it so one
	// place applies timeouts, output caps and runas.
	Run func(ctx context.Context, c Command) (Output, error)
	Log *slog.Logger
}

// Path maps a host path into Root.
func (e *Env) Path(p string) string {
	if e.Root == "" || e.Root == "/" {
		return p
	}
	return strings.TrimRight(e.Root, "/") + "/" + strings.TrimLeft(p, "/")
}

// Func is one state function (file.managed, pkg.installed...). name is the
// declaration's name (defaulting to the state id); args holds every other
// argument, requisites already removed by the engine.
type Func func(env *Env, name string, args Args) Result

// Entry is a state function in the table.
type Entry struct {
	Fn Func
	// Watch, when set, runs instead of nothing when a state this one
	// watches changed (Salt's mod_watch: service.running restarts or
	// reloads). It receives the same name and args.
	Watch Func
	// Args lists the arguments Fn accepts (besides name); the engine
	// refuses others before anything runs, naming them.
	Args []string
}

// Table maps "module.function" to its entry.
type Table struct{ m map[string]Entry }

// NewTable is an empty table.
func NewTable() *Table { return &Table{m: map[string]Entry{}} }

// Add registers fn under name; a second Add of the same name panics (a
// programming error caught by any test that builds the table).
func (t *Table) Add(name string, e Entry) {
	if _, dup := t.m[name]; dup {
		panic("mod: state function registered twice: " + name)
	}
	t.m[name] = e
}

// Lookup finds a state function.
func (t *Table) Lookup(name string) (Entry, bool) {
	e, ok := t.m[name]
	return e, ok
}

// Names lists the registered functions, sorted.
func (t *Table) Names() []string {
	return slices.Sorted(maps.Keys(t.m))
}

// Args are a state's arguments after the engine flattened Salt's list of
// single-key maps. Values are what YAML decoding gives: string, bool,
// int64/uint64/float64, []any, map[string]any.
type Args map[string]any

// Unknown names the arguments not in allowed, or returns nil.
func (a Args) Unknown(allowed []string) error {
	var bad []string
	for k := range a {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("unknown argument(s) %s (accepted: %s)", strings.Join(bad, ", "), strings.Join(allowed, ", "))
}

// String returns a string argument; numbers and bools are formatted (YAML
// reads mode: 0644 as a number).
func (a Args) String(key string) (string, bool, error) {
	v, ok := a[key]
	if !ok || v == nil {
		return "", false, nil
	}
	switch x := v.(type) {
	case string:
		return x, true, nil
	case revealer:
		return x.Reveal(), true, nil
	case bool, int, int64, uint64, float64, json.Number:
		return fmt.Sprint(x), true, nil
	}
	return "", true, fmt.Errorf("argument %s: want a string, got %T", key, v)
}

// Bool returns a boolean argument (true/false, or the strings "true"/"false").
func (a Args) Bool(key string) (bool, bool, error) {
	v, ok := a[key]
	if !ok || v == nil {
		return false, false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, true, nil
	case string:
		switch strings.ToLower(x) {
		case "true", "yes", "1":
			return true, true, nil
		case "false", "no", "0":
			return false, true, nil
		}
	}
	return false, true, fmt.Errorf("argument %s: want true or false, got %v", key, v)
}

// Strings returns a list-of-strings argument; a single string is a list of
// one.
func (a Args) Strings(key string) ([]string, bool, error) {
	v, ok := a[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}, true, nil
	case []string:
		return x, true, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, true, fmt.Errorf("argument %s[%d]: want a string, got %T", key, i, e)
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, true, fmt.Errorf("argument %s: want a list of strings, got %T", key, v)
}

// revealer is a secret value from a rendered .sls (render.Secret): it
// prints masked, and Reveal gives the plaintext. mod does not import the
// template engine; this interface is the whole coupling.
type revealer interface{ Reveal() string }

// Secret reports whether the argument key holds a secret (a {{ secret }}
// in the .sls): modules must keep its text out of comments and diffs.
func (a Args) Secret(key string) bool {
	_, ok := a[key].(revealer)
	return ok
}

// TreePath maps a source URL of the state tree to a path in Env.Tree:
// "salt://web/nginx.conf" and "zester://web/nginx.conf" are both
// "web/nginx.conf". ok is false for anything else (a host path, http://).
func TreePath(src string) (string, bool) {
	for _, scheme := range []string{"salt://", "zester://"} {
		if rest, ok := strings.CutPrefix(src, scheme); ok {
			// A query (salt://x?saltenv=base) names an environment; there
			// is one tree, so it is dropped.
			if i := strings.IndexByte(rest, '?'); i >= 0 {
				rest = rest[:i]
			}
			return strings.TrimLeft(rest, "/"), true
		}
	}
	return "", false
}

// GuardArgs are the arguments Guards reads.
var GuardArgs = []string{"creates", "unless", "onlyif"}

// every reports whether list has entries and pred holds for each (it
// stops at the first that fails).
func every(list []string, pred func(string) bool) bool {
	for _, s := range list {
		if !pred(s) {
			return false
		}
	}
	return len(list) > 0
}

// Guards is Salt's creates, unless and onlyif: it says why a state need
// not run ("" when it must). creates: every path exists (under Env.Root);
// unless: every command succeeds; onlyif: a command fails. command builds
// the Command of one guard script (its shell, cwd, env, runas). Guards
// only look, so they run in test mode too.
func Guards(env *Env, args Args, command func(script string) Command) (string, error) {
	creates, _, err := args.Strings("creates")
	if err != nil {
		return "", err
	}
	if every(creates, func(c string) bool { _, err := os.Stat(env.Path(c)); return !errors.Is(err, fs.ErrNotExist) }) {
		return strings.Join(creates, ", ") + " exists", nil
	}
	ok := func(script string) bool {
		out, err := env.Run(env.Ctx, command(script))
		return err == nil && out.Code == 0
	}
	unless, _, err := args.Strings("unless")
	if err != nil {
		return "", err
	}
	if every(unless, ok) {
		return "unless condition is true", nil
	}
	onlyif, _, err := args.Strings("onlyif")
	if err != nil {
		return "", err
	}
	for _, o := range onlyif {
		if !ok(o) {
			return "onlyif condition is false", nil
		}
	}
	return "", nil
}
