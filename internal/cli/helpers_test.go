package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/topology"
)

// zester runs the CLI in-process, as the binary would.
func zester(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(append([]string{"--nats", url}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// lockedBuffer is a bytes.Buffer a test reads while the CLI writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cliRun is a CLI invocation running in the background.
type cliRun struct {
	out, err lockedBuffer
	code     int
	done     chan struct{}
}

func startZester(url string, args ...string) *cliRun {
	r := &cliRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = cli.Main(append([]string{"--nats", url}, args...), &r.out, &r.err)
	}()
	return r
}

// wait returns the exit code; the bound is a hang guard.
func (r *cliRun) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(within):
		t.Fatalf("zester still running after %s\nstdout:\n%s\nstderr:\n%s", within, r.out.String(), r.err.String())
		return 0
	}
}

func single(t *testing.T) *topology.Server {
	t.Helper()
	s, err := topology.Single(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitFor polls an observable condition; d is a hang guard.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPeelWith runs a real peel with its own function registry (peeltest
// starts peels with the built-in one).
func startPeelWith(t *testing.T, cfg peel.Config, reg *funcs.Registry) *peel.Peel {
	t.Helper()
	p, err := peel.New(cfg, peel.Options{Logger: testkit.Logger().With("peel", cfg.ID), NoHTTP: true, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() { p.Run(ctx); close(exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("peel %s did not stop", cfg.ID)
		}
	})
	waitFor(t, "peel "+cfg.ID+" ready", 30*time.Second, p.Ready)
	return p
}

// summary is the last line of --json output.
type summary struct {
	Summary struct {
		JID       string   `json:"jid"`
		Status    string   `json:"status"`
		Expected  int      `json:"expected"`
		Returned  int      `json:"returned"`
		Failed    []string `json:"failed"`
		Missing   []string `json:"missing"`
		Late      []string `json:"late"`
		NotStored int      `json:"not_stored"`
		Unknown   []string `json:"unknown"`
	} `json:"summary"`
}

func lastSummary(t *testing.T, out string) summary {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace([]byte(out)), []byte("\n"))
	var s summary
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil || s.Summary.JID == "" {
		t.Fatalf("no JSON summary in %q: %v", out, err)
	}
	return s
}
