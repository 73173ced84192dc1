// Package pkg is the pkg state module: pkg.installed, pkg.removed and
// pkg.latest on apt/dpkg, dnf/rpm and apk, the backend chosen from the
// peel's os facts.
//
// Every function first asks the package database what is installed
// (dpkg-query, rpm -q, apk info), so a declaration that already holds runs
// no package manager at all and a second run reports no changes. Whatever
// is missing is installed or removed in one transaction: one apt-get, dnf
// or apk invocation for all of a state's packages. Test mode runs only the
// queries (not even the index refresh, which writes the package lists).
//
// The package managers act on the host's package database; Env.Root is
// not applied to them (it is a test device for file paths, and a package
// database under another root is a chroot's business).
package pkg

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// Register adds pkg.installed, pkg.removed and pkg.latest to t.
func Register(t *mod.Table) {
	t.Add("pkg.installed", mod.Entry{Fn: installed, Args: []string{"pkgs", "version", "refresh"}})
	t.Add("pkg.removed", mod.Entry{Fn: removed, Args: []string{"pkgs"}})
	t.Add("pkg.latest", mod.Entry{Fn: latest, Args: []string{"pkgs", "refresh"}})
}

// spec is one package of a declaration; version "" is any version.
type spec struct{ name, version string }

// specs reads Salt's name / pkgs / version: pkgs (a list of names, or of
// single-key maps name: version) replaces name when given.
func specs(name string, args mod.Args, withVersion bool) ([]spec, error) {
	var out []spec
	if raw, ok := args["pkgs"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			if ss, ok2 := raw.([]string); ok2 {
				for _, s := range ss {
					list = append(list, s)
				}
			} else {
				return nil, fmt.Errorf("argument pkgs: want a list of package names, got %T", raw)
			}
		}
		for i, e := range list {
			switch x := e.(type) {
			case string:
				out = append(out, spec{name: x})
			case map[string]any:
				if len(x) != 1 {
					return nil, fmt.Errorf("argument pkgs[%d]: want one name: version pair, got %d keys", i, len(x))
				}
				for n, v := range x {
					if !withVersion && v != nil {
						return nil, fmt.Errorf("argument pkgs[%d]: %s takes no version here", i, n)
					}
					s := spec{name: n}
					if v != nil {
						s.version = fmt.Sprint(v)
					}
					out = append(out, s)
				}
			default:
				return nil, fmt.Errorf("argument pkgs[%d]: want a name or a name: version map, got %T", i, e)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("argument pkgs: empty list")
		}
	} else {
		s := spec{name: name}
		if withVersion {
			v, _, err := args.String("version")
			if err != nil {
				return nil, err
			}
			s.version = v
		}
		out = []spec{s}
	}
	seen := map[string]bool{}
	for _, s := range out {
		if s.name == "" || strings.ContainsAny(s.name, " \t\n") || strings.HasPrefix(s.name, "-") {
			return nil, fmt.Errorf("package name %q: not a package name", s.name)
		}
		if seen[s.name] {
			return nil, fmt.Errorf("package %s named twice", s.name)
		}
		seen[s.name] = true
	}
	return out, nil
}

func names(ss []spec) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.name
	}
	return out
}

// request is one pkg state's parsed arguments and backend.
type request struct {
	env     *mod.Env
	b       backend
	ss      []spec
	lbl     string // the declaration's name, as Salt names the result (also with pkgs)
	refresh bool
}

// prepare parses a state's arguments and chooses its backend.
func prepare(env *mod.Env, name string, args mod.Args, withVersion bool) (request, error) {
	c := request{env: env, lbl: name}
	var err error
	if c.ss, err = specs(name, args, withVersion); err != nil {
		return c, err
	}
	if c.refresh, _, err = args.Bool("refresh"); err != nil {
		return c, err
	}
	c.b, err = backendFor(env)
	return c, err
}

func installed(env *mod.Env, name string, args mod.Args) Result {
	c, err := prepare(env, name, args, true)
	if err != nil {
		return mod.Fail(c.lbl, "%v", err)
	}
	return c.ensure("All specified packages are already installed: ")
}

func latest(env *mod.Env, name string, args mod.Args) Result {
	c, err := prepare(env, name, args, false)
	if err != nil {
		return mod.Fail(c.lbl, "%v", err)
	}
	// The index refresh writes the package lists: not in test mode.
	if c.refresh && !env.Test {
		if err := c.b.refresh(env); err != nil {
			return mod.Fail(c.lbl, "refreshing the package index: %v", err)
		}
	}
	c.refresh = false
	cand, err := c.b.candidates(env, names(c.ss))
	if err != nil {
		return mod.Fail(c.lbl, "%v", err)
	}
	var none []string
	for i := range c.ss {
		v := cand[c.ss[i].name]
		if v == "" {
			none = append(none, c.ss[i].name)
		}
		c.ss[i].version = v
	}
	if len(none) > 0 {
		return mod.Fail(c.lbl, "no installation candidate for %s in the configured repositories", strings.Join(none, ", "))
	}
	return c.ensure("All packages are at their latest version: ")
}

func removed(env *mod.Env, name string, args mod.Args) Result {
	c, err := prepare(env, name, args, false)
	if err != nil {
		return mod.Fail(c.lbl, "%v", err)
	}
	return c.transact(
		func(_ spec, v string, ok bool) bool { return !ok },
		func(spec) string { return "" },
		func(todo []spec) error { return c.b.remove(env, names(todo)) },
		"None of the specified packages are installed: ", "removed")
}

// Result is mod.Result, named here for the functions' signatures.
type Result = mod.Result

// ensure installs every spec that is not installed at its version.
func (c request) ensure(already string) Result {
	return c.transact(
		func(s spec, v string, ok bool) bool { return ok && (s.version == "" || v == s.version) },
		func(s spec) string {
			if s.version == "" {
				return "(any version)"
			}
			return s.version
		},
		func(todo []spec) error {
			if c.refresh {
				if err := c.b.refresh(c.env); err != nil {
					return fmt.Errorf("refreshing the package index: %w", err)
				}
			}
			return c.b.install(c.env, todo)
		},
		already, "installed/updated")
}

// transact reads what is installed, and makes true, in one transaction
// (act), every spec for which holds (given the installed version and
// whether there is one) is false; wouldBe is a spec's new version as test
// mode reports it. The database is read again after act: the changes are
// what happened, and a spec that still does not hold fails the state.
func (c request) transact(holds func(s spec, v string, ok bool) bool, wouldBe func(spec) string,
	act func(todo []spec) error, already, verb string) Result {
	have, err := c.b.installed(c.env, names(c.ss))
	if err != nil {
		return mod.Fail(c.lbl, "%v", err)
	}
	var todo []spec
	for _, s := range c.ss {
		if v, ok := have[s.name]; !holds(s, v, ok) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return Result{Name: c.lbl, Status: mod.OK, Comment: already + strings.Join(names(c.ss), ", ")}
	}
	if c.env.Test {
		ch := map[string]any{}
		for _, s := range todo {
			ch[s.name] = map[string]any{"old": have[s.name], "new": wouldBe(s)}
		}
		return Result{Name: c.lbl, Status: mod.WouldChange, Changes: ch,
			Comment: fmt.Sprintf("The following packages would be %s: %s", verb, strings.Join(names(todo), ", "))}
	}
	aerr := act(todo)
	after, err := c.b.installed(c.env, names(c.ss))
	if err != nil {
		return mod.Fail(c.lbl, "after the transaction: %v", err)
	}
	ch := changes(have, after)
	var bad []string
	for _, s := range todo {
		if v, ok := after[s.name]; !holds(s, v, ok) {
			bad = append(bad, s.name)
		}
	}
	if aerr != nil || len(bad) > 0 {
		r := mod.Fail(c.lbl, "not %s as declared: %s", verb, strings.Join(bad, ", "))
		if aerr != nil {
			r.Comment += ": " + aerr.Error()
		}
		r.Changes = ch
		return r
	}
	return Result{Name: c.lbl, Status: mod.OK, Changes: ch,
		Comment: fmt.Sprintf("The following packages were %s: %s", verb, strings.Join(names(todo), ", "))}
}

// changes is Salt's package diff: {name: {old, new}} for every package
// whose installed version differs ("" is not installed).
func changes(before, after map[string]string) map[string]any {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	ch := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if before[k] != after[k] {
			ch[k] = map[string]any{"old": before[k], "new": after[k]}
		}
	}
	return ch
}

// sortedSpecs is for error messages and argv order: stable across runs.
func sortedSpecs(ss []spec) []spec {
	out := slices.Clone(ss)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
