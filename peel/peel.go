// Package peel is zester-peel, the agent on every managed host: it collects
// the host's facts and keeps them in the facts bucket, runs the jobs
// dispatched to its partition, and stores each return durably in job-returns,
// holding returns on disk while it is cut off from NATS.
package peel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/facts"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/shard"
)

// Options are what a caller adds when embedding a peel (tests).
type Options struct {
	Logger      *slog.Logger
	NATSOptions []nats.Option
	Metrics     *metrics.Set
	NoHTTP      bool
	// Registry replaces the built-in functions.
	Registry *funcs.Registry
	// ReconnectRand, when set, is the jitter source of the reconnect
	// backoff (tests replay a known sequence of delays).
	ReconnectRand rand.Source
}

// Peel is one running agent.
type Peel struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	nc   *nats.Conn
	js   jetstream.JetStream
	http *obs.HTTP
	reg  *funcs.Registry
	sp   *spool

	// ident is the enrolled identity (creds.go); nil without enroll_creds.
	ident *identity

	partitions atomic.Int32
	subMu      sync.Mutex
	sub, ctl   *nats.Subscription
	jobSem     chan struct{}

	// instance is this process's nonce in beats and on the peel inbox.
	instance string
	started  time.Time
	beatNow  chan struct{}
	inbox    *nats.Subscription
	killed   atomic.Bool
	// beats and beatErrors count presence beats sent and refused locally.
	beats, beatErrors *metrics.Counter

	// settings is the local render of its settings (settings.go).
	settings *peelSettings
	// trust checks the masters' signatures (trust.go); jobsSeen keeps the
	// accepted job ids across restarts (seen.go).
	trust    *trust
	jobsSeen *seenSet
	// sched runs the schedule entries (schedule.go).
	sched *scheduler

	factsMu   sync.Mutex
	lastFacts map[string]any
	wake      chan struct{}

	// spread delays the facts republished after a reconnect; its window
	// widens with the server's refusals (peelproto.Spreader). window paces
	// the returns of concurrent jobs (peelproto.Window).
	spread *peelproto.Spreader
	window *peelproto.Window

	// basket is what the peel publishes in the basket bucket (basket.go).
	basket *basketState

	met   *peelMetrics
	wg    sync.WaitGroup
	ready atomic.Bool
	// readied is closed when the peel is ready for the first time.
	readied   chan struct{}
	readyOnce sync.Once
}

// New validates the configuration and prepares a peel.
func New(cfg Config, opts Options) (*Peel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger, opts.Metrics = daemon.Defaults(opts.Logger, opts.Metrics, cfg.LogLevel)
	ps := newPeelSettings(cfg.DataDir)
	if opts.Registry == nil {
		opts.Registry = defaultRegistry(cfg, opts.Logger, ps.result)
	}
	sp, err := openSpool(filepath.Join(cfg.DataDir, "spool"), cfg.SpoolMax)
	if err != nil {
		return nil, err
	}
	p := &Peel{
		cfg: cfg, opts: opts, reg: opts.Registry, sp: sp,
		log:    opts.Logger.With("component", "peel", "peel", cfg.ID),
		jobSem: make(chan struct{}, cfg.MaxConcurrentJobs),
		wake:   make(chan struct{}, 1),

		instance: peelproto.NewInstance(),
		started:  time.Now().UTC(),
		beatNow:  make(chan struct{}, 1),
		settings: ps,
		readied:  make(chan struct{}),

		spread: peelproto.NewSpreader(reconnectFactsSpread, reconnectFactsMaxSpread),
		window: peelproto.NewWindow(cfg.MaxConcurrentJobs, cfg.MaxConcurrentJobs),
	}
	if p.trust, err = newTrust(cfg, opts.Metrics); err != nil {
		return nil, err
	}
	if p.jobsSeen, err = openSeen(cfg.DataDir, time.Now()); err != nil {
		return nil, err
	}
	if err := checkBasketFuncs("config key basket", cfg.Basket, p.reg); err != nil {
		return nil, err
	}
	p.settings.basket = p.basketLookup
	if p.basket, err = newBasket(cfg, opts.Metrics); err != nil {
		return nil, err
	}
	p.partitions.Store(int32(cfg.Partitions))
	p.met = newPeelMetrics(opts.Metrics, p)
	if p.sched, err = newScheduler(p); err != nil {
		return nil, err
	}
	p.beats = opts.Metrics.NewCounter(`zester_peel_beats_total`)
	p.beatErrors = opts.Metrics.NewCounter(`zester_peel_beat_errors_total`)
	return p, nil
}

// defaultRegistry is the peel's functions when Options.Registry is nil;
// --check checks schedule entries against the same set.
// settingsOf backs {{ setting }} in state templates (nil: none).
func defaultRegistry(cfg Config, log *slog.Logger, settingsOf func() (*settings.Result, error)) *funcs.Registry {
	r := funcs.NewRegistry()
	state.Register(r, state.JobConfig{StatesDir: cfg.StatesDir, Source: cfg.StatesSource, Log: log, LockFile: filepath.Join(cfg.DataDir, "state.lock"), Settings: settingsOf})
	return r
}

// ID is the peel's id.
func (p *Peel) ID() string { return p.cfg.ID }

// HTTPAddr is the bound address of the HTTP endpoints.
func (p *Peel) HTTPAddr() string {
	if p.http == nil {
		return ""
	}
	return p.http.Addr()
}

// Ready reports whether the peel is connected and has published its facts.
func (p *Peel) Ready() bool { return p.ready.Load() }

// WaitReady blocks until the peel is ready for the first time, or ctx ends.
func (p *Peel) WaitReady(ctx context.Context) error {
	select {
	case <-p.readied:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("peel not ready: %w", ctx.Err())
	}
}

// Run connects and serves until ctx ends.
func (p *Peel) Run(ctx context.Context) error {
	if !p.opts.NoHTTP && p.cfg.HTTP != "" {
		h, err := obs.ListenHTTP(p.cfg.HTTP, p.opts.Metrics, p.readyCheck)
		if err != nil {
			return err
		}
		p.http = h
		defer h.Close()
	}
	// Keys, and credentials by enrollment when peel.yaml says so.
	if err := p.prepareIdentity(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := p.initSettings(); err != nil {
		return err
	}
	reconnected := make(chan struct{}, 1)
	connected := make(chan struct{})
	var connectedOnce sync.Once
	firstConnect := func() { connectedOnce.Do(func() { close(connected) }) }
	cs := newConnState(p.log, p.cfg.NATS.URL, p.cfg.NATS.ReconnectMaxDelay.D(), p.opts.ReconnectRand)
	nopts := append(cs.options(),
		nats.Name("zester-peel "+p.cfg.ID),
		// Replies come to an inbox only this peel may subscribe to, so its
		// permissions need no _INBOX.> wildcard (docs/security.md).
		nats.CustomInboxPrefix(names.PeelInboxPrefix(p.cfg.ID)),
		nats.PingInterval(20*time.Second),
		daemon.AsyncErrors(p.log),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			p.met.disconnects.Inc()
			p.log.Warn("nats disconnected; reconnecting with backoff", "url", cs.disconnected(), "err", err, "max_delay", cs.wait.Max())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			p.log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "after", cs.connected(nc).Round(time.Millisecond))
			notify(reconnected)
			firstConnect()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			p.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted(), "down_for", cs.connected(nc).Round(time.Millisecond))
			notify(reconnected)
		}),
	)
	nopts = append(nopts, p.authOptions()...)
	if p.cfg.TLS.Enabled() {
		tc, err := p.cfg.TLS.ClientConfig("tls")
		if err != nil {
			return err
		}
		nopts = append(nopts, nats.Secure(tc))
	}
	if p.cfg.Insecure {
		p.log.Warn("INSECURE: insecure: true in peel.yaml: dispatches and control messages that no master signed are accepted. For a lab only.")
	}
	defer p.jobsSeen.close()
	nopts = append(nopts, p.opts.NATSOptions...)
	closer := daemon.NewCloser()
	nopts = append(nopts, closer.Option())
	nc, err := nats.Connect(p.cfg.NATS.URL.String(), nopts...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", config.Redact(p.cfg.NATS.URL.String()), err)
	}
	p.nc = nc
	defer nc.Close()
	if nc.IsConnected() {
		cs.connected(nc)
		notify(reconnected)
		firstConnect()
	} else {
		cs.notReachable()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	p.js = js
	// One process per id: ask on the id's inbox before taking any job. The
	// check needs the server, so a peel started while NATS is away waits.
	select {
	case <-connected:
	case <-ctx.Done():
		return nil
	}
	if err := peelproto.CheckInstance(ctx, nc, p.self()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if p.inbox, err = peelproto.ServeInstance(nc, p.cfg.ID, p.self); err != nil {
		return fmt.Errorf("subscribe %s: %w", names.PeelInbox(p.cfg.ID), err)
	}
	if err := p.subscribe(); err != nil {
		return err
	}
	// The first beat before the first facts: a master that indexes this
	// peel has heard it is up.
	p.beat(false)
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.factsLoop(ctx) }()
	go func() { defer p.wg.Done(); p.connLoop(ctx, reconnected) }()
	go func() { defer p.wg.Done(); p.beatLoop(ctx) }()
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.credsLoop(ctx) }()
	go func() { defer p.wg.Done(); p.settingsLoop(ctx) }()
	go func() { defer p.wg.Done(); p.basketLoop(ctx) }()
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.sched.run(ctx) }()
	p.log.Info("peel running", "url", cs.url(), "partition", p.partition(), "instance", p.instance)
	<-ctx.Done()
	p.ready.Store(false)
	p.wg.Wait()
	// Goodbye first, so that the masters stop sending it jobs at once
	// (docs/architecture.md, presence); running jobs still store returns.
	p.bye()
	// Let running jobs write their returns, all of them within one budget
	// (a wait per job slot would outlast the grace period).
	jobsDone := time.NewTimer(jobsWait)
	defer jobsDone.Stop()
wait:
	for i := 0; i < cap(p.jobSem); i++ {
		select {
		case p.jobSem <- struct{}{}:
		case <-jobsDone.C:
			p.log.Warn("stopping with jobs still running", "waited", jobsWait)
			break wait
		}
	}
	closer.Drain(nc, drainWait)
	p.log.Info("peel stopped")
	return nil
}

// The peel's stop fits in daemon.Grace: the goodbye (bye, at most a second),
// then running jobs get jobsWait to store their returns, then the connection
// drainWait to flush.
const (
	jobsWait  = 8 * time.Second
	drainWait = 3 * time.Second
)

// Kill drops the peel's connection without a goodbye beat, as if the
// process died: the masters notice only when its beats stop. Tests use it.
func (p *Peel) Kill() {
	p.killed.Store(true)
	p.ready.Store(false)
	if p.nc != nil {
		p.nc.Close()
	}
}

// Instance is this process's instance nonce.
func (p *Peel) Instance() string { return p.instance }

func (p *Peel) self() wire.PeelInstance {
	host, _ := os.Hostname()
	return wire.PeelInstance{ID: p.cfg.ID, Instance: p.instance, Started: p.started, Host: host, PID: os.Getpid(), Key: p.identKey()}
}

// beatLoop sends presence beats at most one beat interval apart (jittered
// below it; Run sent the first), and whenever beatNow is signalled (a
// reconnect, or a master's request).
func (p *Peel) beatLoop(ctx context.Context) {
	iv := p.cfg.BeatInterval.D()
	t := time.NewTimer(peelproto.NextBeat(iv))
	defer t.Stop()
	for waitWake(ctx, t, p.beatNow) {
		p.beat(false)
		t.Reset(peelproto.NextBeat(iv))
	}
}

func (p *Peel) beat(bye bool) {
	if p.killed.Load() {
		return
	}
	// Conn: which connection of this process beats (its first is 1), so
	// that a master resends a running job only to peels that reconnected.
	conn := uint32(p.nc.Stats().Reconnects) + 1
	m := peelproto.BeatMsg(p.partition(), p.cfg.ID, wire.Beat{Instance: p.instance, Bye: bye, Interval: wire.Duration(p.cfg.BeatInterval.D()), Conn: conn})
	if err := p.nc.PublishMsg(m); err != nil {
		p.beatErrors.Inc()
		return
	}
	p.beats.Inc()
}

// bye sends the goodbye beat and waits (briefly) until the server has it.
func (p *Peel) bye() {
	if p.killed.Load() || !p.nc.IsConnected() {
		return
	}
	p.beat(true)
	if err := p.nc.FlushTimeout(time.Second); err != nil {
		p.log.Warn("goodbye beat not flushed", "err", err)
	}
}

// The facts republished after a reconnect wait a random delay in a window
// that starts at reconnectFactsSpread and doubles with every refused,
// unanswered or stalled fact publish up to reconnectFactsMaxSpread: a fleet
// of 1,000,000 peels back from an outage thus offers 500,000 facts/s at first
// and, while the server refuses, down to about 8,000/s.
const (
	reconnectFactsSpread    = 2 * time.Second
	reconnectFactsMaxSpread = 2 * time.Minute
)

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// waitWake blocks until t fires or wake is signalled (notify), and says
// whether the loop goes on: false once ctx ends. A nil wake waits for t
// only. The loops Reset t on every path, which (Go 1.23 timers) drops a
// value t may hold after a wake.
func waitWake(ctx context.Context, t *time.Timer, wake <-chan struct{}) bool {
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

func (p *Peel) readyCheck(ctx context.Context) error {
	if p.nc == nil || !p.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !p.ready.Load() {
		return errors.New("facts not published yet")
	}
	return nil
}

func (p *Peel) partition() int { return shard.Partition(p.cfg.ID, int(p.partitions.Load())) }

// subscribe (re)subscribes to the job subject of the peel's partition.
func (p *Peel) subscribe() error {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	subj := names.JobSubject(p.partition())
	if p.sub != nil {
		if p.sub.Subject == subj {
			return nil
		}
		p.sub.Unsubscribe()
	}
	sub, err := p.nc.Subscribe(subj, p.onDispatch)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subj, err)
	}
	sub.SetPendingLimits(-1, 64<<20)
	p.sub = sub
	if p.ctl != nil {
		p.ctl.Unsubscribe()
	}
	ctlSubj := names.ControlSubject(p.partition())
	if p.ctl, err = p.nc.Subscribe(ctlSubj, p.onControl); err != nil {
		return fmt.Errorf("subscribe %s: %w", ctlSubj, err)
	}
	return nil
}

// onControl handles a master's control message for this partition.
func (p *Peel) onControl(msg *nats.Msg) {
	var c wire.Control
	if err := json.Unmarshal(msg.Data, &c); err != nil {
		p.refuseControl(reasonMalformed, msg.Subject, err)
		return
	}
	if err := p.trust.verify(sig.Control, msg, sig.Options{Roles: masterSigner.Roles, MaxAge: controlMaxAge}); err != nil {
		p.refuseControl(sig.Reason(err), msg.Subject, err)
		return
	}
	switch c.Op {
	case wire.ControlRepublishFacts:
		if !slices.Contains(c.Peels, p.cfg.ID) {
			return
		}
		p.log.Info("a master asked for the facts again (gone from the bucket or unreadable); republishing")
		// A rebuilt store asks the whole fleet at once: spread the answers
		// as after a reconnect.
		time.AfterFunc(p.spread.Delay(), func() { notify(p.wake) })
		notify(p.basket.wake) // gone with the facts, most likely: checked, rewritten if so
	case wire.ControlSettingsChanged:
		if slices.Contains(c.Peels, p.cfg.ID) {
			notify(p.settings.kick)
		}
	case wire.ControlBeat:
		// A master took over the partition and asks who is up; the random
		// delay spreads a partition's answers over Within.
		if len(c.Peels) > 0 && !slices.Contains(c.Peels, p.cfg.ID) {
			return
		}
		time.AfterFunc(peelproto.BeatDelay(c.Within.D()), func() { notify(p.beatNow) })
	}
}

// connLoop runs after every (re)connect: learn the deployment's partition
// count from a master, open the facts bucket, deliver spooled returns.
//
// Returns left in the spool (a store that timed out while connected, or a
// flush cut short) are retried with backoff; an empty spool is looked at
// every spoolIdleCheck, which reads only the local directory.
func (p *Peel) connLoop(ctx context.Context, reconnected chan struct{}) {
	retry := backoff.New(time.Second, p.cfg.NATS.ReconnectMaxDelay.D())
	t := time.NewTimer(spoolIdleCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reconnected:
			notify(p.beatNow)
			notify(p.settings.kick) // the store may have been rebuilt
			p.askInfo(ctx)
			// Republish facts (the store may have been rebuilt), after a
			// random delay so that a fleet reconnecting at once does not
			// publish all its facts in the same instant.
			time.AfterFunc(p.spread.Delay(), func() { notify(p.wake); notify(p.basket.wake) })
			retry.Reset()
			p.flushSpool(ctx)
		case <-t.C:
			if p.nc.IsConnected() {
				p.flushSpool(ctx)
			}
		}
		if p.sp.count() == 0 {
			retry.Reset()
			t.Reset(spoolIdleCheck)
		} else {
			t.Reset(retry.Next())
		}
	}
}

// spoolIdleCheck is how often an empty spool is looked at for returns that
// deliver put there while connected (a store that timed out).
const spoolIdleCheck = 5 * time.Second

func (p *Peel) askInfo(ctx context.Context) {
	msg, err := p.nc.RequestWithContext(ctxTimeout(ctx, 2*time.Second), names.APISubject(names.EndpointInfo), nil)
	if err != nil {
		return // no master yet: keep the configured count
	}
	var info wire.Info
	if json.Unmarshal(msg.Data, &info) != nil || info.Partitions < 1 {
		return
	}
	if int(p.partitions.Load()) != info.Partitions {
		p.log.Warn("partition count from master differs from config; using the master's", "config", p.cfg.Partitions, "master", info.Partitions)
		p.partitions.Store(int32(info.Partitions))
		if err := p.subscribe(); err != nil {
			p.log.Error("resubscribe", "err", err)
		}
		notify(p.beatNow) // on the right partition's subject now
	}
}

func ctxTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func (p *Peel) onDispatch(msg *nats.Msg) {
	if d, ok := p.admit(msg); ok {
		go p.runJob(d)
	}
}

func (p *Peel) runJob(d wire.Dispatch) {
	p.jobSem <- struct{}{}
	defer func() { <-p.jobSem }()
	ctx := context.Background()
	if !d.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Deadline)
		defer cancel()
	}
	// After a restart the in-memory dedupe is empty: the store still knows.
	// (A direct get of its own key: the peel binds no bucket.)
	if _, _, err := peelproto.GetKV(ctxTimeout(context.Background(), 2*time.Second), p.nc, names.BucketJobReturns, names.ReturnKey(d.JID, p.cfg.ID)); err == nil {
		p.met.dupDispatch.Inc()
		return
	}
	ret := p.execute(withStateTreePin(ctx, d.StateTree), d.Function, d.Args, p.mayReveal(d))
	ret.JID = d.JID
	// A function that ends after the deadline has a real result, but the
	// masters may have stopped waiting: mark it, so that it is shown as
	// late rather than as a kill or a missing peel.
	ret.Late = !d.Deadline.IsZero() && time.Now().After(d.Deadline)
	if !ret.Success {
		p.met.jobsFailed.Inc()
	}
	p.deliver(ret)
}

// execute runs one function through the registry and makes its return: the
// one path of a dispatched job and of a scheduled run (schedule.go), so
// both judge success alike.
func (p *Peel) execute(ctx context.Context, fn string, args json.RawMessage, mayReveal bool) *wire.Return {
	env := p.jobEnv()
	env.Settings, env.MayReveal = p.settingsFor, mayReveal
	start := time.Now()
	res, err := p.reg.Run(ctx, env, fn, args)
	p.met.jobsRun.Inc()
	ret := &wire.Return{Peel: p.cfg.ID, Function: fn, Started: start.UTC(), Duration: wire.Duration(time.Since(start))}
	if err != nil {
		var fe *funcs.Error
		if errors.As(err, &fe) {
			ret.Error = &wire.Error{Code: fe.Code, Msg: fe.Msg}
		} else {
			ret.Error = &wire.Error{Code: "failed", Msg: err.Error()}
		}
	} else {
		ret.Success = true
		b, merr := json.Marshal(res)
		if merr != nil {
			ret.Success = false
			ret.Error = &wire.Error{Code: "failed", Msg: "result not encodable: " + merr.Error()}
		}
		ret.Result = b
		// A command that exits non-zero or is killed is a failed job, as
		// Salt's retcode makes it; its output stays in the return.
		if sr, ok := res.(state.Return); ok && sr.Failed() {
			ret.Success = false
			ret.Error = &wire.Error{Code: state.CodeFailed, Msg: "one or more states failed"}
		}
		if cr, ok := res.(*funcs.CmdResult); ok && (cr.Retcode != 0 || cr.TimedOut) {
			ret.Success = false
			msg := fmt.Sprintf("command exited with status %d", cr.Retcode)
			if cr.TimedOut {
				msg = "command timed out and was killed: " + cr.Note
			}
			ret.Error = &wire.Error{Code: "retcode", Msg: msg}
		}
	}
	return ret
}

// deliver stores a return, or spools it when NATS is out of reach.
func (p *Peel) deliver(ret *wire.Return) {
	msg, err := peelproto.ReturnMsg(ret)
	if err != nil {
		return
	}
	if max := p.nc.MaxPayload(); max > 0 && int64(len(msg.Data)) > max-1024 {
		size := len(msg.Data)
		ret.Success = false
		ret.Result = nil
		ret.Error = &wire.Error{Code: "too_large", Msg: fmt.Sprintf("return of %d bytes exceeds the server's maximum payload of %d bytes", size, max)}
		msg, _ = peelproto.ReturnMsg(ret)
	}
	// Long enough to ride out a stream leader election (4–9 s after a node
	// dies, in nats-server 2.15) before falling back to the spool, whose
	// flush waits for the next tick.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := peelproto.PublishReturnPaced(ctx, p.js, msg, p.window); err != nil {
		p.met.returnErrors.Inc()
		p.log.Warn("return not stored; spooling", "jid", ret.JID, "err", err)
		b, _ := json.Marshal(ret)
		if serr := p.sp.put(ret.JID+".ret", b); serr != nil {
			p.log.Error("spool", "jid", ret.JID, "err", serr)
		}
		return
	}
	p.met.returns.Inc()
}

// flushSpool delivers held returns, oldest first.
func (p *Peel) flushSpool(ctx context.Context) {
	for _, name := range p.sp.list() {
		if ctx.Err() != nil || !p.nc.IsConnected() {
			return
		}
		b, err := p.sp.read(name)
		if err != nil {
			continue
		}
		var ret wire.Return
		if err := json.Unmarshal(b, &ret); err != nil || ret.JID == "" {
			p.log.Warn("dropping corrupt spooled return", "file", name, "err", err)
			p.sp.remove(name)
			continue
		}
		if ret.Peel != p.cfg.ID {
			p.log.Warn("dropping spooled return of another peel", "file", name, "peel", ret.Peel)
			p.sp.remove(name)
			continue
		}
		err = peelproto.PublishReturnPaced(ctxTimeout(ctx, 5*time.Second), p.js, peelproto.ReturnMsgRaw(ret.JID, ret.Peel, ret.Success, b), p.window)
		if err != nil {
			return
		}
		p.sp.remove(name)
		p.met.returns.Inc()
		p.met.spoolDelivered.Inc()
	}
}

// factsFor serves facts.get and facts.refresh.
func (p *Peel) factsFor(ctx context.Context, refresh bool) (any, error) {
	if refresh {
		if err := p.publishFacts(ctx); err != nil {
			return nil, err
		}
	}
	p.factsMu.Lock()
	f := p.lastFacts
	p.factsMu.Unlock()
	if f == nil {
		if err := p.publishFacts(ctx); err != nil {
			return nil, err
		}
		p.factsMu.Lock()
		f = p.lastFacts
		p.factsMu.Unlock()
	}
	return f, nil
}

// factsLoop publishes facts at start, every interval, after a reconnect
// (the store may have been rebuilt) and when a master asks (the peel's key
// was deleted from the bucket: see onControl).
func (p *Peel) factsLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	// A failed publish is retried with backoff up to the regular interval,
	// so a fleet facing an unavailable bucket does not retry in step.
	retry := backoff.New(time.Second, p.cfg.FactsInterval.D())
	for waitWake(ctx, t, p.wake) {
		if !p.nc.IsConnected() {
			t.Reset(time.Second) // a local check; a reconnect wakes it too
			continue
		}
		if err := p.publishFacts(ctx); err != nil {
			p.met.factErrors.Inc()
			p.log.Warn("facts", "err", err)
			d := retry.Next()
			if peelproto.Overloaded(err) {
				// The server is behind: widen the fleet's spread and wait
				// a draw from it, not just the backoff.
				p.spread.Refused()
				d = max(d, p.spread.Delay())
			}
			t.Reset(d)
			continue
		}
		retry.Reset()
		p.spread.Calm()
		p.ready.Store(true)
		p.readyOnce.Do(func() { close(p.readied) })
		t.Reset(p.cfg.FactsInterval.D())
	}
}

func (p *Peel) publishFacts(ctx context.Context) error {
	doc, m, err := collectFacts(ctx, p.cfg.ID, p.settings.curvePub)
	if err != nil {
		return err
	}
	// A plain publish to its key: the peel binds no bucket, whose stream
	// info would list every peel's key (docs/security.md).
	if _, err := peelproto.PutKV(ctxTimeout(ctx, 5*time.Second), p.js, names.BucketFacts, names.FactsKey(p.cfg.ID), factcodec.EncodeOnce(doc)); err != nil {
		return fmt.Errorf("publish facts: %w", err)
	}
	p.factsMu.Lock()
	p.lastFacts = m
	p.factsMu.Unlock()
	p.met.factPublishes.Inc()
	notify(p.settings.kick) // render with the new facts
	// The fact encoder's tables (about 8 MiB) are garbage now
	// (factcodec.EncodeOnce): give them back to the OS at once rather than
	// after the next GC at the scavenger's pace, so an idle peel stays small
	// (docs/scaling.md, peel footprint). Once per facts interval.
	debug.FreeOSMemory()
	return nil
}

// collectFacts collects this host's facts as the peel publishes them: the
// document (the id first, the curve key curvePub last when set) and the same
// as a map.
func collectFacts(ctx context.Context, id, curvePub string) ([]byte, map[string]any, error) {
	f, err := facts.Collect(ctx)
	if err != nil {
		return nil, nil, err
	}
	doc, err := f.JSON()
	if err != nil {
		return nil, nil, err
	}
	doc = withCurve(withID(doc, id), curvePub)
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, nil, err
	}
	return doc, m, nil
}

// withID puts the peel id first in its fact document ("id", Salt's grain of
// the minion id), so that a value stored under another peel's key is seen
// for what it is: the masters check it against the key.
func withID(doc []byte, id string) []byte {
	if len(doc) < 2 || doc[0] != '{' {
		return doc
	}
	q, _ := json.Marshal(id)
	out := make([]byte, 0, len(doc)+len(q)+8)
	out = append(out, `{"id":`...)
	out = append(out, q...)
	if len(doc) > 2 && doc[1] != '}' {
		out = append(out, ',')
	}
	return append(out, doc[1:]...)
}
