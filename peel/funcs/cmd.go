package funcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DefaultCmdTimeout is the timeout of cmd.run and cmd.script when the job
// does not set one.
const DefaultCmdTimeout = 60 * time.Second

// waitDelay bounds how long we wait for output pipes to close after the
// command exited or was killed (a daemonised grandchild may keep them open).
const waitDelay = time.Second

// defaultPath is the PATH of the minimal command environment.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CmdResult is the result of cmd.run and cmd.script.
type CmdResult struct {
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Retcode    int    `json:"retcode"`
	Pid        int    `json:"pid"`
	DurationMS int64  `json:"duration_ms"`
	Truncated  bool   `json:"truncated"`
	TimedOut   bool   `json:"timed_out"`
	// Signal names the signal that terminated the command, if any.
	Signal string `json:"signal,omitempty"`
	// Note explains truncation and kills, e.g.
	// "stdout cut at 1048576 of 5000000 bytes".
	Note string `json:"note,omitempty"`
}

type cmdArgs struct {
	Cmd  string   `json:"cmd"`
	Argv []string `json:"argv"`
	procArgs
}

type scriptArgs struct {
	Script      string   `json:"script"`
	Interpreter string   `json:"interpreter"`
	Args        []string `json:"args"`
	procArgs
}

// procArgs are the arguments of how a process runs, the same for cmd.run
// and cmd.script. Embedded, they are arguments of those functions (and
// fieldNames lists them in place).
type procArgs struct {
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
	Timeout *Duration         `json:"timeout"`
	Stdin   *string           `json:"stdin"`
}

// procSpec describes one process to run.
type procSpec struct {
	argv    []string
	dir     string
	env     []string
	timeout time.Duration
	stdin   *string
}

func cmdRun(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a cmdArgs
	if err := decodeArgs(args, &a, "cmd", "cwd"); err != nil {
		return nil, err
	}
	var argv []string
	switch {
	case a.Cmd != "" && len(a.Argv) > 0:
		return nil, badArgs("arguments \"cmd\" and \"argv\" are mutually exclusive")
	case a.Cmd != "":
		argv = []string{"/bin/sh", "-c", a.Cmd}
	case len(a.Argv) > 0:
		if a.Argv[0] == "" {
			return nil, badArgs("argument \"argv\": first element (the program) is empty")
		}
		argv = a.Argv
	default:
		return nil, badArgs("one of the arguments \"cmd\" or \"argv\" is required")
	}
	spec, err := newSpec(argv, a.procArgs)
	if err != nil {
		return nil, err
	}
	return runProcess(ctx, spec, env.maxOutput()), nil
}

func cmdScript(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a scriptArgs
	if err := decodeArgs(args, &a, "script", "interpreter"); err != nil {
		return nil, err
	}
	if a.Script == "" {
		return nil, badArgs("argument \"script\" is required")
	}
	interp := strings.Fields(a.Interpreter)
	if len(interp) == 0 {
		interp = []string{"/bin/sh"}
	}
	// Validate everything before touching the filesystem.
	spec, err := newSpec(interp, a.procArgs)
	if err != nil {
		return nil, err
	}

	f, err := os.CreateTemp("", "zester-script-*")
	if err != nil {
		return nil, fmt.Errorf("creating script file: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	if err := f.Chmod(0o700); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod script file: %w", err)
	}
	if _, err := f.WriteString(a.Script); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing script file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing script file: %w", err)
	}

	spec.argv = append(append(spec.argv, path), a.Args...)
	return runProcess(ctx, spec, env.maxOutput()), nil
}

// newSpec validates the common command arguments.
func newSpec(argv []string, a procArgs) (*procSpec, error) {
	for i, s := range argv {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, badArgs("argument \"argv\": element %d contains a NUL byte", i)
		}
	}
	if strings.IndexByte(a.Cwd, 0) >= 0 {
		return nil, badArgs("argument \"cwd\": contains a NUL byte")
	}
	env, err := buildEnv(a.Env)
	if err != nil {
		return nil, err
	}
	t := DefaultCmdTimeout
	if a.Timeout != nil && *a.Timeout > 0 {
		t = time.Duration(*a.Timeout)
	}
	return &procSpec{argv: argv, dir: a.Cwd, env: env, timeout: t, stdin: a.Stdin}, nil
}

// buildEnv returns the minimal environment plus the job's variables (which
// override the minimal ones).
func buildEnv(extra map[string]string) ([]string, error) {
	vars := map[string]string{
		"PATH": defaultPath,
		"HOME": "/",
		"LANG": "C",
	}
	if h := os.Getenv("HOME"); h != "" {
		vars["HOME"] = h
	}
	for _, k := range []string{"USER", "LOGNAME", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for k, v := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, badArgs("argument \"env\": invalid variable name %q", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, badArgs("argument \"env\": value of %q contains a NUL byte", k)
		}
		vars[k] = v
	}
	keys := slices.Sorted(maps.Keys(vars))
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vars[k]
	}
	return env, nil
}

func envLookup(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath resolves a program name without '/' in the given PATH value (the
// command's environment, not the agent's).
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			if !strings.Contains(p, "/") {
				p = "./" + p // relative PATH entry; keep it a path
			}
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// runProcess runs spec in its own process group, capturing output up to
// limit bytes per stream. On timeout or cancellation of ctx the whole
// process group is killed and the result reports TimedOut with retcode -1.
// It never returns an error: failures to start are reported in the result
// (retcode 127 or 126, message in stderr).
func runProcess(ctx context.Context, spec *procSpec, limit int) *CmdResult {
	start := time.Now()
	res := &CmdResult{}

	if spec.dir != "" {
		// Check up front: a failing chdir in the child is otherwise reported
		// as "fork/exec /bin/sh: no such file or directory".
		if fi, err := os.Stat(spec.dir); err != nil {
			startFailed(res, 126, fmt.Errorf("cwd: %w", err))
			return res
		} else if !fi.IsDir() {
			startFailed(res, 126, fmt.Errorf("cwd %s: not a directory", spec.dir))
			return res
		}
	}
	path, err := lookPath(spec.argv[0], envLookup(spec.env, "PATH"))
	if err != nil {
		startFailed(res, 0, err)
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}

	runCtx, cancel := context.WithTimeout(ctx, spec.timeout)
	defer cancel()

	cmd := exec.CommandContext(runCtx, path, spec.argv[1:]...)
	cmd.Args[0] = spec.argv[0]
	cmd.Dir = spec.dir
	cmd.Env = spec.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.stdin != nil {
		cmd.Stdin = strings.NewReader(*spec.stdin)
	}
	stdout := &cappedBuffer{limit: limit}
	stderr := &cappedBuffer{limit: limit}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	var killed atomic.Bool
	cmd.Cancel = func() error {
		killed.Store(true)
		// The child called setpgid(0,0), so its pgid is its pid. Kill the
		// whole group so grandchildren die too.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		startFailed(res, 0, err)
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	res.Pid = cmd.Process.Pid
	waitErr := cmd.Wait()
	res.DurationMS = time.Since(start).Milliseconds()

	res.Stdout = stdout.String()
	res.Stderr = stderr.String()
	var notes []string
	if stdout.truncated() {
		res.Truncated = true
		notes = append(notes, fmt.Sprintf("stdout cut at %d of %d bytes", stdout.buf.Len(), stdout.total))
	}
	if stderr.truncated() {
		res.Truncated = true
		notes = append(notes, fmt.Sprintf("stderr cut at %d of %d bytes", stderr.buf.Len(), stderr.total))
	}

	// Cancel runs whenever the context ends before Wait has seen the exit,
	// which includes a command that had already exited: a peel paused
	// (SIGSTOP) past the deadline, or just slow, finds a zombie whose group
	// kill succeeds and kills nothing. Only a command that died of our
	// SIGKILL was killed; any other exit is the command's own result.
	diedOfKill := false
	if ps := cmd.ProcessState; ps != nil {
		res.Retcode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = unixSignalName(ws.Signal())
			diedOfKill = ws.Signal() == syscall.SIGKILL
		}
	} else {
		res.Retcode = -1
		diedOfKill = true // never reaped: treat as killed
	}
	if killed.Load() && diedOfKill {
		res.TimedOut = true
		res.Retcode = -1
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			notes = append(notes, "killed process group at the job's deadline")
		case ctx.Err() != nil:
			notes = append(notes, fmt.Sprintf("killed process group: job cancelled (%v)", ctx.Err()))
		default:
			notes = append(notes, fmt.Sprintf("killed process group after timeout of %s", spec.timeout))
		}
	}
	if errors.Is(waitErr, exec.ErrWaitDelay) {
		notes = append(notes, fmt.Sprintf("output pipes still open %s after exit (background process?); stopped reading", waitDelay))
	}
	res.Note = strings.Join(notes, "; ")
	return res
}

// startFailed fills res for a command that could not be started. code 0
// picks 127 for "not found" and 126 otherwise, like a shell.
func startFailed(res *CmdResult, code int, err error) {
	res.Retcode = code
	if code == 0 {
		res.Retcode = 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			res.Retcode = 127
		}
	}
	res.Stderr = err.Error()
	res.Note = "command could not be started"
}

// unixSignalName is the signal's name as the shell says it ("SIGKILL").
func unixSignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return s.String()
}

// cappedBuffer keeps the first limit bytes written to it and counts the
// total. Writes never fail, so the child is never blocked or killed by a
// full pipe.
type cappedBuffer struct {
	limit int
	buf   strings.Builder
	total int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := c.limit - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

func (c *cappedBuffer) truncated() bool { return c.total > int64(c.buf.Len()) }

// String returns the captured bytes; if the output was cut, an incomplete
// trailing UTF-8 sequence is dropped.
func (c *cappedBuffer) String() string {
	s := c.buf.String()
	if c.truncated() {
		s = string(trimIncompleteRune([]byte(s)))
	}
	return s
}

// trimIncompleteRune drops a trailing partial UTF-8 sequence (at most 3
// bytes) left by cutting a buffer at an arbitrary byte.
func trimIncompleteRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return b // ASCII: nothing partial after it
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}
