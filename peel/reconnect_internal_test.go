package peel

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/testkit"
)

func TestReconnectMinDelay(t *testing.T) {
	for _, c := range []struct{ cap, want time.Duration }{
		{time.Second, 100 * time.Millisecond},
		{4 * time.Second, 125 * time.Millisecond},
		{30 * time.Second, 937500 * time.Microsecond},
		{10 * time.Minute, time.Second},
	} {
		if got := reconnectMinDelay(c.cap); got != c.want {
			t.Errorf("reconnectMinDelay(%v) = %v, want %v", c.cap, got, c.want)
		}
	}
}

// The delays grow while the peel is cut off and start from the smallest
// window again once it is connected; the URL of a lost connection is the
// server's, not empty.
func TestConnState_ConnectedResetsAndNamesServer(t *testing.T) {
	srv := testkit.Server(t)
	cs := newConnState(slog.New(slog.NewTextHandler(io.Discard, nil)), config.URLs{srv.ClientURL(), "nats://b.example.com:4222"}, 4*time.Second, rand.NewPCG(1, 1))
	if got := cs.disconnected(); got != srv.ClientURL()+",nats://b.example.com:4222" {
		t.Errorf("disconnected() before any connection = %q, want the configured URLs", got)
	}
	for i := 0; i < 10; i++ {
		cs.wait.Next() // grown to the cap
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cs.connected(nc)
	for n := 0; n < 3; n++ {
		if d, c := cs.wait.Next(), cs.wait.Ceiling(n); d > c {
			t.Errorf("delay %d after connected() is %v, above its window %v: the backoff was not reset", n, d, c)
		}
	}
	if got := cs.url(); got != srv.ClientURL() {
		t.Errorf("url() while connected = %q, want %q", got, srv.ClientURL())
	}
	if got := cs.disconnected(); got != srv.ClientURL() {
		t.Errorf("disconnected() = %q, want the lost server %q", got, srv.ClientURL())
	}
}
