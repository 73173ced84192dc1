// Package peeltest starts real peels for tests.
package peeltest

import (
	"testing"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
)

// Handle is a running test peel.
type Handle struct {
	*peel.Peel
	*testkit.Daemon
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
	h := launch(t, cfg, opts)
	h.WaitReady(t, 30*time.Second)
	return h
}

// Launch runs a peel without waiting for it (one that must first be
// accepted, say); WaitReady waits.
func Launch(t testing.TB, cfg peel.Config) *Handle { t.Helper(); return launch(t, cfg, peel.Options{}) }

func launch(t testing.TB, cfg peel.Config, opts peel.Options) *Handle {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testkit.Logger().With("peel", cfg.ID)
	}
	opts.NoHTTP = opts.NoHTTP || cfg.HTTP == ""
	p, err := peel.New(cfg, opts)
	if err != nil {
		t.Fatalf("peel %s: %v", cfg.ID, err)
	}
	return &Handle{Peel: p, Daemon: testkit.RunDaemon(t, "peel "+cfg.ID, p.Run)}
}

// WaitReady waits until the peel has published its facts (a hang guard of
// within), failing the test if it stops first.
func (h *Handle) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	h.AwaitReady(t, within, h.Ready)
}

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
