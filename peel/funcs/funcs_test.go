package funcs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/testkit"
)

func run(t *testing.T, env *Env, name, args string) (any, error) {
	t.Helper()
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	return NewRegistry().Run(context.Background(), env, name, raw)
}

func mustRun(t *testing.T, env *Env, name, args string) any {
	t.Helper()
	res, err := run(t, env, name, args)
	if err != nil {
		t.Fatalf("%s %s: unexpected error: %v", name, args, err)
	}
	return res
}

func wantCode(t *testing.T, err error, code string, contains ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("expected error with code %q, got nil", code)
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("expected *Error, got %T: %v", err, err)
	}
	if fe.Code != code {
		t.Fatalf("expected code %q, got %q (%s)", code, fe.Code, fe.Msg)
	}
	for _, c := range contains {
		if !strings.Contains(fe.Msg, c) {
			t.Errorf("error message %q does not contain %q", fe.Msg, c)
		}
	}
	return fe
}

func mustCmd(t *testing.T, env *Env, name, args string) *CmdResult {
	t.Helper()
	res := mustRun(t, env, name, args)
	cr, ok := res.(*CmdResult)
	if !ok {
		t.Fatalf("%s: result is %T, want *CmdResult", name, res)
	}
	return cr
}

func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestNames(t *testing.T) {
	want := []string{"basket.get", "cmd.run", "cmd.script", "facts.get", "facts.refresh", "file.read", "file.stat",
		"network.interfaces", "network.ipv4", "network.ipv6", "service.status", "settings.get", "settings.items", "sys.info", "test.echo", "test.ping", "test.sleep"}
	got := NewRegistry().Names()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if !slices.IsSorted(got) {
		t.Fatal("Names not sorted")
	}
}

func TestTestPing(t *testing.T) {
	for _, args := range []string{"", "null", "{}", "[]", "  "} {
		if res := mustRun(t, nil, "test.ping", args); res != true {
			t.Errorf("test.ping %q = %v", args, res)
		}
	}
	_, err := run(t, nil, "test.ping", `{"x":1}`)
	wantCode(t, err, CodeBadArgs, `"x"`, "takes no arguments")
	_, err = run(t, nil, "test.ping", `["a"]`)
	wantCode(t, err, CodeBadArgs, "no positional")
}

func TestTestEcho(t *testing.T) {
	if res := mustRun(t, nil, "test.echo", `{"text":"hello"}`); res != "hello" {
		t.Errorf("echo object = %v", res)
	}
	if res := mustRun(t, nil, "test.echo", `["hello"]`); res != "hello" {
		t.Errorf("echo positional = %v", res)
	}
	if res := mustRun(t, nil, "test.echo", ``); res != "" {
		t.Errorf("echo empty = %v", res)
	}
	// Salt's mixed convention: positional words under _args, keys beside.
	if res := mustRun(t, nil, "test.echo", `{"_args":["hello"]}`); res != "hello" {
		t.Errorf("echo mixed = %v", res)
	}
	res := mustCmd(t, nil, "cmd.run", `{"_args":["pwd"],"cwd":"/tmp","timeout":"10s"}`)
	if strings.TrimSpace(res.Stdout) != "/tmp" {
		t.Errorf("cmd.run mixed: stdout %q, want /tmp", res.Stdout)
	}
}

func TestBadArgs(t *testing.T) {
	cases := []struct {
		name, args string
		contains   []string
	}{
		{"test.echo", `{"text": 42}`, []string{`argument "text"`, "expected string", "got number"}},
		{"test.echo", `{"txt": "x"}`, []string{`unknown argument "txt"`, "accepted: text"}},
		{"test.echo", `"hello"`, []string{"JSON object or array", "got string"}},
		{"test.echo", `["a","b"]`, []string{"too many positional arguments", "text"}},
		{"test.echo", `{"text":"a"} {"text":"b"}`, []string{"trailing"}},
		{"test.echo", `{"text":`, []string{"invalid"}},
		{"test.echo", `{"_args":["a"],"text":"b"}`, []string{`argument "text" given twice`, "positional argument 1"}},
		{"test.echo", `{"_args":["a"],"TEXT":"b"}`, []string{`argument "text" given twice`}},
		{"test.echo", `{"_args":"a"}`, []string{"positional arguments (_args) must be a JSON array", "got string"}},
		{"test.echo", `{"_args":["a","b"],"x":1}`, []string{"too many positional arguments", "text"}},
		{"test.ping", `{"_args":["a"]}`, []string{"takes no positional arguments"}},
		{"cmd.run", `{"_args":["ls"],"shell":"sh"}`, []string{`unknown argument "shell"`}},
		{"test.sleep", `{"seconds": true}`, []string{`argument "seconds"`, "duration", "boolean"}},
		{"test.sleep", `{"seconds": "soon"}`, []string{`argument "seconds"`, `"soon"`}},
		{"test.sleep", `{"seconds": -1}`, []string{`argument "seconds"`}},
		{"test.sleep", `{}`, []string{`"seconds" is required`}},
		{"cmd.run", `{"cmd": ["ls"]}`, []string{`argument "cmd"`, "expected string", "got array"}},
		{"cmd.run", `{"argv": "ls"}`, []string{`argument "argv"`, "array of string"}},
		{"cmd.run", `{"cmd": "true", "env": {"A": 1}}`, []string{`argument "env`, "expected string", "got number"}},
		{"cmd.run", `{"cmd": "true", "env": {"A=B": "1"}}`, []string{`argument "env"`, "A=B"}},
		{"cmd.run", `{"cmd": "true", "timeout": "eventually"}`, []string{`argument "timeout"`}},
		{"cmd.run", `{"cmd": "true", "argv": ["true"]}`, []string{"mutually exclusive"}},
		{"cmd.run", `{"cwd": "/"}`, []string{`"cmd" or "argv"`}},
		{"cmd.run", `{"cmd": "true", "shell": "bash"}`, []string{`unknown argument "shell"`, "cmd, argv, cwd, env, timeout, stdin"}},
		{"cmd.script", `{}`, []string{`"script" is required`}},
		{"file.stat", `{"path": "etc/passwd"}`, []string{`argument "path"`, "absolute"}},
		{"file.read", `{"path": "/etc/hostname", "max_bytes": "10"}`, []string{`argument "max_bytes"`, "integer"}},
		{"file.read", `{"path": "/etc/hostname", "max_bytes": -1}`, []string{`argument "max_bytes"`}},
		{"service.status", `{"name": "a/b"}`, []string{`argument "name"`}},
		{"service.status", `{"name": "a b"}`, []string{`argument "name"`}},
		{"service.status", `{"name": "--all"}`, []string{`argument "name"`}},
		{"service.status", `{"name": "` + strings.Repeat("x", 257) + `"}`, []string{`argument "name"`, "256"}},
		{"service.status", `{}`, []string{`"name" is required`}},
	}
	for _, c := range cases {
		t.Run(c.name+" "+c.args[:min(len(c.args), 40)], func(t *testing.T) {
			_, err := run(t, nil, c.name, c.args)
			wantCode(t, err, CodeBadArgs, c.contains...)
		})
	}
}

func TestUnknownFunction(t *testing.T) {
	_, err := run(t, nil, "cmd.rnu", `{}`)
	fe := wantCode(t, err, CodeUnknownFunction, `"cmd.rnu"`, "did you mean cmd.run", "known functions:", "test.ping")
	if !strings.Contains(fe.Error(), CodeUnknownFunction) {
		t.Errorf("Error() = %q", fe.Error())
	}
	_, err = run(t, nil, "ping", ``)
	wantCode(t, err, CodeUnknownFunction, "did you mean test.ping")
}

func TestPanicRecovery(t *testing.T) {
	r := NewRegistry()
	r.Register("boom.now", func(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
		// A runtime error, not a call to panic: index len(args) of an empty slice.
		var xs []int
		xs[len(args)] = 1
		return nil, nil
	})
	r.Register("boom.value", func(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
		panic("kaboom")
	})
	res, err := r.Run(context.Background(), nil, "boom.now", nil)
	if res != nil {
		t.Errorf("result = %v, want nil", res)
	}
	fe := wantCode(t, err, CodeFailed, "panic: ", "index out of range")
	if !strings.HasPrefix(fe.Msg, "panic: ") {
		t.Errorf("msg %q does not start with panic:", fe.Msg)
	}
	_, err = r.Run(context.Background(), nil, "boom.value", nil)
	wantCode(t, err, CodeFailed, "panic: kaboom")

	// The registry keeps working.
	if res, err := r.Run(context.Background(), nil, "test.ping", nil); err != nil || res != true {
		t.Fatalf("test.ping after panic: %v %v", res, err)
	}
	if !slices.Contains(r.Names(), "boom.now") {
		t.Error("registered function missing from Names")
	}
}

func TestErrorMapping(t *testing.T) {
	r := NewRegistry()
	r.Register("x.plain", func(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
		return nil, errors.New("disk on fire")
	})
	r.Register("x.typed", func(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", &Error{Code: CodeTooLarge, Msg: "big"})
	})
	_, err := r.Run(context.Background(), nil, "x.plain", nil)
	wantCode(t, err, CodeFailed, "disk on fire")
	_, err = r.Run(context.Background(), nil, "x.typed", nil)
	wantCode(t, err, CodeTooLarge, "big")
}

func TestTestSleep(t *testing.T) {
	start := time.Now()
	if res := mustRun(t, nil, "test.sleep", `{"seconds": 0.05}`); res != true {
		t.Fatalf("sleep = %v", res)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("slept only %v", d)
	}
	mustRun(t, nil, "test.sleep", `["0.01"]`)
	mustRun(t, nil, "test.sleep", `{"seconds": "10ms"}`)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := NewRegistry().Run(ctx, nil, "test.sleep", json.RawMessage(`{"seconds": 300}`))
	wantCode(t, err, CodeTimeout)
	if d := time.Since(start); d > 60*time.Second { // far below the 300 s sleep
		t.Errorf("sleep did not honour ctx: %v", d)
	}
}

func TestCmdRunBasic(t *testing.T) {
	r := mustCmd(t, nil, "cmd.run", `{"cmd": "echo out; echo err >&2; exit 3"}`)
	if r.Stdout != "out\n" || r.Stderr != "err\n" || r.Retcode != 3 {
		t.Fatalf("result = %+v", r)
	}
	if r.Pid <= 0 || r.TimedOut || r.Truncated || r.Note != "" {
		t.Errorf("result = %+v", r)
	}

	// Positional form.
	r = mustCmd(t, nil, "cmd.run", `["echo positional"]`)
	if r.Stdout != "positional\n" || r.Retcode != 0 {
		t.Fatalf("positional result = %+v", r)
	}

	// stdin.
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "tr a-z A-Z", "stdin": "shout"}`)
	if r.Stdout != "SHOUT" {
		t.Errorf("stdin result = %+v", r)
	}

	// Result is JSON-encodable with the documented keys.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"stdout", "stderr", "retcode", "pid", "duration_ms", "truncated", "timed_out"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
}

func TestCmdRunArgv(t *testing.T) {
	// No shell: the argument containing shell syntax is passed verbatim.
	r := mustCmd(t, nil, "cmd.run", `{"argv": ["printf", "%s|", "a b", "$HOME", "; rm -rf /"]}`)
	if r.Stdout != "a b|$HOME|; rm -rf /|" || r.Retcode != 0 {
		t.Fatalf("argv result = %+v", r)
	}
	// Absolute path.
	r = mustCmd(t, nil, "cmd.run", `{"argv": ["/bin/sh", "-c", "exit 7"]}`)
	if r.Retcode != 7 {
		t.Fatalf("argv abs result = %+v", r)
	}
}

func TestCmdRunNotFound(t *testing.T) {
	r := mustCmd(t, nil, "cmd.run", `{"argv": ["zester-no-such-program-xyz"]}`)
	if r.Retcode != 127 || !strings.Contains(r.Stderr, "zester-no-such-program-xyz") || r.Pid != 0 {
		t.Fatalf("not found result = %+v", r)
	}
	r = mustCmd(t, nil, "cmd.run", `{"argv": ["/nonexistent/prog"]}`)
	if r.Retcode != 127 || r.Stderr == "" {
		t.Fatalf("not found abs result = %+v", r)
	}
	// Through the shell, the shell reports 127 itself.
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "zester-no-such-program-xyz"}`)
	if r.Retcode != 127 {
		t.Fatalf("shell not found result = %+v", r)
	}
	// Missing cwd: cannot start, not a crash.
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "true", "cwd": "/nonexistent/dir"}`)
	if r.Retcode != 126 || !strings.Contains(r.Stderr, "/nonexistent/dir") {
		t.Fatalf("bad cwd result = %+v", r)
	}
}

func TestCmdRunCwdAndEnv(t *testing.T) {
	dir := t.TempDir()
	r := mustCmd(t, nil, "cmd.run", fmt.Sprintf(`{"cmd": "pwd; echo \"$FOO/$BAR\"; echo \"$PATH\"", "cwd": %s, "env": {"FOO": "foo value", "BAR": "b=r"}}`, jsonStr(dir)))
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout = %q", r.Stdout)
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	if lines[0] != dir && lines[0] != realDir {
		t.Errorf("cwd = %q, want %q", lines[0], dir)
	}
	if lines[1] != "foo value/b=r" {
		t.Errorf("env = %q", lines[1])
	}
	if lines[2] != defaultPath {
		t.Errorf("PATH = %q, want minimal %q", lines[2], defaultPath)
	}

	// Minimal env: the agent's other variables do not leak.
	t.Setenv("ZESTER_SECRET_TEST_VAR", "leaked")
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "env"}`)
	if strings.Contains(r.Stdout, "ZESTER_SECRET_TEST_VAR") {
		t.Errorf("agent env leaked: %q", r.Stdout)
	}

	// argv lookups use the command's PATH.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "zester-hello"), []byte("#!/bin/sh\necho hi from $0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r = mustCmd(t, nil, "cmd.run", fmt.Sprintf(`{"argv": ["zester-hello"], "env": {"PATH": %s}}`, jsonStr(bin+":/bin:/usr/bin")))
	if r.Retcode != 0 || !strings.HasPrefix(r.Stdout, "hi from") {
		t.Fatalf("PATH lookup result = %+v", r)
	}
}

func TestCmdRunOutputCap(t *testing.T) {
	env := &Env{MaxOutput: 1000}
	r := mustCmd(t, env, "cmd.run", `{"cmd": "head -c 5000 /dev/zero | tr '\\0' a; head -c 10 /dev/zero | tr '\\0' e >&2"}`)
	if len(r.Stdout) != 1000 || strings.Trim(r.Stdout, "a") != "" {
		t.Fatalf("stdout len = %d", len(r.Stdout))
	}
	if r.Stderr != "eeeeeeeeee" {
		t.Errorf("stderr = %q", r.Stderr)
	}
	if !r.Truncated || r.Note != "stdout cut at 1000 of 5000 bytes" {
		t.Fatalf("truncated=%v note=%q", r.Truncated, r.Note)
	}
	if r.Retcode != 0 {
		t.Errorf("retcode = %d (writer must not fail the child)", r.Retcode)
	}

	// Default cap is 1 MiB.
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "head -c 1100000 /dev/zero"}`)
	if len(r.Stdout) != DefaultMaxOutput || r.Note != "stdout cut at 1048576 of 1100000 bytes" {
		t.Fatalf("default cap: len=%d note=%q", len(r.Stdout), r.Note)
	}

	// A cut in the middle of a multi-byte rune does not leave invalid UTF-8.
	env = &Env{MaxOutput: 4}
	r = mustCmd(t, env, "cmd.run", `{"cmd": "printf 'abcé'"}`)
	if r.Stdout != "abc" || !r.Truncated {
		t.Errorf("rune cut: stdout=%q truncated=%v", r.Stdout, r.Truncated)
	}
}

func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	// Killed orphans are reparented to PID 1; if that does not reap, the
	// process lingers as a zombie, which is dead for our purposes.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("process %d gone", pid), 60*time.Second, func() bool { return processGone(pid) })
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("bad pid %q", b)
	}
	return pid
}

func TestCmdRunTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cmd := fmt.Sprintf(`echo before; sh -c 'sleep 300 & echo $! > %s; sleep 300'`, pidFile)
	start := time.Now()
	r := mustCmd(t, nil, "cmd.run", fmt.Sprintf(`{"cmd": %s, "timeout": "300ms"}`, jsonStr(cmd)))
	elapsed := time.Since(start)
	if elapsed > 60*time.Second { // far below the 300 s sleep: the timeout killed it
		t.Fatalf("cmd.run took %v", elapsed)
	}
	if !r.TimedOut || r.Retcode != -1 {
		t.Fatalf("result = %+v", r)
	}
	if r.Stdout != "before\n" {
		t.Errorf("output so far lost: %q", r.Stdout)
	}
	if !strings.Contains(r.Note, "timeout") {
		t.Errorf("note = %q", r.Note)
	}
	waitGone(t, readPid(t, pidFile))
	waitGone(t, r.Pid)

	// Number-of-seconds timeout.
	r = mustCmd(t, nil, "cmd.run", `{"cmd": "sleep 30", "timeout": 0.2}`)
	if !r.TimedOut || r.Retcode != -1 {
		t.Fatalf("numeric timeout result = %+v", r)
	}
}

func TestCmdRunContextCancelKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cmd := fmt.Sprintf(`sleep 300 & echo $! > %s; wait`, pidFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ran struct {
		res any
		err error
	}
	done := make(chan ran, 1)
	start := time.Now()
	go func() {
		res, err := NewRegistry().Run(ctx, nil, "cmd.run", json.RawMessage(fmt.Sprintf(`{"cmd": %s}`, jsonStr(cmd))))
		done <- ran{res, err}
	}()
	// Cancel once the child runs.
	testkit.Eventually(t, "the child runs", 60*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		return err == nil && len(b) > 0 && b[len(b)-1] == '\n'
	})
	cancel()
	var out ran
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("cmd.run did not return after its context was cancelled")
	}
	res, err := out.res, out.err
	if err != nil {
		t.Fatal(err)
	}
	r := res.(*CmdResult)
	if time.Since(start) > 60*time.Second || !r.TimedOut || r.Retcode != -1 || !strings.Contains(r.Note, "cancel") {
		t.Fatalf("result = %+v", r)
	}
	waitGone(t, readPid(t, pidFile))
}

func TestCmdRunBackgroundHoldsPipe(t *testing.T) {
	// The shell exits at once but a background child keeps stdout open; we
	// must not wait the full 300 s for it.
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	start := time.Now()
	r := mustCmd(t, nil, "cmd.run", fmt.Sprintf(`{"cmd": %s}`, jsonStr(fmt.Sprintf(`sleep 300 & echo $! > %s; echo done`, pidFile))))
	if d := time.Since(start); d > 60*time.Second { // far below the 300 s the child holds the pipe
		t.Fatalf("took %v", d)
	}
	if r.Retcode != 0 || r.Stdout != "done\n" || r.TimedOut {
		t.Fatalf("result = %+v", r)
	}
	if pid := readPid(t, pidFile); !processGone(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL) // clean up after ourselves
	}
}

func TestCmdScript(t *testing.T) {
	r := mustCmd(t, nil, "cmd.script", `{"script": "#!/bin/sh\necho \"script $# $1 $2\"\necho \"$0\" >&2\nexit 4\n", "args": ["x", "y z"]}`)
	if r.Stdout != "script 2 x y z\n" || r.Retcode != 4 {
		t.Fatalf("result = %+v", r)
	}
	scriptPath := strings.TrimSpace(r.Stderr)
	if !strings.Contains(scriptPath, "zester-script-") {
		t.Fatalf("script path = %q", scriptPath)
	}
	if _, err := os.Stat(scriptPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("script file %s not removed: %v", scriptPath, err)
	}

	// Permissions while running.
	r = mustCmd(t, nil, "cmd.script", `{"script": "stat -c %a \"$0\""}`)
	if strings.TrimSpace(r.Stdout) != "700" {
		t.Errorf("mode = %q", r.Stdout)
	}

	// Interpreter with flags, cwd, env, positional form.
	dir := t.TempDir()
	r = mustCmd(t, nil, "cmd.script", fmt.Sprintf(`{"script": "echo $V; pwd; false; echo notreached", "interpreter": "/bin/sh -e", "cwd": %s, "env": {"V": "vee"}}`, jsonStr(dir)))
	if r.Stdout != "vee\n"+dir+"\n" || r.Retcode != 1 {
		t.Errorf("result = %+v", r)
	}
	r = mustCmd(t, nil, "cmd.script", `["echo positional"]`)
	if r.Stdout != "positional\n" {
		t.Errorf("positional result = %+v", r)
	}

	// Timeout.
	r = mustCmd(t, nil, "cmd.script", `{"script": "sleep 30", "timeout": "200ms"}`)
	if !r.TimedOut || r.Retcode != -1 {
		t.Errorf("timeout result = %+v", r)
	}
}

func TestSysInfo(t *testing.T) {
	res := mustRun(t, &Env{PeelID: "peel-1"}, "sys.info", ``)
	si := res.(*SysInfo)
	host, _ := os.Hostname()
	if si.Hostname != host || si.OS != runtime.GOOS || si.Arch != runtime.GOARCH || si.NumCPU < 1 ||
		si.GoVersion != runtime.Version() || si.Pid != os.Getpid() || si.PeelID != "peel-1" {
		t.Fatalf("sys.info = %+v", si)
	}
	if runtime.GOOS == "linux" {
		if si.UptimeSeconds <= 0 || len(si.Load) != 3 {
			t.Errorf("uptime/load = %v %v", si.UptimeSeconds, si.Load)
		}
	}
	b, _ := json.Marshal(si)
	for _, k := range []string{`"hostname"`, `"os"`, `"arch"`, `"num_cpu"`, `"go_version"`, `"pid"`, `"uptime_seconds"`, `"load"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s missing in %s", k, b)
		}
	}
	_, err := run(t, nil, "sys.info", `{"verbose": true}`)
	wantCode(t, err, CodeBadArgs, "verbose")
}

func TestServiceStatus(t *testing.T) {
	res := mustRun(t, nil, "service.status", `{"name": "zester-no-such-service"}`)
	st := res.(*ServiceStatus)
	if st.Name != "zester-no-such-service" || st.Active || st.Source == "" || st.State == "" {
		t.Fatalf("status = %+v", st)
	}
	res = mustRun(t, nil, "service.status", `["zester-no-such-service.service"]`)
	if st := res.(*ServiceStatus); st.Active {
		t.Fatalf("status = %+v", st)
	}

	// SysV fallback with a pid file, when we can write to /run (root, no
	// systemd).
	if systemdRunning() {
		return
	}
	name := fmt.Sprintf("zester-test-%d", os.Getpid())
	pidFile := "/run/" + name + ".pid"
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Logf("skipping pid file check: %v", err)
		return
	}
	defer os.Remove(pidFile)
	st = mustRun(t, nil, "service.status", `{"name": `+jsonStr(name)+`}`).(*ServiceStatus)
	if !st.Active || st.MainPid != os.Getpid() || st.Source != "pidfile" || st.State != "active" {
		t.Fatalf("pidfile status = %+v", st)
	}
}

func TestFileStat(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(p, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	st := mustRun(t, nil, "file.stat", `{"path": `+jsonStr(p)+`}`).(*FileStat)
	if !st.Exists || st.Size != 5 || st.Mode != "0640" || st.IsDir || st.UID != os.Getuid() || st.GID < 0 || st.Type != "file" {
		t.Fatalf("stat = %+v", st)
	}
	if _, err := time.Parse(time.RFC3339, st.ModTime); err != nil {
		t.Errorf("mod_time %q: %v", st.ModTime, err)
	}

	st = mustRun(t, nil, "file.stat", `[`+jsonStr(dir)+`]`).(*FileStat)
	if !st.Exists || !st.IsDir || st.Type != "dir" {
		t.Fatalf("dir stat = %+v", st)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink("f.txt", link); err != nil {
		t.Fatal(err)
	}
	st = mustRun(t, nil, "file.stat", `{"path": `+jsonStr(link)+`}`).(*FileStat)
	if !st.Exists || st.LinkTarget != "f.txt" || st.Type != "symlink" {
		t.Fatalf("link stat = %+v", st)
	}

	for _, missing := range []string{filepath.Join(dir, "nope"), filepath.Join(p, "under-a-file")} {
		st = mustRun(t, nil, "file.stat", `{"path": `+jsonStr(missing)+`}`).(*FileStat)
		if st.Exists || st.Path != missing {
			t.Fatalf("missing stat = %+v", st)
		}
	}

	if err := os.Chmod(p, os.ModeSetuid|0o755); err == nil {
		st = mustRun(t, nil, "file.stat", `{"path": `+jsonStr(p)+`}`).(*FileStat)
		if st.Mode != "4755" {
			t.Errorf("setuid mode = %q", st.Mode)
		}
	}
}

func TestFileRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(p, []byte("héllo world"), 0o644); err != nil {
		t.Fatal(err)
	}
	fc := mustRun(t, nil, "file.read", `{"path": `+jsonStr(p)+`}`).(*FileContent)
	if fc.Content != "héllo world" || fc.Encoding != "utf-8" || fc.Size != int64(len("héllo world")) || fc.Truncated {
		t.Fatalf("read = %+v", fc)
	}
	fc = mustRun(t, nil, "file.read", `[`+jsonStr(p)+`]`).(*FileContent)
	if fc.Content != "héllo world" {
		t.Fatalf("positional read = %+v", fc)
	}

	// max_bytes cuts (and drops the partial 'é').
	fc = mustRun(t, nil, "file.read", `{"path": `+jsonStr(p)+`, "max_bytes": 2}`).(*FileContent)
	if fc.Content != "h" || !fc.Truncated || fc.Size != int64(len("héllo world")) || fc.Encoding != "utf-8" {
		t.Fatalf("max_bytes read = %+v", fc)
	}

	// Env cap applies; larger max_bytes is refused.
	env := &Env{MaxOutput: 5}
	fc = mustRun(t, env, "file.read", `{"path": `+jsonStr(p)+`}`).(*FileContent)
	if fc.Content != "héll" || !fc.Truncated {
		t.Fatalf("capped read = %+v", fc)
	}
	_, err := run(t, env, "file.read", `{"path": `+jsonStr(p)+`, "max_bytes": 6}`)
	wantCode(t, err, CodeTooLarge, "max_bytes")

	// Binary content is base64.
	bin := filepath.Join(dir, "bin")
	data := []byte{0xff, 0xfe, 0x00, 0x01}
	if err := os.WriteFile(bin, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fc = mustRun(t, nil, "file.read", `{"path": `+jsonStr(bin)+`}`).(*FileContent)
	if fc.Encoding != "base64" || fc.Content != base64.StdEncoding.EncodeToString(data) {
		t.Fatalf("binary read = %+v", fc)
	}

	// /proc files report size 0 but have content.
	if runtime.GOOS == "linux" {
		fc = mustRun(t, nil, "file.read", `{"path": "/proc/self/status"}`).(*FileContent)
		if !strings.Contains(fc.Content, "Pid:") || fc.Size != int64(len(fc.Content)) {
			t.Errorf("/proc read = %+v", fc)
		}
	}

	_, err = run(t, nil, "file.read", `{"path": "relative/path"}`)
	wantCode(t, err, CodeBadArgs, "absolute")
	_, err = run(t, nil, "file.read", `{"path": `+jsonStr(filepath.Join(dir, "missing"))+`}`)
	wantCode(t, err, CodeFailed, "no such file")
	_, err = run(t, nil, "file.read", `{"path": `+jsonStr(dir)+`}`)
	wantCode(t, err, CodeFailed, "directory")

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		done := make(chan error, 1)
		go func() { _, err := run(t, nil, "file.read", `{"path": `+jsonStr(fifo)+`}`); done <- err }()
		select {
		case err := <-done:
			wantCode(t, err, CodeFailed, "not a regular file")
		case <-time.After(60 * time.Second):
			t.Fatal("file.read on a FIFO hung")
		}
	}
}

type testFacts struct {
	OS struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"os"`
	IPs   []string `json:"ips"`
	Cores int      `json:"cores"`
}

func TestFacts(t *testing.T) {
	var f testFacts
	f.OS.ID, f.OS.Version = "debian", "12"
	f.IPs = []string{"10.0.0.1", "10.0.0.2"}
	f.Cores = 8
	var refreshed []bool
	env := &Env{Facts: func(ctx context.Context, refresh bool) (any, error) {
		refreshed = append(refreshed, refresh)
		return f, nil
	}}

	if res := mustRun(t, env, "facts.get", ``); !reflect.DeepEqual(res, f) {
		t.Fatalf("facts.get = %#v", res)
	}
	if res := mustRun(t, env, "facts.get", `{"path": "os:id"}`); res != "debian" {
		t.Fatalf("facts.get os:id = %#v", res)
	}
	if res := mustRun(t, env, "facts.get", `["ips:1"]`); res != "10.0.0.2" {
		t.Fatalf("facts.get ips:1 = %#v", res)
	}
	res := mustRun(t, env, "facts.get", `{"path": "cores"}`)
	if b, _ := json.Marshal(res); string(b) != "8" {
		t.Fatalf("facts.get cores = %s", b)
	}
	_, err := run(t, env, "facts.get", `{"path": "os:kernel"}`)
	wantCode(t, err, CodeBadArgs, `"kernel"`, "available: id, version")
	_, err = run(t, env, "facts.get", `{"path": "ips:7"}`)
	wantCode(t, err, CodeBadArgs, `"7"`)
	_, err = run(t, env, "facts.get", `{"path": "cores:x"}`)
	wantCode(t, err, CodeBadArgs, "cannot descend")

	if res := mustRun(t, env, "facts.refresh", ``); !reflect.DeepEqual(res, f) {
		t.Fatalf("facts.refresh = %#v", res)
	}
	if !reflect.DeepEqual(refreshed, []bool{false, false, false, false, false, false, false, true}) {
		t.Errorf("refresh flags = %v", refreshed)
	}

	// Map facts and errors from the provider.
	env.Facts = func(ctx context.Context, refresh bool) (any, error) {
		return map[string]any{"a": map[string]string{"b": "c"}}, nil
	}
	if res := mustRun(t, env, "facts.get", `{"path": "a:b"}`); res != "c" {
		t.Fatalf("map facts = %#v", res)
	}
	env.Facts = func(ctx context.Context, refresh bool) (any, error) { return nil, errors.New("collector broke") }
	_, err = run(t, env, "facts.refresh", ``)
	wantCode(t, err, CodeFailed, "collector broke")

	_, err = run(t, nil, "facts.get", ``)
	wantCode(t, err, CodeFailed, "not available")
}

func TestDurationArg(t *testing.T) {
	cases := map[string]time.Duration{
		`"1m30s"`: 90 * time.Second,
		`"300ms"`: 300 * time.Millisecond,
		`2`:       2 * time.Second,
		`0.5`:     500 * time.Millisecond,
		`"1.5"`:   1500 * time.Millisecond,
	}
	for in, want := range cases {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s -> %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{`"abc"`, `true`, `-1`, `"-5s"`, `{}`, `1e300`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s: expected error, got %v", in, time.Duration(d))
		}
	}
}
