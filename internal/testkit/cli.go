package testkit

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// Main is the shape of a command-line entry point that runs in process
// (internal/cli.Main): arguments, outputs, exit code. Taking it as a value
// keeps this package below the CLI, whose own tests use it too.
type Main func(args []string, stdout, stderr io.Writer) int

// Run runs main with args in process, as the binary would, and returns its
// exit code and outputs.
func Run(main Main, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Running is a command-line run in the background; Out and Err may be read
// while it runs.
type Running struct {
	Out, Err SyncBuffer
	code     int
	done     chan struct{}
}

// Start runs main with args in the background.
func Start(main Main, args ...string) *Running {
	r := &Running{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = main(args, &r.Out, &r.Err)
	}()
	return r
}

// Done is closed when the run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Wait returns the exit code; within is a hang guard.
func (r *Running) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(within):
		t.Fatalf("still running after %s\nstdout:\n%s\nstderr:\n%s", within, r.Out.String(), r.Err.String())
		return 0
	}
}
