package peel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/syncio"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// syncBuffer is a log sink that tests read while the peel writes.
type syncBuffer struct{ syncio.Buffer }

// lines returns the decoded JSON log lines whose msg starts with prefix.
func (s *syncBuffer) lines(prefix string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), prefix) {
			out = append(out, m)
		}
	}
	return out
}

// A peel whose server is dead does not hammer it: after every failed attempt
// it waits the reconnect backoff's delay (full jitter, growing up to
// nats.reconnect_max_delay), so the attempts a listener sees are few and
// their gaps grow far past the old fixed 1–3 s. It logs the state changes
// once each, with the URL, not every attempt.
//
// The backoff's jitter comes from a fixed seed, so the delays the peel must
// wait are known: each gap between two attempts the listener counts is at
// least that delay (a loaded machine only makes gaps longer).
func TestPeel_DeadServer_BacksOffAndLogsOnce(t *testing.T) {
	t.Parallel()
	const maxDelay = 4 * time.Second
	const seed = 1
	// The delays the peel will wait, from the same backoff and seed. Seed 1
	// gives two late delays above 3 s: a fixed 1–3 s interval cannot pass.
	exp := backoff.New(125*time.Millisecond, maxDelay, backoff.WithRand(rand.NewPCG(seed, seed)))
	var want []time.Duration
	for i := 0; i < 7; i++ {
		want = append(want, exp.Next())
	}
	if want[5] < 3*time.Second || want[6] < 3*time.Second {
		t.Fatalf("seed %d no longer gives late delays above 3 s (%v): pick another", seed, want)
	}

	// A "server" that accepts TCP and closes at once: every connection
	// attempt is one accept.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepts []time.Time
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepts = append(accepts, time.Now())
			mu.Unlock()
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	url := "nats://" + addr

	cfg := peeltest.Config(t, "dead-server.example.com", url)
	cfg.NATS.ReconnectMaxDelay = config.Dur(maxDelay)
	var logs syncBuffer
	p, err := peel.New(cfg, peel.Options{
		Logger:        slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		NoHTTP:        true,
		ReconnectRand: rand.NewPCG(seed, seed),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("peel did not stop")
		}
	})

	nAccepts := func() int { mu.Lock(); defer mu.Unlock(); return len(accepts) }
	testkit.Eventually(t, "8 connection attempts", 90*time.Second, func() bool { return nAccepts() >= len(want)+1 })
	ln.Close()
	mu.Lock()
	got := append([]time.Time(nil), accepts...)
	mu.Unlock()
	for i, d := range want {
		gap := got[i+1].Sub(got[i])
		if gap < d-2*time.Millisecond {
			t.Errorf("attempt %d came %v after attempt %d; the backoff's delay was %v", i+2, gap, i+1, d)
		}
	}
	var total time.Duration
	for _, d := range want {
		total += d
	}
	t.Logf("8 attempts over %v (delays %v, sum %v)", got[len(want)].Sub(got[0]).Round(time.Millisecond), want, total.Round(time.Millisecond))

	// Logged once, with the URL; no line per attempt.
	if l := logs.lines("nats not reachable"); len(l) != 1 || l[0]["url"] != url || l[0]["level"] != "WARN" {
		t.Errorf("want one WARN \"nats not reachable\" with url %s, got %v\n%s", url, l, logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n > 3 {
		t.Errorf("%d log lines for %d attempts, want the state changes only:\n%s", n, len(got), logs.String())
	}

	// A real server on that address: the peel connects and says where; when
	// the server goes away the peel names the server it lost (the
	// connection itself no longer reports it).
	srv, err := topology.StartServer(topology.ServerConfig{Name: "back", Listen: addr, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "nats connected logged", 60*time.Second, func() bool { return len(logs.lines("nats connected")) == 1 })
	if l := logs.lines("nats connected"); l[0]["url"] != url {
		t.Errorf("nats connected: url %v, want %s", l[0]["url"], url)
	}
	testkit.Eventually(t, "peel running logged", 60*time.Second, func() bool { return len(logs.lines("peel running")) == 1 })
	if l := logs.lines("peel running"); l[0]["url"] != url {
		t.Errorf("peel running: url %v, want %s", l[0]["url"], url)
	}
	srv.Shutdown()
	testkit.Eventually(t, "nats disconnected logged", 60*time.Second, func() bool { return len(logs.lines("nats disconnected")) == 1 })
	if l := logs.lines("nats disconnected"); l[0]["url"] != url || l[0]["max_delay"] == nil {
		t.Errorf("nats disconnected: %v, want url %s and max_delay", l[0], url)
	}
}
