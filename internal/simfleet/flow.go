package simfleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
)

// ---- flow control ----
//
// Every store a connection makes (facts, returns, a baseline's messages)
// goes through its outbox and one sender goroutine, paced by the
// connection's peelproto.Window (the peels of a connection are one unit of
// flow, as the Window's doc says): the sender takes room in the window
// before each js.PublishMsgAsync, and the async ack and error handlers
// report each outcome (a refusal or a timeout halves the window, acks grow
// it). A failed store is sent again after a full-jitter backoff of its own
// attempts (internal/backoff); a refused or timed-out fact publish waits at
// least a draw from its peel's own peelproto.Spreader, widened by each of
// its refusals, as the real peel waits. The facts republished after a
// reconnect or at a master's request (wire.ControlRepublishFacts) are
// scheduled over the connection's Spreader: it widens once per halving of
// the connection's window by a fact publish (so a connection of 250 peels
// does not widen it 250 times for one congestion event) and narrows with
// every fact stored at the first attempt, as a real peel's calm republish
// narrows its own.
//
// The window also shrinks on an ack that came late (slowAck after the
// send): a stream's ingest queue is FIFO, so the time a store waits there is
// what the fleet keeps in flight divided by the rate the stream stores. A
// fleet that only halves on refusals fills the queue to the server's bound
// (100,000 messages) before it slows, and when the rate falls (a busy core,
// a million peels beating) that queue is older than asyncAckTimeout: every
// store times out though it is stored a moment later, is sent again and
// stored again, and the queue holds copies nobody waits for any more
// (congestion collapse: 138 of 1,000,000 facts stored in 85 s, h28
// 2026-12-02). Halving on a late ack keeps the queue short of that.
//
// Nothing waits on the window but the sender: the ack handlers run on the
// connection's dispatcher and must not block, the dispatch handlers only
// queue, and a retry is a timer that queues again. So a refusal storm holds
// pointers in outboxes, not goroutines.

// Bounds of a failed store's retry delays (full jitter).
const (
	retryMin = 10 * time.Millisecond
	retryMax = 2 * time.Second
)

// slowAck is the ack delay from which an ack counts as congestion for the
// window (it halves, as on a refusal, but the store is made and counted).
// Far below asyncAckTimeout, so that a fleet slows down while its stores
// are still acknowledged in time, and above the sub-second delay of a busy
// but keeping-up server, so that a fleet at full rate does not throttle
// itself.
const slowAck = 2 * time.Second

// Spread of the facts a connection republishes (the real peel's bounds).
const (
	republishSpread    = 2 * time.Second
	republishMaxSpread = 2 * time.Minute
)

// queueBudget is the number of stores the whole fleet starts with in
// flight: half of nats-server's per-stream ingest queue (100,000 messages,
// streamDefaultMaxQueueMsgs), so that the first burst fits it; each
// connection's window then finds its own rate.
const queueBudget = 50_000

var retryBackoff = backoff.New(retryMin, retryMax)

// outbox is a connection's queue of stores waiting for room in its window.
type outbox struct {
	mu   sync.Mutex
	q    []*nats.Msg
	wake chan struct{} // one token: the queue went from empty to not
	// retrying holds the messages being retried (absent: not failed yet),
	// deleted once the message is stored.
	retrying map[*nats.Msg]*retryState
	// sent is when each store in flight was sent (unix ns), for slowAck.
	sent map[*nats.Msg]int64
}

// retryState is one failed store's: its failed sends so far, and for a fact
// publish its own Spreader (a real peel's, whose window doubles with each
// refusal of that peel's facts).
type retryState struct {
	failed int
	spread *peelproto.Spreader
}

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), retrying: map[*nats.Msg]*retryState{}, sent: map[*nats.Msg]int64{}}
}

func (o *outbox) push(m ...*nats.Msg) {
	o.mu.Lock()
	o.q = append(o.q, m...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take returns the queued messages (the sender's next batch), waiting for
// one; nil when ctx ends.
func (o *outbox) take(ctx context.Context) []*nats.Msg {
	for {
		o.mu.Lock()
		q := o.q
		o.q = nil
		o.mu.Unlock()
		if len(q) > 0 {
			return q
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// retryDelay counts a failed send of m and returns the delay of its next:
// a full-jitter backoff of its failed sends, and for a fact publish the
// server refused (Overloaded) at least a draw from the peel's Spreader,
// widened by the refusal, as the real peel waits.
func (o *outbox) retryDelay(m *nats.Msg, err error) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs := o.retrying[m]
	if rs == nil {
		rs = &retryState{}
		o.retrying[m] = rs
	}
	rs.failed++
	d := retryBackoff.Delay(rs.failed - 1)
	if isFacts(m.Subject) && peelproto.Overloaded(err) {
		if rs.spread == nil {
			rs.spread = peelproto.NewSpreader(republishSpread, republishMaxSpread)
		}
		rs.spread.Refused()
		d = max(d, rs.spread.Delay())
	}
	return d
}

// sending records that m is sent now.
func (o *outbox) sending(m *nats.Msg) {
	now := time.Now().UnixNano()
	o.mu.Lock()
	o.sent[m] = now
	o.mu.Unlock()
}

// completed forgets m's send time and returns how long ago it was sent
// (0 when unknown).
func (o *outbox) completed(m *nats.Msg) time.Duration {
	o.mu.Lock()
	at, ok := o.sent[m]
	delete(o.sent, m)
	o.mu.Unlock()
	if !ok {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - at)
}

// stored forgets m's retries; it tells whether m had failed before.
func (o *outbox) stored(m *nats.Msg) (retried bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, retried = o.retrying[m]
	if retried {
		delete(o.retrying, m)
	}
	return retried
}

// initialWindow is where a connection's window starts: its share of
// queueBudget, between 1 and 64.
func initialWindow(conns int) int { return max(1, min(64, queueBudget/max(conns, 1))) }

// Window is the connection's store window (tests, reports).
func (c *Conn) Window() peelproto.WindowStats { return c.win.Stats() }

// SpreadWindow is the connection's current republish spreading window.
func (c *Conn) SpreadWindow() time.Duration { return c.spread.Window() }

// sender publishes the outbox's messages, each after taking room in the
// window, until the fleet closes.
func (c *Conn) sender() {
	ctx := c.f.ctx
	for {
		batch := c.out.take(ctx)
		if batch == nil {
			return
		}
		for _, m := range batch {
			if c.win.Acquire(ctx) != nil {
				return
			}
			c.out.sending(m)
			if _, err := c.js.PublishMsgAsync(m); err != nil {
				c.onPubErr(c.js, m, err)
			}
		}
	}
}

// Publish stores msg asynchronously through the connection's window,
// retrying it later when the store fails (Retry). It does not block.
func (c *Conn) Publish(msg *nats.Msg) { c.out.push(msg) }

// PublishNow stores msg asynchronously through the connection's window
// from the calling goroutine, waiting for room there (the raw baseline's
// bare pipeline: no outbox between the caller and the publish). A failure
// is retried as Publish's are. Never call it from an ack handler.
func (c *Conn) PublishNow(msg *nats.Msg) {
	if c.win.Acquire(c.f.ctx) != nil {
		return
	}
	c.out.sending(msg)
	if _, err := c.js.PublishMsgAsync(msg); err != nil {
		c.onPubErr(c.js, msg, err)
	}
}

// Retry sends a failed store again after a full-jitter backoff of its own
// attempts (a fact publish the server refused waits at least a draw from its
// peel's Spreader too: outbox.retryDelay). It does not block.
func (c *Conn) Retry(msg *nats.Msg, err error) {
	f := c.f
	if f.closed.Load() {
		return
	}
	f.Retries.Add(1)
	f.countRetry(msg.Subject, err)
	switch {
	case peelproto.IsTooManyRequests(err):
		f.Refusals.Add(1)
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		f.Timeouts.Add(1)
	}
	if jid, _, ok := names.ParseReturnSubject(msg.Subject); ok {
		if jt := f.lookup(jid); jt != nil {
			jt.Retries.Add(1)
		}
	}
	time.AfterFunc(c.out.retryDelay(msg, err), func() { c.out.push(msg) })
}

// countRetry counts a retry under its reason: the kind of store (facts,
// return, other) and the error.
func (f *Fleet) countRetry(subj string, err error) {
	kind := "other"
	switch {
	case isFacts(subj):
		kind = "facts"
	case strings.HasPrefix(subj, names.ReturnSubjectPrefix):
		kind = "return"
	}
	why := "no error"
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		why = fmt.Sprintf("api %d/%d %s", apiErr.Code, apiErr.ErrorCode, apiErr.Description)
	case err != nil:
		why = err.Error()
	}
	key := kind + ": " + why
	v, ok := f.retryWhy.Load(key)
	if !ok {
		v, _ = f.retryWhy.LoadOrStore(key, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// RetryReason is one reason stores were retried, and how often.
type RetryReason struct {
	Why   string `json:"why"`
	Count int64  `json:"count"`
}

// RetryReasons are the retries so far by reason, most frequent first.
func (f *Fleet) RetryReasons() []RetryReason {
	var out []RetryReason
	f.retryWhy.Range(func(k, v any) bool {
		out = append(out, RetryReason{Why: k.(string), Count: v.(*atomic.Int64).Load()})
		return true
	})
	slices.SortFunc(out, func(a, b RetryReason) int { return cmp.Compare(b.Count, a.Count) })
	return out
}

func isFacts(subj string) bool { return strings.HasPrefix(subj, factsSubjectPrefix) }

func (c *Conn) onAck(_ jetstream.JetStream, msg *nats.Msg, ack *jetstream.PubAck) {
	f := c.f
	slow := c.out.completed(msg) >= slowAck
	cuts := c.win.Stats().Cuts
	if slow {
		// Stored, but after a wait that says the queue is too long.
		f.SlowAcks.Add(1)
		c.win.Congested()
	} else {
		c.win.Ack()
	}
	retried := c.out.stored(msg)
	subj := msg.Subject
	switch {
	case strings.HasPrefix(subj, names.ReturnSubjectPrefix):
		jid, peel, ok := names.ParseReturnSubject(subj)
		if !ok {
			return
		}
		idx := PeelIndex(peel)
		jt := f.lookup(jid)
		if jt == nil || idx < 0 || idx >= len(f.peels) {
			return
		}
		jt.stored(f, idx, time.Now().UnixNano(), false)
	case isFacts(subj):
		f.FactsStored.Add(1)
		c.factsPending.Add(-1)
		if slow && c.win.Stats().Cuts != cuts {
			c.spread.Refused()
		}
		if !retried && !slow {
			// Taken at once: the next republish may spread narrower.
			c.spread.Calm()
		}
	default:
		f.extraHandler(subj, c, msg, ack, nil)
	}
}

func (c *Conn) onPubErr(_ jetstream.JetStream, msg *nats.Msg, err error) {
	f := c.f
	c.out.completed(msg)
	cuts := c.win.Stats().Cuts
	c.win.Done(err)
	subj := msg.Subject
	if isFacts(subj) && c.win.Stats().Cuts != cuts {
		// This refusal halved the window: the server is behind, so the
		// connection's republishes spread wider.
		c.spread.Refused()
	}
	stored := peelproto.IsAlreadyStored(err)
	if stored {
		// A retry of a store that was made (a return's, a baseline's): the
		// message is done with, whoever counts it, and never sent again.
		c.out.stored(msg)
	}
	if strings.HasPrefix(subj, names.ReturnSubjectPrefix) && stored {
		// A retry of a return that was stored: the peel treats it as sent.
		f.DupRefused.Add(1)
		if jid, peel, ok := names.ParseReturnSubject(subj); ok {
			if jt, idx := f.lookup(jid), PeelIndex(peel); jt != nil && idx >= 0 && idx < len(f.peels) {
				jt.DupRefused.Add(1)
				jt.stored(f, idx, time.Now().UnixNano(), true)
			}
		}
		return
	}
	if !strings.HasPrefix(subj, names.ReturnSubjectPrefix) && !isFacts(subj) {
		// Another store (a baseline's): its handler decides about a retry.
		// Without one its run has ended and nobody waits for it: dropped.
		// (Retried, a store refused as already stored is refused again,
		// forever: 2.1M such retries during a 1M ping, h40; and one whose
		// scratch bucket is gone has no stream to answer it.)
		if !f.extraHandler(subj, c, msg, nil, err) {
			c.out.stored(msg)
		}
		return
	}
	c.Retry(msg, err)
}

// ---- facts republished ----

// republish stores again the facts of the peels (of the connection) that
// want says yes to (nil: all), each at its own draw from the connection's
// Spreader, as every real peel does after a reconnect or when a master asks
// (ControlRepublishFacts). Without encoded facts (PublishFacts not run)
// there is nothing to send.
func (c *Conn) republish(peels []int32, want func(idx int32) bool) {
	f := c.f
	e := f.facts.Load()
	if e == nil {
		return
	}
	type at struct {
		d   time.Duration
		idx int32
	}
	var plan []at
	for _, idx := range peels {
		if want == nil || want(idx) {
			plan = append(plan, at{c.spread.Delay(), idx})
		}
	}
	slices.SortFunc(plan, func(a, b at) int { return int(a.d - b.d) })
	start := time.Now()
	for _, p := range plan {
		if w := time.Until(start.Add(p.d)); w > 0 && !f.sleep(w) {
			return
		}
		f.Republished.Add(1)
		c.publishFact(e, p.idx)
	}
}

func (c *Conn) publishFact(e *EncodedFacts, idx int32) {
	c.factsPending.Add(1)
	c.Publish(&nats.Msg{Subject: factsSubjectPrefix + names.FactsKey(c.f.peels[idx].id), Data: e.get(int(idx))})
}
