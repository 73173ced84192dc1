package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
)

// Bounds of the consumer (re)creation loop (see create). A create normally
// answers in milliseconds; one placed on a node that just died, or sent
// while the meta group elects a leader, never answers. Each attempt goes out
// under a fresh name, which the meta leader places anew among the stream's
// live peers.
// createBackoff spaces the attempts of the consumer (re)creation loop.
var createBackoff = backoff.New(100*time.Millisecond, time.Second)

const (
	attemptTimeout = 4 * time.Second
	maxInflight    = 4
	// firstCreateWithin bounds the first creation (Follow returns an error
	// after it); later recreations go on until the follower is stopped.
	firstCreateWithin = 30 * time.Second
	// inactiveThreshold lets the server delete a consumer nobody pulls from
	// (ours left on a node that died, once that node is back).
	inactiveThreshold = time.Minute
)

// FollowOptions tune a Follow.
type FollowOptions struct {
	// Name names the watch in Health, errors and its consumers' names
	// ("jobs", "job-returns").
	Name string
	// Subjects are the filter subjects; none means every subject.
	Subjects []string
	// DeliverPolicy and StartSeq place the first consumer (default: every
	// message). Each later consumer starts right after the last stream
	// sequence handed to the handler.
	DeliverPolicy jetstream.DeliverPolicy
	StartSeq      uint64
	// HeadersOnly delivers headers without payloads.
	HeadersOnly bool
	// Heartbeat is the idle heartbeat asked of the server (default 1 s,
	// 500 ms to 30 s). A
	// consumer that sends neither a message nor a heartbeat for two of them
	// is given up and recreated under a new name.
	Heartbeat time.Duration
	// OnError receives errors worth a log line (consume errors, failed
	// creation attempts); the follower handles them itself.
	OnError func(error)
	// OnCaughtUp is called once, before any later message, when every
	// message pending at the first creation has been handed on (at once
	// when there was none).
	OnCaughtUp func()
	// Monitor, when set, tracks this follower's health until Stop.
	Monitor *Monitor
}

// Follower reads a stream in order through a chain of ephemeral R1 pull
// consumers, replacing the current one whenever it stops answering.
//
// nats.go's ordered consumer resets itself too, but retries its reset under
// one consumer name without limit: when the meta leader placed that consumer
// on a node that died, the create never completes and the watch stays blind
// until the node returns (NATS-NOTES.md). Here every creation attempt uses a
// new name and a bounded wait, so the next attempt is placed elsewhere.
//
// Invariant: the handler sees each stream sequence at most once and in
// increasing order, with no gap within the filter: a message is handed on
// only if it belongs to the current consumer and carries the next consumer
// sequence; a replacement starts right after the last stream sequence handed
// on. Loss is detected by the pull heartbeat (2 × Heartbeat without a message
// or heartbeat), a consumer sequence gap, the server reporting the consumer
// gone, and every reconnect of the client (a pull answered while we were
// away is lost).
type Follower struct {
	js      jetstream.JetStream
	stream  string
	o       FollowOptions
	hb      time.Duration
	handler func(jetstream.Msg)
	ctx     context.Context
	cancel  context.CancelFunc
	kick    chan uint64 // generation whose consumer is lost
	status  chan nats.Status

	// gen numbers the consumers; written under dmu, read anywhere.
	gen atomic.Uint64
	// handled is the stream sequence of the last message the handler
	// returned from (see Handled).
	handled atomic.Uint64

	// dmu serialises deliveries with the switch to a new consumer.
	dmu        sync.Mutex
	lastSeq    uint64 // stream sequence of the last message handed on
	deliverSeq uint64 // consumer sequence of the last message of consumer gen
	caughtUp   bool

	mu          sync.Mutex
	consumer    string
	cc          jetstream.ConsumeContext
	blindSince  time.Time // zero while the current consumer is believed alive
	reason      string
	recreations uint64
	stopped     bool
}

// Follow creates the first consumer of stream and starts handing its
// messages to handler, one at a time, from the consumer's goroutine. The
// handler must not call Stop.
func Follow(ctx context.Context, js jetstream.JetStream, stream string, o FollowOptions, handler func(jetstream.Msg)) (*Follower, error) {
	if o.Name == "" {
		o.Name = stream
	}
	f := &Follower{js: js, stream: stream, o: o, hb: o.Heartbeat, handler: handler, kick: make(chan uint64, 1)}
	if o.DeliverPolicy == jetstream.DeliverByStartSequencePolicy && o.StartSeq > 0 {
		f.handled.Store(o.StartSeq - 1) // nothing before the start is due
	}
	if f.hb <= 0 {
		f.hb = time.Second
	}
	if f.hb < 500*time.Millisecond || f.hb > 30*time.Second {
		return nil, fmt.Errorf("watch %s: heartbeat %s: want 500ms to 30s (the server's range)", o.Name, f.hb)
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	// Listen before the first creation: a reconnect in between must not go
	// unnoticed.
	f.status = js.Conn().StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	f.dmu.Lock()
	g := f.gen.Add(1)
	f.dmu.Unlock()
	first, cancel := context.WithTimeout(f.ctx, firstCreateWithin)
	name, cc, err := f.create(first, g, true)
	cancel()
	if err != nil {
		f.cancel()
		js.Conn().RemoveStatusListener(f.status)
		return nil, fmt.Errorf("watch %s: %w", o.Name, err)
	}
	f.mu.Lock()
	f.consumer, f.cc = name, cc
	f.mu.Unlock()
	if o.Monitor != nil {
		o.Monitor.add(f)
	}
	go f.run()
	return f, nil
}

// Stop ends the follow; no message is handed on after it returns, except
// one already being handled.
func (f *Follower) Stop() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	cc := f.cc
	f.mu.Unlock()
	f.cancel()
	if cc != nil {
		cc.Stop()
	}
	if f.o.Monitor != nil {
		f.o.Monitor.remove(f)
	}
}

// Handled is the stream sequence of the last message handed on and handled
// (the handler returned): with no gap within the filter, every message of
// the filter up to it has been handled. Before the first message it is the
// start sequence less one (DeliverByStartSequencePolicy), else 0.
func (f *Follower) Handled() uint64 { return f.handled.Load() }

// Health is the state of the follower now.
func (f *Follower) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Health{Name: f.o.Name, Stream: f.stream, Consumer: f.consumer, Blind: !f.blindSince.IsZero(),
		BlindSince: f.blindSince, Reason: f.reason, Recreations: f.recreations}
}

// run replaces the consumer whenever it is reported lost, until Stop.
func (f *Follower) run() {
	defer func() {
		f.js.Conn().RemoveStatusListener(f.status)
		f.mu.Lock()
		name := f.consumer
		f.mu.Unlock()
		f.deleteLater(name)
	}()
	for {
		select {
		case <-f.ctx.Done():
			return
		case st, ok := <-f.status:
			if !ok {
				return
			}
			switch st {
			case nats.RECONNECTING:
				f.markBlind(f.gen.Load(), "disconnected from NATS")
			case nats.CONNECTED:
				f.lose(f.gen.Load(), "reconnected to NATS (a pull answered meanwhile is lost)")
			}
		case g := <-f.kick:
			if g == f.gen.Load() {
				f.recreate()
			}
		}
	}
}

// markBlind records that consumer g is not delivering, without replacing it.
func (f *Follower) markBlind(g uint64, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g != f.gen.Load() || f.stopped {
		return
	}
	if f.blindSince.IsZero() {
		f.blindSince = time.Now()
	}
	f.reason = why
}

// lose marks consumer g lost and asks run to replace it. Reports about an
// earlier consumer are ignored.
func (f *Follower) lose(g uint64, why string) {
	f.markBlind(g, why)
	select {
	case f.kick <- g:
	default: // a replacement is already asked for
	}
}

func (f *Follower) recreate() {
	f.dmu.Lock()
	g := f.gen.Add(1) // from here on, messages of the old consumer are dropped
	f.dmu.Unlock()
	f.mu.Lock()
	old, oldName := f.cc, f.consumer
	f.cc = nil
	if f.blindSince.IsZero() {
		f.blindSince = time.Now()
	}
	f.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	f.deleteLater(oldName)
	name, cc, err := f.create(f.ctx, g, false)
	if err != nil {
		return // stopped
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		cc.Stop()
		f.deleteLater(name)
		return
	}
	blind, why := time.Since(f.blindSince), f.reason
	f.consumer, f.cc = name, cc
	f.blindSince, f.reason = time.Time{}, ""
	f.recreations++
	f.mu.Unlock()
	if f.o.Monitor != nil {
		f.o.Monitor.recreated(Recreated{Watch: f.o.Name, Stream: f.stream, Consumer: name, Reason: why, Blind: blind})
	}
}

// create makes consumer g and starts pulling from it, retrying until ctx
// ends. Every attempt uses a fresh name. Attempts overlap: a new one starts
// after a backoff with full jitter (createBackoff) while earlier ones
// still wait for their answer (at most maxInflight at once, each for up to
// attemptTimeout), so a create that is never answered (placed on a dead node,
// or sent while there is no meta leader) costs no more than the next
// attempt's start, and the first attempt after a meta election succeeds.
// Attempts that lose, or may complete after giving up, are deleted. The
// first creation gives up at once when the stream or JetStream is not there
// (the caller should say so, not wait); a replacement keeps trying, as the
// store may come back.
func (f *Follower) create(ctx context.Context, g uint64, first bool) (string, jetstream.ConsumeContext, error) {
	type result struct {
		name    string
		attempt int
		cons    jetstream.Consumer
		err     error
	}
	results := make(chan result, maxInflight)
	var won atomic.Bool
	try := func(attempt int, name string) {
		timeout := attemptTimeout
		if attempt >= 10 {
			timeout = 2 * attemptTimeout // a loaded cluster: give creates longer
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		cons, err := f.js.CreateConsumer(actx, f.stream, f.config(name))
		cancel()
		if err != nil {
			f.deleteLater(name) // a create that timed out may still complete
			results <- result{name: name, attempt: attempt + 1, err: err}
			return
		}
		if !won.CompareAndSwap(false, true) {
			f.deleteLater(name) // another attempt got there first
			results <- result{name: name, err: errLost}
			return
		}
		results <- result{name: name, cons: cons}
	}
	inflight, attempt := 0, 0
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-next.C:
			if inflight < maxInflight {
				inflight++
				go try(attempt, names.WatchConsumer(f.o.Name, nuid.Next()))
				attempt++
			}
			// Exponential backoff with full jitter: masters recreating at
			// once after a node loss do not all hit the new meta leader in
			// step.
			next.Reset(createBackoff.Delay(attempt))
		case r := <-results:
			inflight--
			if r.err == errLost {
				continue
			}
			if r.err != nil {
				if first && absent(r.err) {
					return "", nil, r.err
				}
				f.report(fmt.Errorf("watch %s: consumer %s (attempt %d): %w", f.o.Name, r.name, r.attempt, r.err))
				continue
			}
			f.dmu.Lock()
			if info := r.cons.CachedInfo(); !f.caughtUp && info != nil && info.NumPending == 0 {
				f.caughtUpLocked()
			}
			f.deliverSeq = 0
			f.dmu.Unlock()
			cc, err := r.cons.Consume(f.onMsg(g), jetstream.PullHeartbeat(f.hb), jetstream.PullExpiry(5*f.hb),
				jetstream.ConsumeErrHandler(f.onErr(g)))
			if err == nil {
				return r.name, cc, nil
			}
			f.deleteLater(r.name)
			if errors.Is(err, jetstream.ErrInvalidOption) {
				return "", nil, err // a retry cannot fix it
			}
			f.report(fmt.Errorf("watch %s: consume %s: %w", f.o.Name, r.name, err))
			won.Store(false)
		}
	}
}

// absent reports an answer that the stream or JetStream does not exist.
func absent(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// errLost marks an attempt that succeeded after another one did.
var errLost = errors.New("another attempt won")

// config is the consumer configuration for the next consumer: the caller's
// start for the first, right after the last message handed on for later ones.
func (f *Follower) config(name string) jetstream.ConsumerConfig {
	f.dmu.Lock()
	last := f.lastSeq
	f.dmu.Unlock()
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: inactiveThreshold,
		Replicas:          1,
		MemoryStorage:     true,
		HeadersOnly:       f.o.HeadersOnly,
		Metadata:          map[string]string{"zester_watch": f.o.Name},
	}
	switch len(f.o.Subjects) {
	case 0:
	case 1:
		cfg.FilterSubject = f.o.Subjects[0]
	default:
		cfg.FilterSubjects = f.o.Subjects
	}
	switch {
	case last > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	case f.o.DeliverPolicy == jetstream.DeliverByStartSequencePolicy:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(f.o.StartSeq, 1)
	default:
		cfg.DeliverPolicy = f.o.DeliverPolicy
		if cfg.DeliverPolicy == jetstream.DeliverLastPerSubjectPolicy && len(f.o.Subjects) == 0 {
			cfg.FilterSubject = ">"
		}
	}
	return cfg
}

func (f *Follower) onMsg(g uint64) jetstream.MessageHandler {
	return func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			f.report(fmt.Errorf("watch %s: %w", f.o.Name, err))
			return
		}
		f.dmu.Lock()
		defer f.dmu.Unlock()
		if f.gen.Load() != g || f.ctx.Err() != nil {
			return // an earlier consumer's, already replaced, or stopped
		}
		if md.Sequence.Consumer != f.deliverSeq+1 {
			if md.Sequence.Consumer > f.deliverSeq+1 {
				// Messages were lost on the way (a slow subscription):
				// start again after the last one handed on.
				f.lose(g, fmt.Sprintf("consumer sequence gap: got %d after %d", md.Sequence.Consumer, f.deliverSeq))
			}
			return
		}
		f.deliverSeq = md.Sequence.Consumer
		f.lastSeq = md.Sequence.Stream
		f.handler(msg)
		f.handled.Store(md.Sequence.Stream)
		if !f.caughtUp && md.NumPending == 0 {
			f.caughtUpLocked()
		}
	}
}

func (f *Follower) caughtUpLocked() {
	f.caughtUp = true
	if f.o.OnCaughtUp != nil {
		f.o.OnCaughtUp()
	}
}

func (f *Follower) onErr(g uint64) jetstream.ConsumeErrHandler {
	return func(_ jetstream.ConsumeContext, err error) {
		switch {
		case errors.Is(err, jetstream.ErrConnectionClosed):
			return // the connection is gone for good: nothing to recreate on
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			f.lose(g, fmt.Sprintf("no message or heartbeat for %s", 2*f.hb))
			return
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound),
			errors.Is(err, jetstream.ErrBadRequest), errors.Is(err, nats.ErrNoResponders),
			errors.Is(err, jetstream.ErrServerShutdown), errors.Is(err, jetstream.ErrConsumerLeadershipChanged):
			f.lose(g, err.Error())
		}
		if g == f.gen.Load() {
			f.report(fmt.Errorf("watch %s: %w", f.o.Name, err))
		}
	}
}

func (f *Follower) report(err error) {
	if f.o.OnError != nil {
		f.o.OnError(err)
	}
}

// deleteLater deletes a consumer we no longer use, in the background and
// bounded: one on a dead node cannot be deleted now and expires by its
// inactive threshold once the node is back.
func (f *Follower) deleteLater(name string) {
	if name == "" {
		return
	}
	nc := f.js.Conn()
	if nc.IsClosed() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.js.DeleteConsumer(ctx, f.stream, name)
	}()
}
