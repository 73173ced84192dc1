// Package pkitest starts real nats-servers in operator mode from a Zester PKI
// and connects clients that record the permission violations the server
// reports, for tests of what each credential may and may not do.
package pkitest

import (
	"context"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/topology"
)

// HangGuard bounds every wait of this package; tests wait on state, and this
// only stops a broken one.
const HangGuard = 30 * time.Second

// StartServer starts one embedded nats-server with JetStream on a loopback
// port, in operator mode with p (pki.ConfigureServer), and the partition
// mapping of p's account JWT. It is shut down by t.Cleanup.
func StartServer(t testing.TB, p *pki.PKI) *topology.Server {
	t.Helper()
	var cerr error
	s, err := topology.StartServer(topology.ServerConfig{
		Name:     "pki",
		Listen:   "127.0.0.1:-1",
		StoreDir: filepath.Join(t.TempDir(), "nats"),
		Tune:     func(o *server.Options) { cerr = p.ConfigureServer(o) },
	})
	if cerr != nil {
		t.Fatalf("configure server: %v", cerr)
	}
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Conn is a client connection that records permission violations.
type Conn struct {
	*nats.Conn
	JS jetstream.JetStream

	mu         sync.Mutex
	violations []string
	changed    chan struct{} // closed and replaced on every new violation
}

// Connect connects to url with auth (nats.UserCredentials, nats.UserJWTAndSeed)
// and the inbox prefix the credential's role must use (pki.InboxPrefix), and
// records every permission violation. Closed by t.Cleanup.
func Connect(t testing.TB, url string, inboxPrefix string, auth ...nats.Option) *Conn {
	t.Helper()
	c, err := Dial(url, inboxPrefix, auth...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Dial is Connect that returns the error (for tests that expect one).
func Dial(url string, inboxPrefix string, auth ...nats.Option) (*Conn, error) {
	c := &Conn{changed: make(chan struct{})}
	opts := append([]nats.Option{
		nats.Timeout(10 * time.Second),
		nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.record(err) }),
	}, auth...)
	if inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(inboxPrefix))
	}
	nc, js, err := daemon.ConnectJS(url, opts...)
	if err != nil {
		return nil, err
	}
	c.Conn, c.JS = nc, js
	return c, nil
}

func (c *Conn) record(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, err.Error())
	close(c.changed)
	c.changed = make(chan struct{})
}

// violationRe is how nats-server words a denial (nats.go passes it on).
var violationRe = regexp.MustCompile(`Permissions Violation for (?:Publish|Subscription) to "([^"]+)"`)

// Denied reports whether the server has refused subject on this connection.
func (c *Conn) Denied(subject string) bool {
	return c.DeniedMatch(func(s string) bool { return s == subject })
}

// DeniedMatch reports whether the server has refused a subject that match
// accepts.
func (c *Conn) DeniedMatch(match func(subject string) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deniedLocked(match)
}

func (c *Conn) deniedLocked(match func(string) bool) bool {
	for _, v := range c.violations {
		if m := violationRe.FindStringSubmatch(v); m != nil && match(m[1]) {
			return true
		}
	}
	return false
}

// Violations returns every violation recorded so far.
func (c *Conn) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// WaitDenied waits until the server reports a violation for subject.
func (c *Conn) WaitDenied(t testing.TB, subject string) {
	t.Helper()
	c.WaitDeniedMatch(t, subject, func(s string) bool { return s == subject })
}

// WaitDeniedMatch waits until the server reports a violation for a subject
// that match accepts (what describes it in the failure message).
func (c *Conn) WaitDeniedMatch(t testing.TB, what string, match func(string) bool) {
	t.Helper()
	timer := time.NewTimer(HangGuard)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if c.deniedLocked(match) {
			c.mu.Unlock()
			return
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("no permission violation for %s within %s; seen: %q", what, HangGuard, c.Violations())
		}
	}
}

// ExpectDenied runs act, which must make the client send something on
// subject (it may block, e.g. a request the server drops: it gets a context
// that is cancelled once the denial is seen), and waits for the server's
// permission violation for subject.
func (c *Conn) ExpectDenied(t testing.TB, subject string, act func(ctx context.Context)) {
	t.Helper()
	c.ExpectDeniedMatch(t, subject, func(s string) bool { return s == subject }, act)
}

// ExpectDeniedMatch is ExpectDenied for a subject that match accepts.
func (c *Conn) ExpectDeniedMatch(t testing.TB, what string, match func(string) bool, act func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); act(ctx) }()
	c.WaitDeniedMatch(t, what, match)
	cancel()
	select {
	case <-done:
	case <-time.After(HangGuard):
		t.Fatalf("action on %s did not return after its context was cancelled", what)
	}
}

// PublishDenied publishes data on subject and waits for the denial.
func (c *Conn) PublishDenied(t testing.TB, subject string) {
	t.Helper()
	c.ExpectDenied(t, subject, func(context.Context) {
		if err := c.Publish(subject, []byte("x")); err != nil {
			t.Errorf("publish %s: %v", subject, err)
		}
		c.Flush()
	})
}

// SubscribeDenied subscribes to subject and waits for the denial.
func (c *Conn) SubscribeDenied(t testing.TB, subject string) {
	t.Helper()
	c.ExpectDenied(t, subject, func(context.Context) {
		if _, err := c.SubscribeSync(subject); err != nil {
			t.Errorf("subscribe %s: %v", subject, err)
		}
		c.Flush()
	})
}

// Request sends a request and returns the reply (bounded by HangGuard).
func (c *Conn) Request(subject string, data []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	return c.RequestWithContext(ctx, subject, data)
}

// Ctx is a context bounded by HangGuard, cancelled by t.Cleanup.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	t.Cleanup(cancel)
	return ctx
}

// Responder answers every request on subject with "ok" on conn c (a
// master-like principal), until t ends.
func Responder(t testing.TB, c *Conn, subject string) {
	t.Helper()
	sub, err := c.Subscribe(subject, func(m *nats.Msg) { m.Respond([]byte("ok")) })
	if err != nil {
		t.Fatalf("responder %s: %v", subject, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("responder %s: %v", subject, err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
}
