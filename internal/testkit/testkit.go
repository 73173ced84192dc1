// Package testkit is the test support every package shares: a logger for
// tests, an in-process nats-server launcher, connections, waits on observable
// state, the secure default (a PKI and an operator-mode server) and a buffer
// safe to read while it is written. It sits below both daemons: it imports
// neither master/ nor peel/, so the daemons' own test helpers
// (master/mastertest, peel/peeltest) build on it without importing each
// other. The in-process CLI runner built on it is internal/cli/clitest.
//
// Everything that starts something stops it with t.Cleanup, in the shape of
// Nomad's TestServer; every wait polls a condition a test can observe and
// takes its bound as a hang guard only.
package testkit

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/topology"
)

// Logger returns a logger for tests: quiet unless ZESTER_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("ZESTER_TEST_LOG") != "" {
		return obs.NewLogger(os.Stderr, slog.LevelDebug)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Server starts one in-process nats-server with JetStream on a random
// loopback port (topology.Single), its store in t.TempDir(), shut down by
// t.Cleanup.
func Server(t testing.TB) *topology.Server {
	t.Helper()
	return ServerIn(t, t.TempDir())
}

// ServerIn is Server with the store under dir/nats, for tests that reach
// into the store (wipe it, say).
func ServerIn(t testing.TB, dir string) *topology.Server {
	t.Helper()
	s, err := topology.Single(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartServer starts one in-process nats-server with cfg (its own options:
// no JetStream, users, TLS, …), shut down by t.Cleanup. Server is the
// default one.
func StartServer(t testing.TB, cfg topology.ServerConfig) *topology.Server {
	t.Helper()
	s, err := topology.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to url (reconnecting for ever unless opts say otherwise),
// closed by t.Cleanup.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream is a JetStream context on a new connection to url (Connect).
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	_, js := ConnectJS(t, url, opts...)
	return js
}

// ConnectJS is a new connection to url (Connect) and a JetStream context on
// it.
func ConnectJS(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := Connect(t, url, opts...)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Eventually waits until cond holds and returns how long that took; within
// is a hang guard, past which the test fails naming what it waited for.
// cond reads observable state (a record, a file, a metric, a command's exit
// code); it may call t.Fatal itself. The looks are spaced by a backoff from
// 5 ms up to 200 ms (internal/backoff, full jitter): quick when the state is
// near, few when a look is costly (a command run per look).
func Eventually(t testing.TB, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	return Until(t, within, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
}

// Until is Eventually for a check that says what it sees: check returns nil
// once the state is there, else an error describing the state it found,
// and the test fails with the last of those once within has passed.
func Until(t testing.TB, within time.Duration, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	wait := backoff.New(5*time.Millisecond, 200*time.Millisecond)
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%v: not within %s", err, within)
		}
		time.Sleep(wait.Next())
	}
}
