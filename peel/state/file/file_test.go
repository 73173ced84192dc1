package file_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/zester-io/zester/peel/state/file"
	"github.com/zester-io/zester/peel/state/mod"
)

func call(t *testing.T, env *mod.Env, fn, name string, args mod.Args) mod.Result {
	t.Helper()
	tb := mod.NewTable()
	file.Register(tb)
	e, ok := tb.Lookup(fn)
	if !ok {
		t.Fatalf("no %s", fn)
	}
	if err := args.Unknown(e.Args); err != nil {
		t.Fatal(err)
	}
	return e.Fn(env, name, args)
}

func newEnv(t *testing.T) *mod.Env {
	return &mod.Env{Ctx: context.Background(), Root: t.TempDir(), Tree: fstest.MapFS{
		"web/files/app.conf": {Data: []byte("port = 80\n")},
	}}
}

func write(t *testing.T, env *mod.Env, p, data string) {
	t.Helper()
	full := env.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, env *mod.Env, p string) string {
	b, err := os.ReadFile(env.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each row runs a function twice: the first call must give want (status
// and a part of the comment or diff), the second no changes.
func TestFunctions_ChangeThenHold(t *testing.T) {
	cases := []struct {
		name, fn, path string
		setup          func(t *testing.T, env *mod.Env)
		args           mod.Args
		diffHas        []string
		check          func(t *testing.T, env *mod.Env)
	}{
		{name: "managed: a diff of the change", fn: "file.managed", path: "/etc/app.conf",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/app.conf", "port = 8080\nname = x\n") },
			args:  mod.Args{"source": "salt://web/files/app.conf"}, diffHas: []string{"--- /etc/app.conf", "-port = 8080", "-name = x", "+port = 80"},
			check: func(t *testing.T, env *mod.Env) {
				if got := read(t, env, "/etc/app.conf"); got != "port = 80\n" {
					t.Errorf("content %q", got)
				}
			}},
		{name: "managed: first of several sources that exists", fn: "file.managed", path: "/etc/app.conf",
			setup: func(t *testing.T, env *mod.Env) { os.MkdirAll(env.Path("/etc"), 0o755) },
			args:  mod.Args{"source": []any{"salt://nope.conf", "zester://web/files/app.conf"}, "source_hash": "sha256=0f6c3f7a1c4d3ba3e0b7f21e4ba7c6a6b1e3b6e0d3b1f2bd3c0c4a1f7e8d9c0a", "skip_verify": true}, diffHas: []string{"New file"}},
		{name: "managed: mode only", fn: "file.managed", path: "/etc/secret",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/secret", "s\n") },
			args:  mod.Args{"contents": "s", "mode": "0600"},
			check: func(t *testing.T, env *mod.Env) {
				if st, _ := os.Stat(env.Path("/etc/secret")); st.Mode().Perm() != 0o600 {
					t.Errorf("mode %v", st.Mode())
				}
			}},
		{name: "managed: backup keeps the previous file", fn: "file.managed", path: "/etc/app.conf",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/app.conf", "old\n") },
			args:  mod.Args{"contents": "new", "backup": "minion"}, diffHas: []string{"-old", "+new"},
			check: func(t *testing.T, env *mod.Env) {
				m, _ := filepath.Glob(env.Path(file.BackupDir + "/etc/app.conf_*"))
				if len(m) != 1 {
					t.Fatalf("backups %v", m)
				}
				if b, _ := os.ReadFile(m[0]); string(b) != "old\n" {
					t.Errorf("backup holds %q", b)
				}
			}},
		{name: "directory with makedirs", fn: "file.directory", path: "/srv/a/b",
			args: mod.Args{"makedirs": true, "mode": int64(750)},
			check: func(t *testing.T, env *mod.Env) {
				if st, _ := os.Stat(env.Path("/srv/a/b")); st == nil || st.Mode().Perm() != 0o750 {
					t.Errorf("dir %v", st)
				}
			}},
		{name: "symlink retargeted", fn: "file.symlink", path: "/srv/current",
			setup: func(t *testing.T, env *mod.Env) {
				os.MkdirAll(env.Path("/srv"), 0o755)
				os.Symlink("/srv/v1", env.Path("/srv/current"))
			},
			args: mod.Args{"target": "/srv/v2"},
			check: func(t *testing.T, env *mod.Env) {
				if l, _ := os.Readlink(env.Path("/srv/current")); l != "/srv/v2" {
					t.Errorf("link -> %q", l)
				}
			}},
		{name: "symlink force replaces a file", fn: "file.symlink", path: "/srv/current",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/srv/current", "x") },
			args:  mod.Args{"target": "/srv/v2", "force": true}},
		{name: "line ensure after", fn: "file.line", path: "/etc/hosts",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n") },
			args:  mod.Args{"content": "10.0.0.1 db", "mode": "ensure", "after": "^127\\."}, diffHas: []string{"+10.0.0.1 db"},
			check: func(t *testing.T, env *mod.Env) {
				if got := read(t, env, "/etc/hosts"); got != "127.0.0.1 localhost\n10.0.0.1 db\n::1 localhost\n" {
					t.Errorf("hosts %q", got)
				}
			}},
		{name: "line replace", fn: "file.line", path: "/etc/ssh/sshd_config",
			setup: func(t *testing.T, env *mod.Env) {
				write(t, env, "/etc/ssh/sshd_config", "Port 22\nPermitRootLogin yes\n")
			},
			args: mod.Args{"content": "PermitRootLogin no", "match": "^PermitRootLogin", "mode": "replace"}, diffHas: []string{"-PermitRootLogin yes", "+PermitRootLogin no"}},
		{name: "line delete", fn: "file.line", path: "/etc/x",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/x", "a\nb\nc\n") },
			args:  mod.Args{"match": "^b$", "mode": "delete"}, diffHas: []string{"-b"}},
		{name: "replace with a Python backreference", fn: "file.replace", path: "/etc/x",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/x", "listen 80;\nlisten 81;\n") },
			args:  mod.Args{"pattern": `^listen (\d+);$`, "repl": `listen 127.0.0.1:\1; # $kept`},
			check: func(t *testing.T, env *mod.Env) {
				if got := read(t, env, "/etc/x"); got != "listen 127.0.0.1:80; # $kept\nlisten 127.0.0.1:81; # $kept\n" {
					t.Errorf("content %q", got)
				}
			}},
		{name: "replace appends when not found", fn: "file.replace", path: "/etc/x",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/etc/x", "a") },
			args:  mod.Args{"pattern": "^b=.*$", "repl": "b=1", "append_if_not_found": true},
			check: func(t *testing.T, env *mod.Env) {
				if got := read(t, env, "/etc/x"); got != "a\nb=1\n" {
					t.Errorf("content %q", got)
				}
			}},
		{name: "absent", fn: "file.absent", path: "/var/tmp/junk",
			setup: func(t *testing.T, env *mod.Env) { write(t, env, "/var/tmp/junk/a", "x") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t)
			if c.setup != nil {
				c.setup(t, env)
			}
			env.Test = true
			if r := call(t, env, c.fn, c.path, c.args); r.Status != mod.WouldChange || !r.Changed() {
				t.Fatalf("test mode: %v %q %v", r.Status, r.Comment, r.Changes)
			}
			env.Test = false
			r := call(t, env, c.fn, c.path, c.args)
			if r.Status != mod.OK || !r.Changed() {
				t.Fatalf("first call: %v %q %v", r.Status, r.Comment, r.Changes)
			}
			d, _ := r.Changes["diff"].(string)
			for _, w := range c.diffHas {
				if !strings.Contains(d, w) {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}
			if c.check != nil {
				c.check(t, env)
			}
			if r := call(t, env, c.fn, c.path, c.args); r.Status != mod.OK || r.Changed() {
				t.Errorf("second call: %v %q %v", r.Status, r.Comment, r.Changes)
			}
		})
	}
}

func TestFunctions_Refuse(t *testing.T) {
	cases := []struct {
		name, fn, path string
		args           mod.Args
		want           string
	}{
		{"relative path", "file.managed", "etc/x", mod.Args{"contents": "x"}, "not an absolute path"},
		{"no parent without makedirs", "file.managed", "/no/such/dir/x", mod.Args{"contents": "x"}, "parent directory /no/such/dir is not present"},
		{"bad mode", "file.managed", "/x", mod.Args{"contents": "x", "mode": "0999"}, `mode "0999" is not an octal`},
		{"source outside the tree", "file.managed", "/x", mod.Args{"source": "http://example.com/x"}, "want salt://PATH"},
		{"missing source", "file.managed", "/x", mod.Args{"source": "salt://nope"}, "none of salt://nope exists"},
		{"hash mismatch", "file.managed", "/x", mod.Args{"source": "salt://web/files/app.conf", "source_hash": "sha256=00"}, "source_hash mismatch"},
		{"contents and source", "file.managed", "/x", mod.Args{"source": "salt://web/files/app.conf", "contents": "x"}, "exclusive"},
		{"no such user", "file.managed", "/x", mod.Args{"contents": "x", "user": "no-such-user-zz"}, "user no-such-user-zz does not exist"},
		{"symlink over a file", "file.symlink", "/etc", mod.Args{"target": "/x"}, "is not a symlink"},
		{"replace a missing file", "file.replace", "/nope", mod.Args{"pattern": "a", "repl": "b"}, "does not exist"},
		{"absent /", "file.absent", "/", nil, "refusing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t)
			os.MkdirAll(env.Path("/etc"), 0o755)
			r := call(t, env, c.fn, c.path, c.args)
			if r.Status != mod.Failed || !strings.Contains(r.Comment, c.want) {
				t.Errorf("%v %q, want failed with %q", r.Status, r.Comment, c.want)
			}
		})
	}
}

// Ownership needs root: as root, user and group are set, reported, and
// hold on the second call; a rewrite keeps an owner nobody asked to change.
func TestManaged_OwnerAndGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	env := newEnv(t)
	write(t, env, "/etc/app.conf", "x\n")
	args := mod.Args{"contents": "x", "user": "daemon", "group": "daemon"}
	r := call(t, env, "file.managed", "/etc/app.conf", args)
	if r.Status != mod.OK || r.Changes["user"] != "daemon" || r.Changes["group"] != "daemon" || r.Changes["diff"] != nil {
		t.Fatalf("%v %q %v", r.Status, r.Comment, r.Changes)
	}
	owner := func() (uint32, uint32) {
		st, _ := os.Stat(env.Path("/etc/app.conf"))
		sys := st.Sys().(*syscall.Stat_t)
		return sys.Uid, sys.Gid
	}
	if u, g := owner(); u != 1 || g != 1 {
		t.Errorf("owner %d:%d, want 1:1 (daemon)", u, g)
	}
	if r := call(t, env, "file.managed", "/etc/app.conf", args); r.Changed() {
		t.Errorf("second call: %v", r.Changes)
	}
	// New content, no owner asked: the file stays daemon's.
	if r := call(t, env, "file.managed", "/etc/app.conf", mod.Args{"contents": "y"}); r.Status != mod.OK {
		t.Fatal(r.Comment)
	}
	if u, g := owner(); u != 1 || g != 1 {
		t.Errorf("rewrite changed the owner to %d:%d", u, g)
	}
}
