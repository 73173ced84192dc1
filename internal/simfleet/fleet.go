// Package simfleet is the simulated fleet: many peels over a few NATS
// connections, speaking the peel protocol (internal/peelproto) for real:
// presence beats on each peel's own subject, facts in the facts bucket,
// dispatches answered with returns stored exactly once (expected last
// subject sequence 0), answers to a master's request to beat. The load
// generator measures the system with it, and the master's tests use it
// where they test the master and not the peel; it imports neither daemon.
//
// A simulated peel runs a job once however often the dispatch is delivered,
// as a real one does (JobTrack.DupDispatch counts the copies it dropped).
package simfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// FleetConfig describes a simulated fleet.
type FleetConfig struct {
	Peels int
	// Conns is the number of NATS connections the peels share (multiplexed
	// mode). PerPeel gives every peel its own connection and ignores Conns.
	Conns      int
	PerPeel    bool
	Partitions int
	// URLs are the servers; connection i prefers URLs[i % len(URLs)].
	URLs []string
	// Latency and FailRate shape the answers (changeable later).
	Latency  Dist
	FailRate float64
	// PublishWindow bounds each connection's unacknowledged async publishes.
	PublishWindow int
	// BeatInterval is every simulated peel's presence beat interval (the
	// real peel's beat_interval; default 10 s). Each peel beats on its own
	// subject, as a real one does: the protocol has no batch, so the load
	// is the real load.
	BeatInterval time.Duration
	// Auth, when set, gives connection idx (whose peels live in parts) its
	// credentials (a secure run).
	Auth func(idx int, parts []int) ([]nats.Option, error)
	// Trust, when set, makes every connection check the masters' signature
	// of each dispatch and control message it receives (verify.go).
	Trust *sig.Trust
	// ID names peel i (default PeelID). Every id must have PeelID's shape,
	// sim-<digits>.…, with i as the digits: acks are matched back to their
	// peel by parsing the id (PeelIndex), which keeps the fleet free of a
	// map from id to peel.
	ID func(i int) string
	// Facts is peel i's fact document as JSON (EncodeFacts encodes and
	// PublishFacts stores it); required for EncodeFacts.
	Facts func(i int, id string, now time.Time) []byte
}

// asyncAckTimeout is how long a store waits for its ack before it is sent
// again. Long against slowAck: an ack that is only late must not turn into
// a second copy of the store (the windows slow down long before); a
// connection lost meanwhile fails its pending stores at once
// (nats.ErrDisconnected), without waiting for it.
const asyncAckTimeout = 30 * time.Second

var factsSubjectPrefix = names.KVSubjectPrefix(names.BucketFacts)

type peelRec struct {
	id   string
	part int32
}

// Fleet is a set of simulated peels speaking the peel protocol
// (internal/peelproto) through real NATS connections.
type Fleet struct {
	cfg   FleetConfig
	peels []peelRec
	conns []*Conn

	latency  atomic.Pointer[Dist]
	failRate atomic.Uint64 // float64 bits

	mu   sync.RWMutex
	jobs map[string]*JobTrack

	FactsStored   atomic.Int64
	ReturnsStored atomic.Int64
	Beats         atomic.Int64
	DupRefused    atomic.Int64
	Retries       atomic.Int64
	BadDispatch   atomic.Int64
	Disconnects   atomic.Int64
	Reconnects    atomic.Int64
	// Refusals counts stores the server refused with 429 (its stream's
	// ingest queue full); Republished the facts sent again after a
	// reconnect or at a master's request.
	Refusals    atomic.Int64
	Republished atomic.Int64
	// Timeouts counts stores retried because no ack came within
	// asyncAckTimeout (stored or not: a fact's retry is an idempotent put,
	// a return's is refused as already stored); SlowAcks the acks that came
	// later than slowAck (each a congestion signal to the window, flow.go).
	Timeouts atomic.Int64
	SlowAcks atomic.Int64
	// AsyncErrors counts what nats.go reported on a connection after it
	// connected (slow consumer, a write reset), instead of printing it.
	AsyncErrors atomic.Int64
	// retryWhy counts the retries by reason (RetryReasons).
	retryWhy sync.Map // string → *atomic.Int64

	// facts are the encoded documents PublishFacts stored, kept for the
	// republishes (nil before).
	facts atomic.Pointer[EncodedFacts]
	// ctx ends when the fleet closes (the senders' and windows' context).
	ctx    context.Context
	cancel context.CancelFunc

	extraMu sync.RWMutex
	extra   map[string]ExtraFunc

	// silent holds the peels (int32 index) stopped with Stop: they no longer
	// beat. anySilent keeps the check off the beat path of a fleet that
	// never stops a peel.
	silent    sync.Map
	anySilent atomic.Bool

	// states answers state jobs when set (EnableStates, state.go).
	states atomic.Pointer[States]

	closed atomic.Bool
	done   chan struct{}
	// instance is the fleet's base instance nonce; peel i's is base^i.
	instance uint64
}

type Conn struct {
	f          *Fleet
	idx        int
	nc         *nats.Conn
	js         jetstream.JetStream
	parts      []*connPart
	peels      []int32
	reconnects atomic.Int64
	subs       []*nats.Subscription
	verify     *simVerifier // nil: no signature checks

	// Flow control (flow.go): every store waits in out for room in win;
	// spread spaces the facts republished; factsPending counts the
	// connection's fact stores not yet acknowledged.
	out          *outbox
	win          *peelproto.Window
	spread       *peelproto.Spreader
	factsPending atomic.Int64
}

type connPart struct {
	p     int
	peels []int32
}

// NewFleet lays out the peels over the connections; Connect dials.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	if cfg.Peels < 1 {
		return nil, errors.New("fleet: at least one peel")
	}
	if cfg.Partitions < 1 {
		return nil, errors.New("fleet: partitions must be positive")
	}
	if cfg.PerPeel {
		cfg.Conns = cfg.Peels
	}
	if cfg.Conns < 1 {
		cfg.Conns = DefaultConns(cfg.Peels)
	}
	cfg.Conns = min(cfg.Conns, cfg.Peels)
	if cfg.PublishWindow <= 0 {
		cfg.PublishWindow = 4096
	}
	if cfg.BeatInterval <= 0 {
		cfg.BeatInterval = 10 * time.Second
	}
	if cfg.ID == nil {
		cfg.ID = PeelID
	}
	f := &Fleet{cfg: cfg, peels: make([]peelRec, cfg.Peels), jobs: map[string]*JobTrack{}, extra: map[string]ExtraFunc{},
		done: make(chan struct{}), instance: rand.Uint64()}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.SetLatency(cfg.Latency)
	f.SetFailRate(cfg.FailRate)
	order := make([]int32, cfg.Peels)
	for i := range f.peels {
		id := cfg.ID(i)
		f.peels[i] = peelRec{id: id, part: int32(shard.Partition(id, cfg.Partitions))}
		order[i] = int32(i)
	}
	// Group peels of a partition on the same connections, so that each
	// connection subscribes to as few job subjects as possible.
	sort.SliceStable(order, func(a, b int) bool { return f.peels[order[a]].part < f.peels[order[b]].part })
	f.conns = make([]*Conn, cfg.Conns)
	for k := range f.conns {
		lo, hi := k*cfg.Peels/cfg.Conns, (k+1)*cfg.Peels/cfg.Conns
		c := &Conn{f: f, idx: k, peels: order[lo:hi], out: newOutbox(),
			win:    peelproto.NewWindow(initialWindow(cfg.Conns), cfg.PublishWindow),
			spread: peelproto.NewSpreader(republishSpread, republishMaxSpread)}
		byPart := map[int]*connPart{}
		for _, idx := range c.peels {
			p := int(f.peels[idx].part)
			cp := byPart[p]
			if cp == nil {
				cp = &connPart{p: p}
				byPart[p] = cp
				c.parts = append(c.parts, cp)
			}
			cp.peels = append(cp.peels, idx)
		}
		f.conns[k] = c
	}
	return f, nil
}

// DefaultConns is the multiplexed default: one connection per 100 peels,
// at most 1,000.
func DefaultConns(peels int) int { return max(1, min(peels/100, 1000)) }

// Peels is the number of simulated peels.
func (f *Fleet) Peels() int { return len(f.peels) }

// Conns is the number of connections.
func (f *Fleet) Conns() int { return len(f.conns) }

// ID returns the id of peel i.
func (f *Fleet) ID(i int) string { return f.peels[i].id }

// Connections are the fleet's connections (do not modify the slice).
func (f *Fleet) Connections() []*Conn { return f.conns }

// Stop makes peel i stop as a peel stopped cleanly does: it says goodbye
// (a beat with Bye) and beats no more. It still answers dispatches, which a
// master does not send to a peel it knows offline.
func (f *Fleet) Stop(i int) error {
	f.anySilent.Store(true)
	f.silent.Store(int32(i), true)
	for _, c := range f.conns {
		for _, idx := range c.peels {
			if int(idx) != i {
				continue
			}
			p := int(f.peels[i].part)
			if err := c.nc.PublishMsg(peelproto.BeatMsg(p, f.peels[i].id, wire.Beat{Instance: c.instanceOf(idx), Bye: true})); err != nil {
				return err
			}
			return c.nc.Flush()
		}
	}
	return fmt.Errorf("fleet: no peel %d", i)
}

// NC is the connection's NATS connection.
func (c *Conn) NC() *nats.Conn { return c.nc }

// Peels are the indices (Fleet.ID) of the peels that live on the connection.
func (c *Conn) Peels() []int32 { return c.peels }

// Reconnects counts the connection's reconnects.
func (c *Conn) Reconnects() int64 { return c.reconnects.Load() }

// Subs is the number of subscriptions the connection holds.
func (c *Conn) Subs() int { return len(c.subs) }

// SetLatency changes the answer latency for dispatches received from now on.
func (f *Fleet) SetLatency(d Dist) { f.latency.Store(&d) }

// SetFailRate changes the share of returns that report a failure.
func (f *Fleet) SetFailRate(r float64) { f.failRate.Store(math.Float64bits(r)) }

// Connect dials every connection (at most `parallel` at once) and subscribes
// each to the job subjects of the partitions its peels live in.
func (f *Fleet) Connect(ctx context.Context, parallel int) error {
	if parallel < 1 {
		parallel = 32
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, c := range f.conns {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c.connect(); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.flushAll(ctx)
}

func (f *Fleet) flushAll(ctx context.Context) error {
	var wg sync.WaitGroup
	var bad atomic.Int64
	sem := make(chan struct{}, 64)
	for _, c := range f.conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c.nc == nil || c.nc.FlushTimeout(10*time.Second) != nil {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		return fmt.Errorf("fleet: %d connections did not flush", n)
	}
	return ctx.Err()
}

func (c *Conn) connect() error {
	f := c.f
	urls := f.cfg.URLs
	servers := make([]string, 0, len(urls))
	for k := range urls {
		servers = append(servers, urls[(c.idx+k)%len(urls)])
	}
	var auth []nats.Option
	if f.cfg.Auth != nil {
		parts := make([]int, len(c.parts))
		for i, cp := range c.parts {
			parts[i] = cp.p
		}
		var err error
		if auth, err = f.cfg.Auth(c.idx, parts); err != nil {
			return fmt.Errorf("sim connection %d: credentials: %w", c.idx, err)
		}
	}
	if f.cfg.Trust != nil {
		c.verify = newSimVerifier(*f.cfg.Trust)
	}
	// The real peel's reconnect settings (peel.Run).
	nc, err := nats.Connect(strings.Join(servers, ","), append(auth,
		nats.Name(fmt.Sprintf("zester-loadgen sim %d", c.idx)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(time.Second, 2*time.Second),
		nats.PingInterval(20*time.Second),
		nats.DontRandomize(),
		nats.Timeout(10*time.Second),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { f.Disconnects.Add(1) }),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { f.AsyncErrors.Add(1) }),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.reconnects.Add(1)
			f.Reconnects.Add(1)
			// A real peel beats at once after a reconnect, and republishes
			// its facts (the store may have been rebuilt), spread.
			go c.beatAll()
			go c.republish(c.peels, nil)
		}),
	)...)
	if err != nil {
		return fmt.Errorf("sim connection %d to %s: %w", c.idx, servers[0], err)
	}
	c.nc = nc
	c.js, err = jetstream.New(nc,
		// The window (flow.go) bounds what is in flight; the async
		// publisher's own bound only has to be larger.
		jetstream.WithPublishAsyncMaxPending(2*f.cfg.PublishWindow),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
		jetstream.WithPublishAsyncAckHandler(c.onAck),
		jetstream.WithPublishAsyncErrHandler(c.onPubErr),
	)
	if err != nil {
		nc.Close()
		return err
	}
	for _, cp := range c.parts {
		sub, err := nc.Subscribe(names.JobSubject(cp.p), c.dispatchHandler(cp))
		if err != nil {
			nc.Close()
			return fmt.Errorf("sim connection %d: subscribe: %w", c.idx, err)
		}
		sub.SetPendingLimits(-1, 64<<20)
		c.subs = append(c.subs, sub)
		// A master that gains the partition asks who is up (wire.ControlBeat).
		ctl, err := nc.Subscribe(names.ControlSubject(cp.p), c.controlHandler(cp))
		if err != nil {
			nc.Close()
			return fmt.Errorf("sim connection %d: subscribe: %w", c.idx, err)
		}
		c.subs = append(c.subs, ctl)
	}
	go c.sender()
	// Up from the start, before any facts, as a real peel is.
	c.beatAll()
	go c.beatLoop()
	return nil
}

// ---- presence ----

func (c *Conn) instanceOf(idx int32) string {
	// fmt.Sprintf("%016x") without fmt: every beat of every peel asks.
	const hexd = "0123456789abcdef"
	v := c.f.instance ^ uint64(idx)
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexd[v&15]
		v >>= 4
	}
	return string(b[:])
}

func (c *Conn) beat(p int, idx int32) {
	f := c.f
	if f.anySilent.Load() {
		if _, off := f.silent.Load(idx); off {
			return
		}
	}
	m := peelproto.BeatMsg(p, f.peels[idx].id, wire.Beat{Instance: c.instanceOf(idx), Interval: wire.Duration(f.cfg.BeatInterval), Conn: uint32(c.reconnects.Load()) + 1})
	if c.nc.PublishMsg(m) == nil {
		f.Beats.Add(1)
	}
}

func (c *Conn) beatAll() {
	for _, cp := range c.parts {
		for _, idx := range cp.peels {
			c.beat(cp.p, idx)
		}
	}
}

// beatLoop gives every peel of the connection one beat per round, a round
// lasting peelproto.NextBeat(interval) (so never more than one interval
// between two beats of a peel), spread evenly over the round in steps of
// about 100 ms, so that the fleet beats at a steady rate.
func (c *Conn) beatLoop() {
	f := c.f
	type one struct {
		p   int
		idx int32
	}
	var all []one
	for _, cp := range c.parts {
		for _, idx := range cp.peels {
			all = append(all, one{cp.p, idx})
		}
	}
	// A random phase, so that connections do not beat in step.
	if !f.sleep(time.Duration(rand.Int64N(int64(f.cfg.BeatInterval)))) {
		return
	}
	for {
		round := peelproto.NextBeat(f.cfg.BeatInterval)
		steps := max(1, int(round/(100*time.Millisecond)))
		per := max(1, (len(all)+steps-1)/steps)
		batches := (len(all) + per - 1) / per
		for k := 0; k < len(all); k += per {
			for _, b := range all[k:min(k+per, len(all))] {
				c.beat(b.p, b.idx)
			}
			if !f.sleep(round / time.Duration(batches)) {
				return
			}
		}
	}
}

// sleep waits d, or returns false when the fleet closes.
func (f *Fleet) sleep(d time.Duration) bool {
	select {
	case <-f.done:
		return false
	case <-time.After(d):
		return true
	}
}

func (c *Conn) controlHandler(cp *connPart) nats.MsgHandler {
	return func(m *nats.Msg) {
		var ctl wire.Control
		if json.Unmarshal(m.Data, &ctl) != nil || (ctl.Op != wire.ControlBeat && ctl.Op != wire.ControlRepublishFacts) {
			return
		}
		if !c.verify.check(sig.Control, m, 5*time.Minute) {
			return
		}
		if ctl.Op == wire.ControlRepublishFacts {
			// A rebuilt store asks the whole fleet at once: the named peels
			// republish spread, as after a reconnect.
			named := map[string]bool{}
			for _, id := range ctl.Peels {
				named[id] = true
			}
			go c.republish(cp.peels, func(idx int32) bool { return named[c.f.peels[idx].id] })
			return
		}
		// Each real peel answers after its own random delay; one delay per
		// partition and connection spreads the answers as well.
		time.AfterFunc(peelproto.BeatDelay(ctl.Within.D()), func() {
			if c.f.closed.Load() {
				return
			}
			for _, idx := range cp.peels {
				c.beat(cp.p, idx)
			}
		})
	}
}

// Verified and Refused count the signature checks of the connections.
func (f *Fleet) Verified() (verified, refused int64) {
	for _, c := range f.conns {
		if c.verify != nil {
			verified += c.verify.verified.Load()
			refused += c.verify.refused.Load()
		}
	}
	return verified, refused
}

// Connected counts connections that are up.
func (f *Fleet) Connected() int {
	n := 0
	for _, c := range f.conns {
		if c.nc != nil && c.nc.IsConnected() {
			n++
		}
	}
	return n
}

// Stats sums the client statistics of every connection.
func (f *Fleet) Stats() nats.Statistics {
	var s nats.Statistics
	for _, c := range f.conns {
		if c.nc == nil {
			continue
		}
		st := c.nc.Stats()
		s.InMsgs += st.InMsgs
		s.OutMsgs += st.OutMsgs
		s.InBytes += st.InBytes
		s.OutBytes += st.OutBytes
		s.Reconnects += st.Reconnects
	}
	return s
}

// Close closes every connection.
func (f *Fleet) Close() {
	if f.closed.Swap(true) {
		return
	}
	close(f.done)
	f.cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range f.conns {
		if c.nc == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.nc.Close()
		}()
	}
	wg.Wait()
}

// ---- jobs ----

// JobTrack is the fleet's view of one job: which peels ran it and when each
// return was stored.
type JobTrack struct {
	JID      string
	started  []uint32 // per peel: 1 once it ran the job
	storedAt []int64  // per peel: unix nanoseconds the return was known stored
	acks     []uint32 // per peel: successful (non-duplicate) stores

	Started       atomic.Int64 // peels that ran the job
	Stored        atomic.Int64 // returns known stored
	DupRefused    atomic.Int64 // stores refused as already stored (a retry of a stored return)
	DoubleStored  atomic.Int64 // peels whose return was stored more than once (must stay 0)
	DupDispatch   atomic.Int64 // dispatches for a peel that already ran the job
	Failed        atomic.Int64 // returns sent with success=false
	Retries       atomic.Int64
	FirstDispatch atomic.Int64 // unix ns
	inflight      atomic.Int64
	PeakInflight  atomic.Int64
}

func (f *Fleet) track(jid string) *JobTrack {
	f.mu.RLock()
	jt := f.jobs[jid]
	f.mu.RUnlock()
	if jt != nil {
		return jt
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if jt = f.jobs[jid]; jt == nil {
		n := len(f.peels)
		jt = &JobTrack{JID: jid, started: make([]uint32, n), storedAt: make([]int64, n), acks: make([]uint32, n)}
		f.jobs[jid] = jt
	}
	return jt
}

// Job returns the tracker of a job (created when first seen).
func (f *Fleet) Job(jid string) *JobTrack { return f.track(jid) }

func (f *Fleet) lookup(jid string) *JobTrack {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.jobs[jid]
}

// Forget drops a job's tracker.
func (f *Fleet) Forget(jid string) {
	f.mu.Lock()
	delete(f.jobs, jid)
	f.mu.Unlock()
}

func (jt *JobTrack) start(idx int32, now time.Time) bool {
	if !atomic.CompareAndSwapUint32(&jt.started[idx], 0, 1) {
		return false
	}
	jt.FirstDispatch.CompareAndSwap(0, now.UnixNano())
	jt.Started.Add(1)
	n := jt.inflight.Add(1)
	for {
		p := jt.PeakInflight.Load()
		if n <= p || jt.PeakInflight.CompareAndSwap(p, n) {
			break
		}
	}
	return true
}

func (jt *JobTrack) stored(f *Fleet, idx int, at int64, dup bool) {
	if !dup && atomic.AddUint32(&jt.acks[idx], 1) == 2 {
		jt.DoubleStored.Add(1)
	}
	if atomic.CompareAndSwapInt64(&jt.storedAt[idx], 0, at) {
		jt.Stored.Add(1)
		jt.inflight.Add(-1)
		f.ReturnsStored.Add(1)
	}
}

// Latencies returns, for every stored return, the time from t0 to when it
// was stored, sorted.
func (jt *JobTrack) Latencies(t0 time.Time) []time.Duration {
	out := make([]time.Duration, 0, jt.Stored.Load())
	base := t0.UnixNano()
	for i := range jt.storedAt {
		if at := atomic.LoadInt64(&jt.storedAt[i]); at != 0 {
			out = append(out, time.Duration(at-base))
		}
	}
	slices.Sort(out)
	return out
}

// NotStored lists the peels that ran the job but whose return is not known
// stored.
func (jt *JobTrack) NotStored(f *Fleet, limit int) []string {
	var out []string
	for i := range jt.started {
		if atomic.LoadUint32(&jt.started[i]) == 1 && atomic.LoadInt64(&jt.storedAt[i]) == 0 {
			out = append(out, f.peels[i].id)
			if len(out) >= limit {
				break
			}
		}
	}
	return out
}

var jsonTrue = json.RawMessage("true")

type delayed struct {
	at  int64
	idx int32
}

func (c *Conn) dispatchHandler(cp *connPart) nats.MsgHandler {
	f := c.f
	return func(m *nats.Msg) {
		var d wire.Dispatch
		if err := json.Unmarshal(m.Data, &d); err != nil || d.JID == "" {
			f.BadDispatch.Add(1)
			return
		}
		// One check per message for all the connection's peels (secure.go
		// says how the report accounts for it).
		if !c.verify.check(sig.Dispatch, m, 0) {
			f.BadDispatch.Add(1)
			return
		}
		now := time.Now()
		jt := f.track(d.JID)
		lat := *f.latency.Load()
		var later []delayed
		for _, idx := range cp.peels {
			if !peelproto.Addressed(&d, f.peels[idx].id) {
				continue
			}
			if !jt.start(idx, now) {
				jt.DupDispatch.Add(1)
				continue
			}
			if f.states.Load().stateRun(c, jt, &d, idx, now) {
				continue
			}
			if lat.Zero() {
				c.sendReturn(jt, &d, idx, now)
				continue
			}
			later = append(later, delayed{at: now.Add(lat.Sample()).UnixNano(), idx: idx})
		}
		if len(later) > 0 {
			slices.SortFunc(later, func(a, b delayed) int { return int(a.at - b.at) })
			go func() {
				for _, dl := range later {
					if w := time.Until(time.Unix(0, dl.at)); w > 0 {
						time.Sleep(w)
					}
					if f.closed.Load() {
						return
					}
					c.sendReturn(jt, &d, dl.idx, now)
				}
			}()
		}
	}
}

func (c *Conn) sendReturn(jt *JobTrack, d *wire.Dispatch, idx int32, started time.Time) {
	f := c.f
	id := f.peels[idx].id
	ok := true
	if fr := math.Float64frombits(f.failRate.Load()); fr > 0 && rand.Float64() < fr {
		ok = false
	}
	ret := wire.Return{JID: d.JID, Peel: id, Function: d.Function, Success: ok, Started: started.UTC(), Duration: wire.Duration(time.Since(started))}
	if ok {
		ret.Result = jsonTrue
	} else {
		ret.Error = &wire.Error{Code: "failed", Msg: "simulated failure (--fail-rate)"}
		jt.Failed.Add(1)
	}
	b, _ := json.Marshal(&ret)
	c.Publish(peelproto.ReturnMsgRaw(d.JID, id, ok, b))
}

// ExtraFunc handles the ack (err nil) or the error of an async publish.
type ExtraFunc func(c *Conn, m *nats.Msg, ack *jetstream.PubAck, err error)

// OnExtra routes acks and errors of subjects under prefix to h (baselines);
// h decides about retries (it may call `go c.Retry(m, err)`).
func (f *Fleet) OnExtra(prefix string, h ExtraFunc) func() {
	f.extraMu.Lock()
	f.extra[prefix] = h
	f.extraMu.Unlock()
	return func() {
		f.extraMu.Lock()
		delete(f.extra, prefix)
		f.extraMu.Unlock()
	}
}

func (f *Fleet) extraHandler(subj string, c *Conn, m *nats.Msg, ack *jetstream.PubAck, err error) bool {
	f.extraMu.RLock()
	var h ExtraFunc
	for p, fn := range f.extra {
		if strings.HasPrefix(subj, p) {
			h = fn
			break
		}
	}
	f.extraMu.RUnlock()
	if h == nil {
		return false
	}
	h(c, m, ack, err)
	return true
}

// SubscribeAll subscribes every connection to subject with a handler that
// knows the connection; unsubscribe with the returned function. The
// subscriptions are flushed (known to the server) on return.
func (f *Fleet) SubscribeAll(ctx context.Context, subject string, h func(c *Conn, m *nats.Msg)) (func(), error) {
	subs := make([]*nats.Subscription, len(f.conns))
	for i, c := range f.conns {
		sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) { h(c, m) })
		if err != nil {
			for _, s := range subs[:i] {
				s.Unsubscribe()
			}
			return nil, err
		}
		sub.SetPendingLimits(-1, -1)
		subs[i] = sub
	}
	unsub := func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}
	if err := f.flushAll(ctx); err != nil {
		unsub()
		return nil, err
	}
	return unsub, nil
}

// ---- facts ----

// EncodedFacts holds every peel's encoded fact document.
type EncodedFacts struct {
	chunks   []factChunk
	per      int
	RawBytes int64 // JSON
	EncBytes int64 // as stored
	Encoder  string
	Took     time.Duration
}

type factChunk struct {
	data []byte
	off  []int32
}

func (e *EncodedFacts) get(i int) []byte {
	ch := &e.chunks[i/e.per]
	k := i % e.per
	return ch.data[ch.off[k]:ch.off[k+1]]
}

// EncodeFacts generates and encodes every peel's facts (the work each real
// peel does on its own host), using all cores.
func (f *Fleet) EncodeFacts(ctx context.Context, now time.Time) (*EncodedFacts, error) {
	start := time.Now()
	const per = 1024
	n := len(f.peels)
	if f.cfg.Facts == nil {
		return nil, errors.New("fleet: no FleetConfig.Facts to encode")
	}
	e := &EncodedFacts{per: per, chunks: make([]factChunk, (n+per-1)/per)}
	workers := runtime.GOMAXPROCS(0)
	next := atomic.Int64{}
	var raw, enc atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(e.chunks) || ctx.Err() != nil {
					return
				}
				lo, hi := k*per, min((k+1)*per, n)
				ch := factChunk{off: make([]int32, 0, hi-lo+1)}
				ch.off = append(ch.off, 0)
				for i := lo; i < hi; i++ {
					doc := f.cfg.Facts(i, f.peels[i].id, now)
					v := factcodec.EncodeFast(doc)
					raw.Add(int64(len(doc)))
					enc.Add(int64(len(v)))
					ch.data = append(ch.data, v...)
					ch.off = append(ch.off, int32(len(ch.data)))
				}
				// Kept for the fleet's life (republishes): without the
				// slack append left, up to half of it at 1,000,000 peels.
				ch.data = bytes.Clone(ch.data)
				e.chunks[k] = ch
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.RawBytes, e.EncBytes, e.Encoder, e.Took = raw.Load(), enc.Load(), "factcodec.EncodeFast", time.Since(start)
	return e, nil
}

// PublishFacts has every peel put its encoded facts into the facts bucket at
// once (js.PublishAsync to $KV.facts.<id>, as kv.Put does) and waits until all
// are stored. It returns the time from the first publish to the last ack.
func (f *Fleet) PublishFacts(ctx context.Context, e *EncodedFacts) (time.Duration, error) {
	base := f.FactsStored.Load()
	start := time.Now()
	f.facts.Store(e)
	for _, c := range f.conns {
		for _, idx := range c.peels {
			c.publishFact(e, idx)
		}
	}
	want := base + int64(len(f.peels))
	for f.FactsStored.Load() < want {
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("facts: %d of %d stored: %w", f.FactsStored.Load()-base, len(f.peels), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return time.Since(start), nil
}
