package peel

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
)

// connState paces the peel's connection attempts and logs the connection's
// state changes, once each.
//
// A fleet loses a server together and must not come back together: after
// each failed pass over the server list the peel waits a delay drawn with
// full jitter from a window that doubles from reconnectMinDelay up to
// nats.reconnect_max_delay (30 s by default), and starts again from the
// smallest window once connected. 100,000 peels against a dead server then
// make about 100,000 / 15 s ≈ 7,000 attempts per second at the cap instead of
// one each every 1–2 s (~70,000/s). Attempts themselves are logged at debug
// level only: a peel cut off for an hour writes two lines, not thousands.
type connState struct {
	log  *slog.Logger
	urls string // configured URLs, redacted: what the peel is trying to reach
	wait *backoff.Backoff

	mu       sync.Mutex
	current  string    // URL of the server of the live connection ("" while down)
	downAt   time.Time // when the connection was lost (zero while up)
	attempts int       // failed attempts since downAt
}

// reconnectMinDelay is the first window of the backoff: a thirty-second of
// the cap, between 100 ms and 1 s.
func reconnectMinDelay(maxDelay time.Duration) time.Duration {
	return min(max(maxDelay/32, 100*time.Millisecond), time.Second)
}

func newConnState(log *slog.Logger, urls config.URLs, maxDelay time.Duration, src rand.Source) *connState {
	var opts []backoff.Option
	if src != nil {
		opts = append(opts, backoff.WithRand(src))
	}
	return &connState{
		log:    log,
		urls:   config.Redact(urls.String()),
		wait:   backoff.New(reconnectMinDelay(maxDelay), maxDelay, opts...),
		downAt: time.Now(),
	}
}

// options are the nats.go options that pace the attempts.
func (cs *connState) options() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(func(int) time.Duration { return cs.wait.Next() }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			cs.mu.Lock()
			cs.attempts++
			n := cs.attempts
			cs.mu.Unlock()
			cs.log.Debug("nats connection attempt failed", "url", cs.urls, "attempt", n, "err", err)
		}),
	}
}

// notReachable logs, once at start, that no server answered the first try.
func (cs *connState) notReachable() {
	cs.log.Warn("nats not reachable yet; retrying with backoff", "url", cs.urls, "max_delay", cs.wait.Max())
}

// connected records a (re)connection and returns how long the peel was cut off.
func (cs *connState) connected(nc *nats.Conn) time.Duration {
	cs.wait.Reset()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.current = nc.ConnectedUrlRedacted()
	down := time.Since(cs.downAt)
	cs.downAt, cs.attempts = time.Time{}, 0
	return down
}

// disconnected records the loss of the connection and returns the URL of
// the server that was lost (the connection no longer reports it).
func (cs *connState) disconnected() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	lost := cs.current
	cs.current, cs.downAt, cs.attempts = "", time.Now(), 0
	if lost == "" {
		lost = cs.urls
	}
	return lost
}

// url is the server of the live connection, or the configured URLs.
func (cs *connState) url() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.current != "" {
		return cs.current
	}
	return cs.urls
}
