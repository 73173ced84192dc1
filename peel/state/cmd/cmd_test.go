package cmd_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/peel/state/mod"
)

func TestRun_Guards(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "work"), 0o755)
	os.WriteFile(filepath.Join(root, "exists"), nil, 0o644)
	log := filepath.Join(root, "log")
	entry, _ := state.DefaultTable().Lookup("cmd.run")
	cases := []struct {
		name   string
		args   mod.Args
		ran    bool
		status mod.Status
		want   string
	}{
		{"runs in cwd with env as runas", mod.Args{"cwd": "/work", "env": []any{map[string]any{"GREETING": "hi"}}, "runas": me.Username}, true, mod.OK, "run"},
		{"creates that exists", mod.Args{"creates": "/exists"}, false, mod.OK, "/exists exists"},
		{"creates that does not", mod.Args{"creates": []any{"/exists", "/missing"}}, true, mod.OK, "run"},
		{"unless true", mod.Args{"unless": "true"}, false, mod.OK, "unless condition is true"},
		{"unless false", mod.Args{"unless": []any{"true", "false"}}, true, mod.OK, "run"},
		{"onlyif false", mod.Args{"onlyif": "test -e " + root + "/missing"}, false, mod.OK, "onlyif condition is false"},
		{"onlyif true", mod.Args{"onlyif": "test -e " + root + "/exists"}, true, mod.OK, "run"},
		{"non-zero exit fails", mod.Args{"env": map[string]any{"CODE": "3"}}, true, mod.Failed, "exited with status 3"},
		{"success_retcodes", mod.Args{"env": map[string]any{"CODE": "3"}, "success_retcodes": []any{int64(3)}}, true, mod.OK, "run"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.args.Unknown(entry.Args); err != nil {
				t.Fatal(err)
			}
			os.Remove(log)
			env := &mod.Env{Ctx: context.Background(), Root: root, Run: state.Exec}
			script := `echo "$(pwd) ${GREETING:-none} $(id -un)" > ` + log + `; exit ${CODE:-0}`
			env.Test = true
			tr := entry.Fn(env, script, c.args)
			if _, err := os.Stat(log); err == nil {
				t.Fatal("test mode ran the command")
			}
			if want := map[bool]mod.Status{true: mod.WouldChange, false: mod.OK}[c.ran]; tr.Status != want {
				t.Errorf("test mode: %v %q", tr.Status, tr.Comment)
			}
			env.Test = false
			r := entry.Fn(env, script, c.args)
			b, err := os.ReadFile(log)
			if ran := err == nil; ran != c.ran {
				t.Fatalf("ran %v, want %v (%q)", ran, c.ran, r.Comment)
			}
			if r.Status != c.status || !strings.Contains(r.Comment, c.want) {
				t.Errorf("%v %q, want %v with %q", r.Status, r.Comment, c.status, c.want)
			}
			if c.ran != r.Changed() {
				t.Errorf("changes %v", r.Changes)
			}
			if c.name == "runs in cwd with env as runas" && string(b) != filepath.Join(root, "work")+" hi "+me.Username+"\n" {
				t.Errorf("command saw %q", b)
			}
		})
	}
}

// runas another user needs root: the command runs with that user's uid,
// groups and HOME.
func TestRun_RunasAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runas another user needs root")
	}
	entry, _ := state.DefaultTable().Lookup("cmd.run")
	env := &mod.Env{Ctx: context.Background(), Run: state.Exec}
	r := entry.Fn(env, `echo "$(id -un) $(id -u) $HOME"`, mod.Args{"runas": "daemon"})
	if r.Status != mod.OK || r.Changes["stdout"] != "daemon 1 /usr/sbin\n" {
		t.Errorf("%v %q %v", r.Status, r.Comment, r.Changes)
	}
	if r := entry.Fn(env, "true", mod.Args{"runas": "no-such-user-zz"}); r.Status != mod.Failed || !strings.Contains(r.Comment, "no such user") {
		t.Errorf("unknown user: %v %q", r.Status, r.Comment)
	}
}
