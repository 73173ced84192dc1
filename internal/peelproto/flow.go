package peelproto

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ---- flow control ----
//
// A stream takes what its ingest queue holds (nats-server's
// streamDefaultMaxQueueMsgs: 100,000 messages or 128 MiB per stream, the
// server options StreamMaxBufferedMsgs / StreamMaxBufferedSize) and refuses
// the rest with 429 "too many requests" (err_code 10167) without storing
// it. A fleet that answers a refusal by publishing again at once, and in
// step, keeps the queue full and is refused forever; one that publishes as
// much as it likes grows its own unacknowledged backlog without bound. So a
// peel, real or simulated, treats a refusal, an unanswered store (timeout)
// and a stalled async window as the server saying "slower": it retries with
// exponential backoff and full jitter (internal/backoff), halves the number
// of stores it keeps in flight (Window), and widens the window over which a
// fleet-wide republish spreads (Spreader).
//
// Nothing is lost, nothing is stored twice: a refused store was not stored
// and is sent again; a store that timed out may have been, and its retry is
// either refused as already stored (returns carry expected last subject
// sequence 0, see ReturnMsg) or an idempotent put of the same value (facts).

// ErrCodeTooManyRequests is nats-server's JSStreamTooManyRequests, the
// err_code of a publish refused because the stream's ingest queue is full
// (HTTP-like code 429). nats.go names no constant for it.
const ErrCodeTooManyRequests jetstream.ErrorCode = 10167

// IsTooManyRequests tells a store refused because the stream's ingest queue
// is full: nothing was stored, and sending it again later is safe.
func IsTooManyRequests(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == ErrCodeTooManyRequests || apiErr.Code == 429)
}

// Overloaded tells the errors that mean "the server is behind": a refusal
// (429), a store nobody acknowledged in time, and an async publisher stalled
// on its own full window. Each is a reason to slow down, and each is retried.
func Overloaded(err error) bool {
	return IsTooManyRequests(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}

// Retryable tells the failed stores worth sending again while connected:
// Overloaded ones, and those nobody answered (no responders while a stream
// elects a leader, no response from the stream).
func Retryable(err error) bool {
	return Overloaded(err) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Window bounds a publisher's unacknowledged stores and adapts the bound to
// what the server takes (AIMD, as TCP's congestion window): until the first
// refusal it grows by one per acknowledged store (doubling per window: a
// publisher that starts small finds its rate in a few round trips), after
// that by one for every full window of acknowledged stores, and it halves
// when a store is refused or times out, never below one nor above its
// ceiling. A halving is taken once per window: the stores already in flight
// when it happened were sent at the old rate, and their refusals do not
// halve it again.
//
// Use: Acquire before each store (it blocks while the window is full), and
// report each outcome with Done (or Ack / Congested / Release). It is safe for
// concurrent use.
//
// The real peel paces its returns with one (PublishReturnPaced). A simulated
// fleet keeps one Window per connection (its unit of flow): the publishing
// goroutine calls Acquire before js.PublishMsgAsync (never the ack handlers:
// they run on the connection's dispatcher and must not block), the async ack
// and error handlers call Done with the outcome, and a Retryable failure is
// sent again after a delay drawn from an internal/backoff.Backoff (full
// jitter), acquiring again. The ceiling replaces a fixed
// jetstream.WithPublishAsyncMaxPending; set that at least as large.
type Window struct {
	mu      sync.Mutex
	limit   int
	ceiling int
	// thresh is the limit up to which the window doubles per window (TCP's
	// ssthresh): the ceiling until the first halving, then the halved limit.
	thresh   int
	inflight int
	acks     int // acknowledged since the limit last changed
	// guard counts the completions still to come from stores sent before
	// the last halving; congestion reported while guard > 0 is not acted on.
	guard int
	wake  chan struct{} // closed when room frees; nil while nobody waits
	cuts  int
}

// NewWindow returns a Window that starts at initial stores in flight and
// never exceeds ceiling (both at least 1; initial is capped at ceiling).
func NewWindow(initial, ceiling int) *Window {
	ceiling = max(ceiling, 1)
	return &Window{limit: min(max(initial, 1), ceiling), ceiling: ceiling, thresh: ceiling}
}

// Acquire waits until the window has room for one more store, then takes
// it; the caller must report the store's outcome with Done exactly once.
// It returns ctx's error, without taking room, when ctx ends first.
func (w *Window) Acquire(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.inflight < w.limit {
			w.inflight++
			w.mu.Unlock()
			return nil
		}
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		ch := w.wake
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TryAcquire takes room for one store when there is some, without waiting.
func (w *Window) TryAcquire() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight < w.limit {
		w.inflight++
		return true
	}
	return false
}

// Done reports the outcome of a store taken with Acquire: a success (or a
// store refused as already stored) grows the window, an Overloaded failure
// shrinks it, anything else only frees the room.
func (w *Window) Done(err error) {
	switch {
	case err == nil || IsAlreadyStored(err):
		w.Ack()
	case Overloaded(err):
		w.Congested()
	default:
		w.Release()
	}
}

// Ack reports a stored message: additive increase, one per window of acks.
func (w *Window) Ack() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.releaseLocked()
	w.acks++
	if w.limit < w.thresh || (w.acks >= w.limit && w.limit < w.ceiling) {
		w.limit++
		w.acks = 0
		w.wakeLocked()
	}
}

// Congested reports a refused or unanswered store: multiplicative decrease,
// once per window.
func (w *Window) Congested() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A store counted in the guard was sent before the last halving.
	guarded := w.guard > 0
	w.releaseLocked()
	if guarded {
		return
	}
	w.limit = max(w.limit/2, 1)
	w.thresh = w.limit
	w.acks = 0
	w.guard = w.inflight
	w.cuts++
}

// Release frees the room of a store whose outcome says nothing about the
// server's load (a lost connection, a final API error).
func (w *Window) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.releaseLocked()
}

func (w *Window) releaseLocked() {
	if w.inflight > 0 {
		w.inflight--
	}
	if w.guard > 0 {
		w.guard--
	}
	w.wakeLocked()
}

func (w *Window) wakeLocked() {
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

// WindowStats is a snapshot of a Window.
type WindowStats struct {
	Limit, Ceiling, InFlight int
	// Cuts counts the halvings so far.
	Cuts int
}

// Stats returns the window's current state.
func (w *Window) Stats() WindowStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WindowStats{Limit: w.limit, Ceiling: w.ceiling, InFlight: w.inflight, Cuts: w.cuts}
}

// Spreader draws the delay before a fleet-wide republish: the facts a peel
// sends again after a reconnect or when the masters report the store rebuilt.
// Every peel of a fleet that lost its server together reconnects within a
// few seconds, so a constant delay window puts all their facts into that
// window however large the fleet. The Spreader's window starts at base and
// doubles with every refusal signal (a fact publish refused, timed out or
// stalled: Refused) up to max, and narrows by half again with every calm
// republish (Calm). The delay is uniform in [0, window): a fleet of n peels
// thus offers n/window stores per second, and refusals push each peel's
// window out until that rate is what the server takes. Safe for concurrent
// use.
//
// The real peel keeps one. A simulated fleet (internal/simfleet, flow.go)
// keeps one per connection to schedule its peels' republish after a
// reconnect or a master's request, each at its own Delay(), widened once
// per halving of the connection's Window by a fact publish and narrowed by
// every fact stored at once; and one per refused fact publish, as each real
// peel's own, from whose Delay() the retry waits.
type Spreader struct {
	base, max time.Duration

	mu     sync.Mutex
	window time.Duration
	rnd    *mrand.Rand // nil: the global source
}

// NewSpreader returns a Spreader with the given base window and cap
// (base at least 1 ms; max at least base).
func NewSpreader(base, max time.Duration) *Spreader {
	base = maxDur(base, time.Millisecond)
	max = maxDur(max, base)
	return &Spreader{base: base, max: max, window: base}
}

// NewSpreaderRand is NewSpreader drawing from src (tests).
func NewSpreaderRand(base, max time.Duration, src mrand.Source) *Spreader {
	s := NewSpreader(base, max)
	s.rnd = mrand.New(src)
	return s
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// Delay returns a delay uniform in [0, Window()).
func (s *Spreader) Delay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rnd != nil {
		return time.Duration(s.rnd.Int64N(int64(s.window)))
	}
	return time.Duration(mrand.Int64N(int64(s.window)))
}

// Window is the current spreading window.
func (s *Spreader) Window() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.window
}

// Refused widens the window (doubling, up to max) after a refusal signal.
func (s *Spreader) Refused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = min(s.window*2, s.max)
}

// Calm narrows the window (halving, down to base) after a republish the
// server took at once.
func (s *Spreader) Calm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = maxDur(s.window/2, s.base)
}
