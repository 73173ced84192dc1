// Package peeltest starts real peels for tests.
package peeltest

import (
	"context"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
)

// Handle is a running test peel.
type Handle struct {
	*peel.Peel
	cancel context.CancelFunc
	exited chan struct{}
	err    error
}

// Stop stops the peel.
func (h *Handle) Stop() error {
	h.cancel()
	<-h.exited
	return h.err
}

// Config returns a peel config for tests: its data under t.TempDir(), in
// insecure mode (against the open servers of the topology launchers).
// SecureConfig is the secure default.
func Config(t testing.TB, id string, urls ...string) peel.Config {
	c := peel.DefaultConfig()
	c.Insecure = true
	c.ID = id
	c.HTTP = ""
	c.NATS.URL = config.URLs(urls)
	c.DataDir = t.TempDir()
	return c
}

// Start runs a peel and waits until it has published its facts.
func Start(t testing.TB, cfg peel.Config) *Handle {
	t.Helper()
	return StartWith(t, cfg, peel.Options{})
}

// StartWith is Start with options (a function registry, say); the logger
// and NoHTTP default as in Start.
func StartWith(t testing.TB, cfg peel.Config, opts peel.Options) *Handle {
	t.Helper()
	h := LaunchWith(t, cfg, opts)
	h.WaitReady(t, 30*time.Second)
	return h
}

// Launch runs a peel without waiting for it (one that must first be
// accepted, say); WaitReady waits.
func Launch(t testing.TB, cfg peel.Config) *Handle {
	t.Helper()
	return LaunchWith(t, cfg, peel.Options{})
}

// LaunchWith is Launch with options.
func LaunchWith(t testing.TB, cfg peel.Config, opts peel.Options) *Handle {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testkit.Logger().With("peel", cfg.ID)
	}
	opts.NoHTTP = opts.NoHTTP || cfg.HTTP == ""
	p, err := peel.New(cfg, opts)
	if err != nil {
		t.Fatalf("peel %s: %v", cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handle{Peel: p, cancel: cancel, exited: make(chan struct{})}
	go func() { h.err = p.Run(ctx); close(h.exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("peel %s did not stop", cfg.ID)
		}
	})
	return h
}

// WaitReady waits until the peel has published its facts (a hang guard of
// within), failing the test if it stops first.
func (h *Handle) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !h.Ready() {
		select {
		case <-h.exited:
			t.Fatalf("peel %s stopped: %v", h.ID(), h.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("peel %s not ready after %s", h.ID(), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exited is closed when the peel's Run has returned; Err is then its error.
func (h *Handle) Exited() <-chan struct{} { return h.exited }

// Err is what Run returned (valid once Exited is closed).
func (h *Handle) Err() error { return h.err }

// SecureConfig returns a peel config for tests against the operator-mode
// server of s: credentials issued for id with `pki peel add` (s.PeelCreds).
func SecureConfig(t testing.TB, s *testkit.Secure, id string) peel.Config {
	c := peel.DefaultConfig()
	c.ID = id
	c.HTTP = ""
	c.NATS.URL = config.URLs{s.URL}
	c.NATS.Creds = s.PeelCreds(t, id)
	c.DataDir = t.TempDir()
	return c
}
