package service

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/zester-io/zester/peel/state/mod"
	"github.com/zester-io/zester/peel/state/modtest"
)

// daemon is the unit's command: a real process that counts its reloads
// (SIGHUP) in $SYSTEMD_STATE/hups.
const daemon = `trap 'echo hup >>"$SYSTEMD_STATE/hups"' HUP; while :; do sleep 0.2 & wait $!; done`

// fakeSystemd puts the systemctl stand-in first on PATH with the given
// units and returns its state directory. Daemons still running at the end
// are killed.
func fakeSystemd(t *testing.T, units map[string]string) string {
	t.Helper()
	st := modtest.Tool(t, "SYSTEMD_STATE", "testdata/systemctl.sh", "systemctl")
	os.MkdirAll(filepath.Join(st, "units"), 0o755)
	for n, body := range units {
		os.WriteFile(filepath.Join(st, "units", n+".service"), []byte(body+"\n"), 0o644)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(st, "pid"))
		for _, e := range ents {
			if pid := readPid(st, strings.TrimSuffix(e.Name(), ".service")); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return st
}

// readPid is the unit's daemon pid, 0 when it has none or it is not alive.
func readPid(st, name string) int {
	b, err := os.ReadFile(filepath.Join(st, "pid", name+".service"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !alive(pid) {
		return 0
	}
	return pid
}

// alive reports a process that exists and is not a zombie (daemons are
// reaped by PID 1, whenever it gets to it).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && !bytes.HasPrefix(b[i+1:], []byte(" Z"))
}

func enabledOnDisk(st, name string) bool {
	_, err := os.Stat(filepath.Join(st, "enabled", name+".service"))
	return err == nil
}

func entry(t *testing.T, fn string) mod.Entry { return modtest.Lookup(t, Register, fn) }

// TestServiceRunningAndWatch: service.running starts and enables a real
// daemon process (through the systemctl stand-in), test mode starts
// nothing, a second run changes nothing, the watch restarts it once (a new
// process) or reloads it (SIGHUP to the same process), and service.dead
// stops and disables it.
func TestServiceRunningAndWatch(t *testing.T) {
	st := fakeSystemd(t, map[string]string{"web": daemon})
	log := filepath.Join(st, "log")
	env := modtest.Env(t)
	run := entry(t, "service.running")
	args := mod.Args{"enable": true}

	env.Test = true
	r := run.Fn(env, "web", args)
	if r.Status != mod.WouldChange || !r.Changed() || !strings.Contains(r.Comment, "would be started and enabled") {
		t.Fatalf("test mode: %+v", r)
	}
	if readPid(st, "web") != 0 || enabledOnDisk(st, "web") {
		t.Fatal("test mode started or enabled the service")
	}
	env.Test = false
	r = run.Fn(env, "web", args)
	pid := readPid(st, "web")
	if r.Status != mod.OK || r.Changes["web"] != true || pid == 0 || !enabledOnDisk(st, "web") {
		t.Fatalf("running: %+v, pid %d, enabled %v", r, pid, enabledOnDisk(st, "web"))
	}
	if r := run.Fn(env, "web", args); r.Status != mod.OK || r.Changed() {
		t.Fatalf("second run: %+v", r)
	}

	env.Test = true
	if r := run.Watch(env, "web", args); r.Status != mod.WouldChange || !strings.Contains(r.Comment, "restarted") || readPid(st, "web") != pid {
		t.Fatalf("test-mode watch: %+v", r)
	}
	env.Test = false
	restartsBefore := len(modtest.Calls(t, log, "systemctl restart"))
	r = run.Watch(env, "web", args)
	newPid := readPid(st, "web")
	if r.Status != mod.OK || !r.Changed() || newPid == 0 || newPid == pid {
		t.Fatalf("watch: %+v, pid %d → %d", r, pid, newPid)
	}
	if n := len(modtest.Calls(t, log, "systemctl restart")) - restartsBefore; n != 1 {
		t.Fatalf("watch restarted %d times, want once", n)
	}

	r = run.Watch(env, "web", mod.Args{"reload": true})
	if r.Status != mod.OK || !strings.Contains(r.Comment, "reloaded") || readPid(st, "web") != newPid {
		t.Fatalf("reload watch: %+v (pid %d, was %d)", r, readPid(st, "web"), newPid)
	}
	if len(modtest.Calls(t, log, "systemctl reload")) != 1 {
		t.Fatalf("want one systemctl reload, log: %q", modtest.Calls(t, log, "systemctl"))
	}

	deadE := entry(t, "service.dead")
	r = deadE.Fn(env, "web", mod.Args{"enable": false})
	if r.Status != mod.OK || !r.Changed() || readPid(st, "web") != 0 || alive(newPid) || enabledOnDisk(st, "web") {
		t.Fatalf("dead: %+v, pid %d alive=%v", r, newPid, alive(newPid))
	}
	if r := deadE.Fn(env, "web", mod.Args{"enable": false}); r.Status != mod.OK || r.Changed() {
		t.Fatalf("dead again: %+v", r)
	}
	// The watch of a stopped service starts it.
	if r := run.Watch(env, "web", mod.Args{}); r.Status != mod.OK || !strings.Contains(r.Comment, "started") || readPid(st, "web") == 0 {
		t.Fatalf("watch of a stopped service: %+v", r)
	}
}

func TestServiceEnabledDisabled(t *testing.T) {
	st := fakeSystemd(t, map[string]string{"cron": daemon, "fixed": "static\n" + daemon})
	env := modtest.Env(t)
	en, dis := entry(t, "service.enabled"), entry(t, "service.disabled")
	for _, step := range []struct {
		e       mod.Entry
		test    bool
		status  mod.Status
		changed bool
		onDisk  bool
	}{
		{en, true, mod.WouldChange, true, false},
		{en, false, mod.OK, true, true},
		{en, false, mod.OK, false, true},
		{dis, true, mod.WouldChange, true, true},
		{dis, false, mod.OK, true, false},
		{dis, false, mod.OK, false, false},
	} {
		env.Test = step.test
		r := step.e.Fn(env, "cron", nil)
		if r.Status != step.status || r.Changed() != step.changed || enabledOnDisk(st, "cron") != step.onDisk {
			t.Fatalf("%+v: got %+v, enabled on disk %v", step, r, enabledOnDisk(st, "cron"))
		}
	}
	env.Test = false
	if readPid(st, "cron") != 0 {
		t.Fatal("enabling started the service")
	}
	if r := en.Fn(env, "fixed", nil); r.Status != mod.OK || r.Changed() || !strings.Contains(r.Comment, "static") {
		t.Fatalf("static unit: %+v", r)
	}
	for _, fn := range []string{"service.running", "service.dead", "service.enabled", "service.disabled"} {
		if r := entry(t, fn).Fn(env, "nosuch", nil); r.Status != mod.Failed || !strings.Contains(r.Comment, "nosuch is not available") {
			t.Errorf("%s of a missing unit: %+v", fn, r)
		}
	}
	if r := entry(t, "service.running").Fn(env, "-x", nil); r.Status != mod.Failed || !strings.Contains(r.Comment, `"-x": not a unit name`) {
		t.Errorf("bad name: %+v", r)
	}
	if r := entry(t, "service.running").Fn(env, "cron", mod.Args{"enable": "sometimes"}); r.Status != mod.Failed || !strings.Contains(r.Comment, "argument enable") {
		t.Errorf("bad enable: %+v", r)
	}
}
