// Package modtest builds a mod.Env for the state modules' tests: a
// temporary root, facts, and a Run that executes real processes (found on
// PATH, so a test can put stand-ins for systemctl or apt-get first on it).
package modtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/peel/state/mod"
)

// Exec runs c as a real process. A non-zero exit is an Output with its
// code, not an error; an error means the program could not be run.
func Exec(ctx context.Context, c mod.Command) (mod.Output, error) {
	if len(c.Argv) == 0 {
		return mod.Output{}, errors.New("modtest: empty command")
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = bytes.NewReader(c.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := mod.Output{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		out.Code = ee.ExitCode()
		return out, nil
	}
	return out, err
}

// Env is an Env rooted in a new temporary directory, with Debian facts and
// Exec as Run.
func Env(t testing.TB) *mod.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return &mod.Env{
		Ctx:   ctx,
		Root:  t.TempDir(),
		ID:    "peel1",
		Facts: map[string]any{"os": map[string]any{"id": "debian", "id_like": []any{}}},
		Run:   Exec,
	}
}

// StandIn writes an executable script named name into a directory put
// first on PATH for the rest of the test, and returns that directory.
func StandIn(t testing.TB, dir, name, script string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
		t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Tool installs the stand-in script at path (a test's testdata file)
// first on PATH under each of names, gives it a new state directory in
// the environment variable stateVar, and returns that directory.
func Tool(t testing.TB, stateVar, path string, names ...string) string {
	t.Helper()
	state := t.TempDir()
	t.Setenv(stateVar, state)
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := ""
	for _, n := range names {
		dir = StandIn(t, dir, n, string(script))
	}
	return state
}

// Lookup is the entry a module's Register adds under name.
func Lookup(t testing.TB, register func(*mod.Table), name string) mod.Entry {
	t.Helper()
	tab := mod.NewTable()
	register(tab)
	e, ok := tab.Lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	return e
}

// Calls reads the log a stand-in appends its argv to (one line a call),
// returning the lines whose first word is prog.
func Calls(t testing.TB, log, prog string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && strings.HasPrefix(l, prog+" ") || l == prog {
			out = append(out, l)
		}
	}
	return out
}
