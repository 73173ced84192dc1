// Package backoff computes the delays of retry loops: exponential growth from
// a minimum to a cap, with full jitter, and a reset once the operation
// succeeds.
//
// Full jitter (the n-th delay is uniform in [0, min(cap, min·2ⁿ)]) is what
// keeps a fleet from retrying in step: when a server comes back, 100,000
// peels that lost it at the same instant spread their attempts over the whole
// window instead of arriving together every interval, and the window grows
// while the server stays away. A fixed interval with a small jitter keeps the
// storm's size and only blurs its edges. Every retry loop in Zester uses this
// package rather than a fixed interval.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff hands out the delays of one retry loop. It is safe for concurrent
// use (a NATS reconnect callback and the connect handler that resets it run
// on different goroutines).
type Backoff struct {
	min, max time.Duration

	mu  sync.Mutex
	n   int        // delays handed out since the last Reset
	rnd *rand.Rand // nil: the package's global source
}

// Option tunes a Backoff.
type Option func(*Backoff)

// WithRand draws the jitter from src instead of the global source, so tests
// get a deterministic sequence.
func WithRand(src rand.Source) Option {
	return func(b *Backoff) { b.rnd = rand.New(src) }
}

// New returns a Backoff whose first delay is at most min and whose delays
// never exceed max. A min of zero or less is taken as 1 ms, a max below min
// as min.
func New(min, max time.Duration, opts ...Option) *Backoff {
	if min <= 0 {
		min = time.Millisecond
	}
	if max < min {
		max = min
	}
	b := &Backoff{min: min, max: max}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Ceiling is the largest delay the n-th call of Next (0-based, counted from
// the last Reset) can return: min·2ⁿ, capped at max.
func (b *Backoff) Ceiling(n int) time.Duration {
	c := b.min
	for i := 0; i < n && c < b.max; i++ {
		if c > b.max/2 {
			return b.max
		}
		c *= 2
	}
	return min(c, b.max)
}

// Next returns the delay before the next attempt, uniform in
// [0, Ceiling(attempts so far)].
func (b *Backoff) Next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.delayLocked(b.n)
	if b.Ceiling(b.n) < b.max {
		b.n++
	}
	return d
}

// Delay is the delay before attempt n (0-based) of a loop that counts its
// own attempts (a NATS reconnect callback is handed the attempt number):
// uniform in [0, Ceiling(n)], without touching the count of Next.
func (b *Backoff) Delay(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.delayLocked(n)
}

func (b *Backoff) delayLocked(n int) time.Duration {
	c := b.Ceiling(n)
	if b.rnd != nil {
		return time.Duration(b.rnd.Int64N(int64(c) + 1))
	}
	return time.Duration(rand.Int64N(int64(c) + 1))
}

// Reset starts the growth again from min; call it after a success.
func (b *Backoff) Reset() {
	b.mu.Lock()
	b.n = 0
	b.mu.Unlock()
}

// Max is the cap of the delays.
func (b *Backoff) Max() time.Duration { return b.max }

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Retry returns it at once instead of trying
// again. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// Retry calls op until it returns nil, returns an error made with Permanent,
// or ctx ends, waiting b.Next() between attempts; the first attempt is
// immediate and a success resets b. It returns nil, the permanent error (its
// text and errors.Is/As see through the mark), or, when ctx ends first, op's
// last error (ctx's error when op never ran). Callers tell a give-up from a permanent failure
// by ctx.Err().
func Retry(ctx context.Context, b *Backoff, op func(context.Context) error) error {
	var last error
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			if last == nil {
				return err
			}
			return last
		}
		err := op(ctx)
		if err == nil {
			b.Reset()
			return nil
		}
		var p *permanent
		if errors.As(err, &p) {
			return err
		}
		last = err
		d := b.Next()
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}
