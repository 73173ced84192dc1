package user

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

// shadowRoot is an Env whose Root is a temporary /etc with root, a few
// groups and the host's login.defs. The real shadow-utils edit it through
// --prefix; they need root (they lock and rewrite the files), so the test
// skips as another user.
func shadowRoot(t *testing.T) *mod.Env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("shadow-utils (useradd --prefix) need root to write the temporary /etc/passwd")
	}
	for _, p := range []string{"useradd", "usermod", "userdel", "groupadd", "groupmod"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed", p)
		}
	}
	env := modtest.Env(t)
	etc := filepath.Join(env.Root, "etc")
	os.MkdirAll(etc, 0o755)
	os.MkdirAll(filepath.Join(env.Root, "home"), 0o755)
	files := map[string]string{
		"passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"shadow":  "root:*:19000:0:99999:7:::\n",
		"group":   "root:x:0:\nwheel:x:10:\ndocker:x:999:\nusers:x:100:\n",
		"gshadow": "root:*::\nwheel:*::\ndocker:!::\nusers:*::\n",
	}
	if b, err := os.ReadFile("/etc/login.defs"); err == nil {
		files["login.defs"] = string(b)
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(etc, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// snapshot is every file under root with its content, to show test mode
// changed nothing.
func snapshot(t *testing.T, root string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b, _ := os.ReadFile(p)
			m[p+":"+fi.Mode().String()] = b
		}
		return nil
	})
	return m
}

func fn(t *testing.T, name string) mod.Func {
	t.Helper()
	e := modtest.Lookup(t, Register, name)
	return func(env *mod.Env, n string, a mod.Args) mod.Result {
		if err := a.Unknown(e.Args); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return e.Fn(env, n, a)
	}
}

func line(t *testing.T, env *mod.Env, file, prefix string) string {
	t.Helper()
	b, _ := os.ReadFile(env.Path("/etc/" + file))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix+":") {
			return l
		}
	}
	return ""
}

// TestUserLifecycle runs the real shadow-utils on a temporary root: test
// mode writes nothing (byte for byte), user.present creates the user with
// its home and groups, a second run changes nothing, a changed argument
// changes only that, and user.absent with purge removes user and home.
func TestUserLifecycle(t *testing.T) {
	env := shadowRoot(t)
	present, absent := fn(t, "user.present"), fn(t, "user.absent")
	args := mod.Args{"uid": int64(2001), "groups": []any{"wheel", "docker"}, "home": "/home/alice", "shell": "/bin/sh", "fullname": "Alice A"}

	before := snapshot(t, env.Root)
	env.Test = true
	if r := present(env, "alice", args); r.Status != mod.WouldChange || !r.Changed() {
		t.Fatalf("test mode: %+v", r)
	}
	if after := snapshot(t, env.Root); !reflect.DeepEqual(before, after) {
		t.Fatal("test mode changed the root")
	}
	env.Test = false
	r := present(env, "alice", args)
	if r.Status != mod.OK || r.Changes["uid"] != 2001 || !reflect.DeepEqual(r.Changes["groups"], []string{"wheel", "docker"}) {
		t.Fatalf("create: %+v", r)
	}
	if l := line(t, env, "passwd", "alice"); !strings.HasPrefix(l, "alice:x:2001:") || !strings.HasSuffix(l, ":Alice A:/home/alice:/bin/sh") {
		t.Fatalf("passwd line %q", l)
	}
	if fi, err := os.Stat(env.Path("/home/alice")); err != nil || !fi.IsDir() {
		t.Fatalf("home not created: %v", err)
	}
	if l := line(t, env, "group", "docker"); l != "docker:x:999:alice" {
		t.Fatalf("group line %q", l)
	}
	if r := present(env, "alice", args); r.Status != mod.OK || r.Changed() {
		t.Fatalf("second run: %+v", r)
	}

	// Only the shell and the groups differ: only they change; the
	// group list is exact (docker is left).
	args["shell"], args["groups"] = "/bin/bash", []any{"wheel", "users"}
	snap := snapshot(t, env.Root)
	env.Test = true
	if r := present(env, "alice", args); r.Status != mod.WouldChange || !reflect.DeepEqual(r.Changes, map[string]any{"shell": "/bin/bash", "groups": []string{"users", "wheel"}}) {
		t.Fatalf("test-mode change: %+v", r)
	}
	if !reflect.DeepEqual(snap, snapshot(t, env.Root)) {
		t.Fatal("test mode changed the root")
	}
	env.Test = false
	if r := present(env, "alice", args); r.Status != mod.OK || len(r.Changes) != 2 {
		t.Fatalf("change: %+v", r)
	}
	if l := line(t, env, "group", "docker"); l != "docker:x:999:" || !strings.HasSuffix(line(t, env, "passwd", "alice"), ":/bin/bash") {
		t.Fatalf("after change: docker %q, alice %q", l, line(t, env, "passwd", "alice"))
	}
	if r := present(env, "alice", args); r.Changed() {
		t.Fatalf("second change run: %+v", r)
	}

	// A system user without a home.
	if r := present(env, "svc", mod.Args{"system": true, "createhome": false, "gid": "users"}); r.Status != mod.OK || r.Changes["gid"] != 100 {
		t.Fatalf("system user: %+v", r)
	}
	if _, err := os.Stat(env.Path("/home/svc")); !os.IsNotExist(err) {
		t.Fatalf("createhome: false created a home (%v)", err)
	}

	env.Test = true
	if r := absent(env, "alice", mod.Args{"purge": true}); r.Status != mod.WouldChange || line(t, env, "passwd", "alice") == "" {
		t.Fatalf("test-mode absent: %+v", r)
	}
	env.Test = false
	if r := absent(env, "alice", mod.Args{"purge": true}); r.Status != mod.OK || r.Changes["alice"] != "removed" {
		t.Fatalf("absent: %+v", r)
	}
	if _, err := os.Stat(env.Path("/home/alice")); !os.IsNotExist(err) || line(t, env, "passwd", "alice") != "" {
		t.Fatalf("purge left the home or the user (%v)", err)
	}
	if r := absent(env, "alice", nil); r.Status != mod.OK || r.Changed() {
		t.Fatalf("absent again: %+v", r)
	}
}

func TestGroupPresent(t *testing.T) {
	env := shadowRoot(t)
	gp := fn(t, "group.present")
	for _, u := range []string{"ann", "bo", "cy"} {
		if r := fn(t, "user.present")(env, u, mod.Args{"createhome": false}); r.Status != mod.OK {
			t.Fatalf("user %s: %+v", u, r)
		}
	}
	steps := []struct {
		args    mod.Args
		test    bool
		status  mod.Status
		changed bool
		line    string
	}{
		{mod.Args{"gid": 3000, "members": []any{"ann", "bo"}}, true, mod.WouldChange, true, ""},
		{mod.Args{"gid": 3000, "members": []any{"ann", "bo"}}, false, mod.OK, true, "devs:x:3000:ann,bo"},
		{mod.Args{"gid": 3000, "members": []any{"bo", "ann"}}, false, mod.OK, false, "devs:x:3000:ann,bo"},
		{mod.Args{"addusers": []any{"cy"}, "delusers": []any{"ann"}}, true, mod.WouldChange, true, "devs:x:3000:ann,bo"},
		{mod.Args{"addusers": []any{"cy"}, "delusers": []any{"ann"}}, false, mod.OK, true, "devs:x:3000:bo,cy"},
		{mod.Args{"addusers": []any{"cy"}, "delusers": []any{"ann"}}, false, mod.OK, false, "devs:x:3000:bo,cy"},
		{mod.Args{"gid": 3001, "members": []any{}}, false, mod.OK, true, "devs:x:3001:"},
		{mod.Args{"gid": 3001}, false, mod.OK, false, "devs:x:3001:"},
	}
	for i, s := range steps {
		env.Test = s.test
		r := gp(env, "devs", s.args)
		if r.Status != s.status || r.Changed() != s.changed || line(t, env, "group", "devs") != s.line {
			t.Fatalf("step %d %v: %+v, group line %q, want %q", i, s.args, r, line(t, env, "group", "devs"), s.line)
		}
	}
	env.Test = false
	for args, want := range map[string]mod.Args{
		"no such user":            {"members": []any{"ghost"}},
		"cannot be combined":      {"members": []any{"bo"}, "addusers": []any{"cy"}},
		"want a non-negative int": {"gid": "x"},
	} {
		if r := gp(env, "devs", want); r.Status != mod.Failed || !strings.Contains(r.Comment, args) {
			t.Errorf("%v: %+v, want a failure with %q", want, r, args)
		}
	}
}

func TestUserArgsAndDatabase(t *testing.T) {
	env := modtest.Env(t)
	os.MkdirAll(env.Path("/etc"), 0o755)
	os.WriteFile(env.Path("/etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(env.Path("/etc/group"), []byte("root:x:0:\n"), 0o644)
	present := fn(t, "user.present")
	for want, args := range map[string]mod.Args{
		"group nogroup does not exist":      {"groups": []any{"nogroup"}},
		"argument gid: group nope":          {"gid": "nope"},
		"argument uid: want a non-negative": {"uid": -1},
		"argument home":                     {"home": "/a:b"},
	} {
		if r := present(env, "dave", args); r.Status != mod.Failed || !strings.Contains(r.Comment, want) {
			t.Errorf("%v: %+v, want a failure with %q", args, r, want)
		}
	}
	if r := present(env, "-o", nil); r.Status != mod.Failed || !strings.Contains(r.Comment, "not a valid name") {
		t.Errorf("bad name: %+v", r)
	}
	os.WriteFile(env.Path("/etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nbroken:x:1\n"), 0o644)
	if r := present(env, "dave", nil); r.Status != mod.Failed || !strings.Contains(r.Comment, "passwd:2: 3 fields, want 7") {
		t.Errorf("corrupt passwd: %+v", r)
	}
}
