package pkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zester-io/zester/peel/state/mod"
	"github.com/zester-io/zester/peel/state/modtest"
)

// fakeHost puts the pkgtool stand-in first on PATH under every package
// tool's name, with repositories holding repo and a database holding
// have, and returns its state directory.
func fakeHost(t *testing.T, repo, have map[string]string) string {
	t.Helper()
	state := modtest.Tool(t, "PKGSTATE", "testdata/pkgtool.sh", "dpkg-query", "apt-cache", "apt-get", "rpm", "dnf", "apk")
	for sub, m := range map[string]map[string]string{"repo": repo, "installed": have} {
		os.MkdirAll(filepath.Join(state, sub), 0o755)
		for n, v := range m {
			if err := os.WriteFile(filepath.Join(state, sub, n), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return state
}

func dbVersions(t *testing.T, state string) map[string]string {
	t.Helper()
	m := map[string]string{}
	ents, _ := os.ReadDir(filepath.Join(state, "installed"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(state, "installed", e.Name()))
		m[e.Name()] = string(b)
	}
	return m
}

func call(t *testing.T, env *mod.Env, fn, name string, args mod.Args) mod.Result {
	t.Helper()
	e := modtest.Lookup(t, Register, fn)
	if err := args.Unknown(e.Args); err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	return e.Fn(env, name, args)
}

// TestPackagesEachBackend drives pkg.installed, pkg.latest and pkg.removed
// through apt, dnf and apk (chosen from the facts) against stand-in
// package tools: test mode runs only queries, the missing packages go in
// one transaction, the second run changes nothing and runs no package
// manager, and the changes are Salt's {name: {old, new}}.
func TestPackagesEachBackend(t *testing.T) {
	for _, tc := range []struct {
		os      map[string]any
		manager string // the program that changes the database
		v       func(string) string
	}{
		{map[string]any{"id": "ubuntu", "id_like": []any{"debian"}}, "apt-get", func(v string) string { return v + "-1" }},
		{map[string]any{"id": "rocky", "id_like": []any{"rhel", "centos", "fedora"}}, "dnf", func(v string) string { return v + "-1.el9" }},
		{map[string]any{"id": "alpine", "id_like": []any{}}, "apk", func(v string) string { return v + "-r0" }},
	} {
		t.Run(tc.manager, func(t *testing.T) {
			v := tc.v
			state := fakeHost(t, map[string]string{"tree": v("2.1"), "jq": v("1.6"), "curl": v("8.0")}, map[string]string{"curl": v("7.0")})
			log := filepath.Join(state, "log")
			env := modtest.Env(t)
			env.Facts = map[string]any{"os": tc.os}
			pkgs := mod.Args{"pkgs": []any{"tree", "jq", "curl"}}

			env.Test = true
			r := call(t, env, "pkg.installed", "tools", mod.Args{"pkgs": pkgs["pkgs"], "refresh": true})
			if r.Status != mod.WouldChange || !strings.Contains(r.Comment, "jq, tree") && !strings.Contains(r.Comment, "tree, jq") {
				t.Fatalf("test mode: %+v", r)
			}
			if _, ok := r.Changes["curl"]; ok || len(r.Changes) != 2 {
				t.Fatalf("test mode changes %v: want tree and jq only (curl is installed, any version)", r.Changes)
			}
			if got := modtest.Calls(t, log, tc.manager); tc.manager != "apk" && len(got) != 0 || dbVersions(t, state)["tree"] != "" {
				t.Fatalf("test mode ran %v / changed the database %v", got, dbVersions(t, state))
			}
			if _, err := os.Stat(filepath.Join(state, "refreshed")); !os.IsNotExist(err) {
				t.Fatalf("test mode refreshed the package index (%v)", err)
			}
			calls := len(modtest.Calls(t, log, tc.manager))

			env.Test = false
			r = call(t, env, "pkg.installed", "tools", pkgs)
			want := map[string]any{"tree": map[string]any{"old": "", "new": v("2.1")}, "jq": map[string]any{"old": "", "new": v("1.6")}}
			if r.Status != mod.OK || !reflect.DeepEqual(r.Changes, want) {
				t.Fatalf("install: %+v\nwant changes %v", r, want)
			}
			var installs []string
			for _, c := range modtest.Calls(t, log, tc.manager)[calls:] {
				if strings.Contains(c, " install ") || strings.Contains(c, " add ") {
					installs = append(installs, c)
				}
			}
			if len(installs) != 1 || !strings.Contains(installs[0], "jq") || !strings.Contains(installs[0], "tree") || strings.Contains(installs[0], "curl") {
				t.Fatalf("want one transaction for jq and tree, got %q", installs)
			}

			before := len(modtest.Calls(t, log, tc.manager))
			if r := call(t, env, "pkg.installed", "tools", pkgs); r.Status != mod.OK || r.Changed() {
				t.Fatalf("second run: %+v", r)
			}
			if got := modtest.Calls(t, log, tc.manager)[before:]; tc.manager != "apk" && len(got) != 0 {
				t.Fatalf("second run ran the package manager: %q", got)
			}

			// latest upgrades curl from 7.0 to the candidate, once.
			r = call(t, env, "pkg.latest", "curl", mod.Args{})
			if r.Status != mod.OK || !reflect.DeepEqual(r.Changes, map[string]any{"curl": map[string]any{"old": v("7.0"), "new": v("8.0")}}) {
				t.Fatalf("latest: %+v", r)
			}
			if r := call(t, env, "pkg.latest", "curl", mod.Args{}); r.Changed() || r.Status != mod.OK {
				t.Fatalf("latest again: %+v", r)
			}

			// an exact version is installed as asked.
			r = call(t, env, "pkg.installed", "jq", mod.Args{"version": v("1.5")})
			if r.Status != mod.OK || dbVersions(t, state)["jq"] != v("1.5") {
				t.Fatalf("version: %+v db %v", r, dbVersions(t, state))
			}

			r = call(t, env, "pkg.removed", "x", mod.Args{"pkgs": []any{"tree", "jq", "nothere"}})
			if r.Status != mod.OK || len(r.Changes) != 2 || r.Changes["tree"].(map[string]any)["new"] != "" {
				t.Fatalf("removed: %+v", r)
			}
			if db := dbVersions(t, state); !reflect.DeepEqual(db, map[string]string{"curl": v("8.0")}) {
				t.Fatalf("after remove the database holds %v", db)
			}
			if r := call(t, env, "pkg.removed", "x", mod.Args{"pkgs": []any{"tree", "jq", "nothere"}}); r.Changed() || r.Status != mod.OK {
				t.Fatalf("removed again: %+v", r)
			}

			// a package the repositories lack fails the state and names it;
			// the transaction installs nothing.
			r = call(t, env, "pkg.installed", "x", mod.Args{"pkgs": []any{"tree", "ghost"}, "refresh": true})
			if r.Status != mod.Failed || !strings.Contains(r.Comment, "ghost") || r.Changed() {
				t.Fatalf("missing package: %+v", r)
			}
			if _, err := os.Stat(filepath.Join(state, "refreshed")); err != nil {
				t.Fatalf("refresh: true did not refresh the index: %v", err)
			}
			if r := call(t, env, "pkg.latest", "ghost", mod.Args{}); r.Status != mod.Failed || !strings.Contains(r.Comment, "ghost") {
				t.Fatalf("latest of a missing package: %+v", r)
			}
		})
	}
}

func TestPackageArgs(t *testing.T) {
	env := modtest.Env(t)
	for _, tc := range []struct {
		facts map[string]any
		args  mod.Args
		want  string
	}{
		{map[string]any{"os": map[string]any{"id": "plan9"}}, mod.Args{}, `no package backend for os "plan9"`},
		{map[string]any{}, mod.Args{}, "no os.id fact"},
		{nil, mod.Args{"pkgs": "vim"}, "argument pkgs: want a list"},
		{nil, mod.Args{"pkgs": []any{"a", "a"}}, "package a named twice"},
		{nil, mod.Args{"pkgs": []any{"-y"}}, `package name "-y"`},
		{nil, mod.Args{"pkgs": []any{map[string]any{"a": 1, "b": 2}}}, "pkgs[0]: want one name: version pair"},
		{nil, mod.Args{"pkgs": []any{}}, "argument pkgs: empty list"},
		{nil, mod.Args{"refresh": "maybe"}, "argument refresh"},
	} {
		e := *env
		if tc.facts != nil {
			e.Facts = tc.facts
		}
		if r := installed(&e, "vim", tc.args); r.Status != mod.Failed || !strings.Contains(r.Comment, tc.want) {
			t.Errorf("%v %v: %+v, want a failure naming %q", tc.facts, tc.args, r, tc.want)
		}
	}
	got, err := specs("x", mod.Args{"pkgs": []any{"a", map[string]any{"b": 1.2}, map[string]any{"c": nil}}}, true)
	if want := []spec{{"a", ""}, {"b", "1.2"}, {"c", ""}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("specs: %v %v, want %v", got, err, want)
	}
	for in, want := range map[string][2]string{"musl-1.2.4-r2": {"musl", "1.2.4-r2"}, "py3-foo-bar-0.1_git2-r10": {"py3-foo-bar", "0.1_git2-r10"}, "noversion": {}} {
		n, v, _ := apkSplit(in)
		if [2]string{n, v} != want {
			t.Errorf("apkSplit(%q) = %q %q, want %q", in, n, v, want)
		}
	}
}

// TestRealDebianPackage installs and removes the real Debian package
// "hello" with apt-get and dpkg on this host. It changes the host, so it
// runs only with ZESTER_TEST_PKG=1, as root, on a Debian-like system.
func TestRealDebianPackage(t *testing.T) {
	if os.Getenv("ZESTER_TEST_PKG") != "1" {
		t.Skip("set ZESTER_TEST_PKG=1 to install and remove the Debian package hello on this host with apt-get")
	}
	if os.Geteuid() != 0 {
		t.Skip("ZESTER_TEST_PKG=1 needs root: apt-get install writes the host's package database")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no apt-get on this host")
	}
	env := modtest.Env(t)
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "hello").Output(); strings.HasPrefix(string(out), "ii") {
		t.Skip("hello is installed already; this test would remove it")
	}
	r := call(t, env, "pkg.installed", "hello", mod.Args{})
	ch, _ := r.Changes["hello"].(map[string]any)
	if r.Status != mod.OK || ch == nil || ch["old"] != "" || ch["new"] == "" {
		t.Fatalf("install hello: %+v", r)
	}
	t.Cleanup(func() { exec.Command("apt-get", "-y", "-q", "remove", "hello").Run() })
	if _, err := exec.LookPath("hello"); err != nil {
		t.Fatalf("hello installed but not on PATH: %v", err)
	}
	if r := call(t, env, "pkg.installed", "hello", mod.Args{}); r.Status != mod.OK || r.Changed() {
		t.Fatalf("second install: %+v", r)
	}
	env.Test = true
	if r := call(t, env, "pkg.removed", "hello", mod.Args{}); r.Status != mod.WouldChange {
		t.Fatalf("test-mode remove: %+v", r)
	}
	env.Test = false
	if r := call(t, env, "pkg.removed", "hello", mod.Args{}); r.Status != mod.OK || r.Changes["hello"].(map[string]any)["new"] != "" {
		t.Fatalf("remove hello: %+v", r)
	}
	if r := call(t, env, "pkg.removed", "hello", mod.Args{}); r.Status != mod.OK || r.Changed() {
		t.Fatalf("second remove: %+v", r)
	}
}
