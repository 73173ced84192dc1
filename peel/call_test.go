package peel_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/state/mod"
)

// stateTree writes a small tree: a managed file from a template, a
// command that runs when it changes, and a top.sls.
func stateTree(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"top.sls":          "base:\n  'web*':\n    - web\n",
		"web/init.sls":     "conf:\n  file.managed:\n    - name: /etc/web.conf\n    - source: salt://web/web.conf\n    - template: jinja\n    - makedirs: true\nreload:\n  cmd.run:\n    - name: echo reloaded >> $LOG\n    - env:\n      - LOG: LOGFILE\n    - onchanges:\n      - file: conf\n",
		"web/web.conf":     "id={{ .id }}\n",
		"broken/init.sls":  "a:\n  cmd.run:\n    - require:\n      - nope\n",
		"failing/init.sls": "bad:\n  cmd.run:\n    - name: exit 4\n",
		"slow/init.sls":    "slow:\n  cmd.run:\n    - name: touch STARTED; while [ ! -e GATE ]; do sleep 0.02; done\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		text = strings.ReplaceAll(text, "LOGFILE", filepath.Join(dir, "reload.log"))
		text = strings.ReplaceAll(text, "STARTED", filepath.Join(dir, "started"))
		text = strings.ReplaceAll(text, "GATE", filepath.Join(dir, "gate"))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(t.TempDir(), "peel.yaml")
	if err := os.WriteFile(cfg, []byte("id: web1\ndata_dir: "+t.TempDir()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

func call(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := peel.Call(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCall_LocalStateApply(t *testing.T) {
	tree, cfg := stateTree(t)
	root := t.TempDir()
	base := []string{"--config", cfg, "--local", tree, "--root", root}

	// test=true: says what would change, changes nothing.
	code, out, errs := call(t, append(base, "state.apply", "web", "test=true")...)
	if code != 0 {
		t.Fatalf("test run: exit %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, "Result: None") || !strings.Contains(out, "Succeeded: 2 (unchanged=1, changed=1)") {
		t.Errorf("test run output:\n%s", out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("test run wrote %v", entries)
	}

	// The highstate (no sls: top.sls), as JSON in Salt's shape.
	code, out, errs = call(t, append(base, "--json", "state.apply")...)
	if code != 0 {
		t.Fatalf("apply: exit %d: %s%s", code, out, errs)
	}
	var ret map[string]map[string]mod.Run
	if err := json.Unmarshal([]byte(out), &ret); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	conf := ret["web1"][mod.RunKey("file", "conf", "/etc/web.conf", "managed")]
	if conf.Status != mod.OK || conf.Changes["diff"] != "New file" || conf.SLS != "web" || conf.RunNum != 0 {
		t.Errorf("conf: %+v", conf)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/web.conf")); string(b) != "id=web1\n" {
		t.Errorf("web.conf = %q", b)
	}

	// Second run: no changes, the onchanges command does not run again.
	code, out, _ = call(t, append(base, "--state-output", "changes", "state.highstate")...)
	if code != 0 || !strings.Contains(out, "Succeeded: 2 (changed=0)") {
		t.Errorf("second run: exit %d:\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "reload.log")); string(b) != "reloaded\n" {
		t.Errorf("reload ran %q", b)
	}

	code, out, _ = call(t, append(base, "state.show_top")...)
	if code != 0 || !strings.Contains(out, `"web"`) {
		t.Errorf("show_top: %d %s", code, out)
	}
	code, out, _ = call(t, append(base, "state.show_sls", "web")...)
	if code != 0 || !strings.Contains(out, `"__sls__": "web"`) || !strings.Contains(out, `"managed"`) {
		t.Errorf("show_sls: %d %s", code, out)
	}
}

func TestCall_Failures(t *testing.T) {
	tree, cfg := stateTree(t)
	base := []string{"--config", cfg, "--local", tree, "--root", t.TempDir()}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a failing state exits 1 with the summary", []string{"state.apply", "failing"}, 1, "Failed:    1"},
		{"a tree that does not compile runs nothing", []string{"state.apply", "broken"}, 1, "broken/init.sls:4:9: state a (broken/init.sls:2:3) has require nope, which names no state"},
		{"a missing sls", []string{"state.apply", "nope"}, 1, "sls nope not found"},
		{"unknown argument", []string{"state.apply", "web", "tset=true"}, 1, "unknown argument tset"},
		{"highstate takes no sls", []string{"state.highstate", "web"}, 1, "takes no sls names"},
		{"state.sls needs an sls", []string{"state.sls"}, 1, "state.sls needs an sls name"},
		{"state.sls is state.apply with sls", []string{"state.sls", "web", "test=true"}, 0, "Succeeded: 2 (unchanged=1, changed=1)"},
		{"any job function", []string{"test.echo", "hello"}, 0, `"web1": "hello"`},
		{"bad --state-output", []string{"--state-output", "loud", "state.apply"}, 2, "want one of full, terse, changes"},
		{"no function", nil, 2, "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{}, base...), c.args...)
			code, out, errs := call(t, args...)
			if code != c.code || !strings.Contains(out+errs, c.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, c.code, c.want, out, errs)
			}
		})
	}
	code, _, errs := call(t, "--config", cfg, "--local", filepath.Join(tree, "nope"), "state.apply")
	if code != 1 || !strings.Contains(errs, "no state tree at") {
		t.Errorf("missing tree: %d %s", code, errs)
	}
}

// TestCall_Binary runs the real zester-peel binary: the subcommand is
// wired into main, and test mode and the second run hold end to end.
func TestCall_Binary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "zester-peel")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/zester-io/zester/cmd/zester-peel").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tree, cfg := stateTree(t)
	root := t.TempDir()
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"call", "--config", cfg, "--local", tree, "--root", root}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := run("state.apply", "web", "test=true"); code != 0 || !strings.Contains(out, "unchanged=1, changed=1") {
		t.Fatalf("test run: %d\n%s", code, out)
	}
	if code, out := run("state.apply", "web"); code != 0 || !strings.Contains(out, "Succeeded: 2 (changed=2)") {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	if code, out := run("state.apply", "web", "--state-output=terse"); code != 0 || !strings.Contains(out, "changed=0") {
		t.Fatalf("second apply: %d\n%s", code, out)
	}
	// While this process runs states, another process (the binary) is
	// refused: they share data_dir/state.lock.
	done := make(chan int, 1)
	go func() {
		code, _, _ := call(t, "--config", cfg, "--local", tree, "--root", root, "state.apply", "slow")
		done <- code
	}()
	testkit.Eventually(t, "the slow run started", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(tree, "started"))
		return err == nil
	})
	if code, out := run("state.apply", "web"); code != 1 || !strings.Contains(out, "another state run is in progress") {
		t.Errorf("concurrent run in another process: %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(tree, "gate"), nil, 0o644)
	if code := <-done; code != 0 {
		t.Errorf("slow run: exit %d", code)
	}
}
