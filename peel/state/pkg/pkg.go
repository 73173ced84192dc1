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

// label is the state's name for its result: the name, or the pkgs list.
func label(name string, ss []spec) string {
	if len(ss) == 1 && ss[0].name == name {
		return name
	}
	return strings.Join(names(ss), ", ")
}

func installed(env *mod.Env, name string, args mod.Args) Result {
	ss, err := specs(name, args, true)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	refresh, _, err := args.Bool("refresh")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	b, err := backendFor(env)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	return ensure(env, b, label(name, ss), ss, refresh, "installed")
}

func latest(env *mod.Env, name string, args mod.Args) Result {
	ss, err := specs(name, args, false)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	refresh, _, err := args.Bool("refresh")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	b, err := backendFor(env)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	lbl := label(name, ss)
	// The index refresh writes the package lists: not in test mode.
	if refresh && !env.Test {
		if err := b.refresh(env); err != nil {
			return mod.Fail(lbl, "refreshing the package index: %v", err)
		}
	}
	cand, err := b.candidates(env, names(ss))
	if err != nil {
		return mod.Fail(lbl, "%v", err)
	}
	var none []string
	for i := range ss {
		v, ok := cand[ss[i].name]
		if !ok || v == "" {
			none = append(none, ss[i].name)
		}
		ss[i].version = v
	}
	if len(none) > 0 {
		return mod.Fail(lbl, "no installation candidate for %s in the configured repositories", strings.Join(none, ", "))
	}
	return ensure(env, b, lbl, ss, false, "latest")
}

// Result is mod.Result, named here for the functions' signatures.
type Result = mod.Result

// ensure installs every spec that is not installed at its version, in one
// transaction, and reports the versions that changed.
func ensure(env *mod.Env, b backend, lbl string, ss []spec, refresh bool, what string) Result {
	have, err := b.installed(env, names(ss))
	if err != nil {
		return mod.Fail(lbl, "%v", err)
	}
	var todo []spec
	for _, s := range ss {
		v, ok := have[s.name]
		if !ok || (s.version != "" && v != s.version) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		if what == "latest" {
			return Result{Name: lbl, Status: mod.OK, Comment: "All packages are at their latest version: " + strings.Join(names(ss), ", ")}
		}
		return Result{Name: lbl, Status: mod.OK, Comment: "All specified packages are already installed: " + strings.Join(names(ss), ", ")}
	}
	if env.Test {
		ch := map[string]any{}
		for _, s := range todo {
			nv := s.version
			if nv == "" {
				nv = "(any version)"
			}
			ch[s.name] = map[string]any{"old": have[s.name], "new": nv}
		}
		return Result{Name: lbl, Status: mod.WouldChange, Changes: ch,
			Comment: "The following packages would be installed/updated: " + strings.Join(names(todo), ", ")}
	}
	if refresh {
		if err := b.refresh(env); err != nil {
			return mod.Fail(lbl, "refreshing the package index: %v", err)
		}
	}
	ierr := b.install(env, todo)
	after, err := b.installed(env, names(ss))
	if err != nil {
		return mod.Fail(lbl, "after installing: %v", err)
	}
	ch := changes(have, after)
	var bad []string
	for _, s := range todo {
		if v, ok := after[s.name]; !ok || (s.version != "" && v != s.version) {
			bad = append(bad, s.name)
		}
	}
	if ierr != nil || len(bad) > 0 {
		r := mod.Fail(lbl, "not installed as declared: %s", strings.Join(bad, ", "))
		if ierr != nil {
			r.Comment += ": " + ierr.Error()
		}
		r.Changes = ch
		return r
	}
	return Result{Name: lbl, Status: mod.OK, Changes: ch,
		Comment: "The following packages were installed/updated: " + strings.Join(names(todo), ", ")}
}

func removed(env *mod.Env, name string, args mod.Args) Result {
	ss, err := specs(name, args, false)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	lbl := label(name, ss)
	b, err := backendFor(env)
	if err != nil {
		return mod.Fail(lbl, "%v", err)
	}
	have, err := b.installed(env, names(ss))
	if err != nil {
		return mod.Fail(lbl, "%v", err)
	}
	var todo []string
	for _, s := range ss {
		if _, ok := have[s.name]; ok {
			todo = append(todo, s.name)
		}
	}
	if len(todo) == 0 {
		return Result{Name: lbl, Status: mod.OK, Comment: "None of the specified packages are installed: " + strings.Join(names(ss), ", ")}
	}
	if env.Test {
		ch := map[string]any{}
		for _, n := range todo {
			ch[n] = map[string]any{"old": have[n], "new": ""}
		}
		return Result{Name: lbl, Status: mod.WouldChange, Changes: ch,
			Comment: "The following packages would be removed: " + strings.Join(todo, ", ")}
	}
	rerr := b.remove(env, todo)
	after, err := b.installed(env, names(ss))
	if err != nil {
		return mod.Fail(lbl, "after removing: %v", err)
	}
	ch := changes(have, after)
	var left []string
	for _, n := range todo {
		if _, ok := after[n]; ok {
			left = append(left, n)
		}
	}
	if rerr != nil || len(left) > 0 {
		r := mod.Fail(lbl, "still installed: %s", strings.Join(left, ", "))
		if rerr != nil {
			r.Comment += ": " + rerr.Error()
		}
		r.Changes = ch
		return r
	}
	return Result{Name: lbl, Status: mod.OK, Changes: ch,
		Comment: "The following packages were removed: " + strings.Join(todo, ", ")}
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
