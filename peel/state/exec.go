package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/zester-io/zester/peel/state/mod"
)

// MaxCommandOutput caps what a state's command keeps of each stream.
const MaxCommandOutput = 1 << 20

// DefaultCommandTimeout bounds a command that gives no timeout: a state
// run must end.
const DefaultCommandTimeout = time.Hour

// capped keeps the first max bytes written.
type capped struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.cut = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	if c.cut {
		return c.buf.String() + "\n[output truncated]"
	}
	return c.buf.String()
}

// Exec runs a module's command: PATH lookup, extra environment, stdin,
// its own process group (killed whole on timeout or cancel), output capped
// per stream, and runas through setuid/setgid (only root can). A non-zero
// exit is a Code, not an error; an error means the command did not run or
// was killed.
func Exec(ctx context.Context, c mod.Command) (mod.Output, error) {
	if len(c.Argv) == 0 {
		return mod.Output{}, errors.New("empty command")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if c.User != "" {
		cred, env, err := credential(c.User)
		if err != nil {
			return mod.Output{}, err
		}
		cmd.SysProcAttr.Credential = cred
		cmd.Env = append(cmd.Env, env...)
	}
	stdout, stderr := &capped{max: MaxCommandOutput}, &capped{max: MaxCommandOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	out := mod.Output{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		out.Code = -1
		return out, fmt.Errorf("command %q killed: %w", c.Argv[0], ctx.Err())
	case errors.As(err, &ee):
		out.Code = ee.ExitCode()
		if out.Code < 0 {
			return out, fmt.Errorf("command %q: %w", c.Argv[0], err)
		}
	default:
		out.Code = -1
		return out, fmt.Errorf("command %q: %w", c.Argv[0], err)
	}
	return out, nil
}

// credential is runas: the user's uid, primary and supplementary groups,
// and the environment a login would give (HOME, USER, LOGNAME). Running as
// oneself needs no credential.
func credential(name string) (*syscall.Credential, []string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, nil, fmt.Errorf("runas %s: no such user", name)
		}
	}
	env := []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username}
	if u.Uid == strconv.Itoa(os.Getuid()) {
		return nil, env, nil
	}
	if os.Getuid() != 0 {
		return nil, nil, fmt.Errorf("runas %s: only root can run commands as another user", name)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, env, nil
}
