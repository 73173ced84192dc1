package testkit

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/backoff"
)

// Daemon is a component's Run(ctx) running in the background for a test
// (a master, a peel): stopped by t.Cleanup, or earlier by Stop. The test
// helpers of the daemons (mastertest, peeltest) embed it in their handles.
type Daemon struct {
	name   string
	cancel context.CancelFunc
	exited chan struct{}
	err    error
}

// RunDaemon runs run in the background under name (for messages). Cleanup
// cancels its context and waits for it to return (a hang guard of 20 s).
func RunDaemon(t testing.TB, name string, run func(context.Context) error) *Daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{name: name, cancel: cancel, exited: make(chan struct{})}
	go func() { d.err = run(ctx); close(d.exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	return d
}

// Stop cancels the daemon's context (a clean stop) and returns what Run
// returned.
func (d *Daemon) Stop() error {
	d.cancel()
	<-d.exited
	return d.err
}

// Exited is closed when Run has returned; Err is then its error.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Err is what Run returned (valid once Exited is closed).
func (d *Daemon) Err() error { return d.err }

// AwaitReady waits until ready holds. It fails the test when the daemon stops
// first, or when within (a hang guard) passes: then with every goroutine's
// stack, which shows what the daemon waits for.
func (d *Daemon) AwaitReady(t testing.TB, within time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := backoff.New(5*time.Millisecond, 100*time.Millisecond)
	for !ready() {
		select {
		case <-d.exited:
			t.Fatalf("%s stopped: %v", d.name, d.err)
		default:
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s not ready after %s; goroutines:\n%s", d.name, within, buf)
		}
		time.Sleep(wait.Next())
	}
}
