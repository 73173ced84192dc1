// Package master is zester-master: a stateless NATS client that bootstraps
// the KV buckets and the job-events stream, shares the fleet's partitions
// with the other live masters, keeps the fact index of the partitions it
// owns, accepts jobs, dispatches them to peels and aggregates their returns.
//
// Everything a master knows it can rebuild from JetStream; any master may die
// and the others take over its partitions (see membership.go).
package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/version"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/topology"
)

// Version is the master's version, reported in heartbeats and the API.
var Version = version.String()

// Options are what a caller adds to the configuration when embedding a
// master (tests, the load generator).
type Options struct {
	Logger *slog.Logger
	// NATSOptions are extra connect options (e.g. nats.InProcessServer).
	NATSOptions []nats.Option
	// Metrics receives the master's metrics; nil makes a new set.
	Metrics *metrics.Set
	// NoHTTP skips the /healthz, /readyz, /metrics listener.
	NoHTTP bool
}

// Master is one running zester-master.
type Master struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	embedded *topology.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	http     *obs.HTTP

	kvFacts, kvJobs, kvReturns, kvHeartbeat jetstream.KeyValue

	// Trust (secure.go): nil in insecure mode.
	pki    *pki.PKI
	creds  string // the credentials file the master connects with
	signer *sig.Signer
	users  *sig.Verifier
	replay *sig.ReplayGuard
	// accountChecked is when account.jwt was last looked at (Unix ns).
	accountChecked atomic.Int64

	member   *membership
	index    *factIndex
	jobs     *jobEngine
	presence *presence
	enroll   atomic.Pointer[enrollService]
	settings *settingsRenderer
	// basket answers basket reads (basket.go), made on first use.
	basketOnce sync.Once
	basket     *basketReader
	// watches tracks every JetStream watch above; /readyz fails while one
	// is blind.
	watches          *kvwatch.Monitor
	watchRecreations atomic.Uint64

	met   *masterMetrics
	ready atomic.Bool
	// joined is closed when the master is ready for the first time.
	joined  chan struct{}
	failErr atomic.Pointer[error]
	// killed: Kill ended the master; Run must not take the clean-stop
	// path (no goodbye, no hand-over), as after a crash.
	killed atomic.Bool
	closer *daemon.Closer

	closeOnce sync.Once
	done      chan struct{}
}

// New checks the configuration and prepares a master; Run starts it.
func New(cfg Config, opts Options) (*Master, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger, opts.Metrics = daemon.Defaults(opts.Logger, opts.Metrics, cfg.LogLevel)
	m := &Master{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger.With("component", "master", "master", cfg.ID),
		done:   make(chan struct{}),
		joined: make(chan struct{}),
		closer: daemon.NewCloser(),
	}
	m.met = newMasterMetrics(opts.Metrics, m)
	m.watches = kvwatch.NewMonitor(m.watchRecreated)
	return m, nil
}

// ID is the master's id.
func (m *Master) ID() string { return m.cfg.ID }

// Ready reports whether the master has joined and taken its share.
func (m *Master) Ready() bool { return m.ready.Load() }

// WaitReady blocks until the master is ready for the first time; it returns
// an error when ctx ends or the master stops first.
func (m *Master) WaitReady(ctx context.Context) error {
	select {
	case <-m.joined:
		return nil
	case <-m.done:
		return errors.New("master stopped before it was ready")
	case <-ctx.Done():
		return fmt.Errorf("master not ready: %w", ctx.Err())
	}
}

// Embedded is the in-process NATS server when the master started one.
func (m *Master) Embedded() *topology.Server { return m.embedded }

// HTTPAddr is the bound address of the HTTP endpoints ("" when off).
func (m *Master) HTTPAddr() string {
	if m.http == nil {
		return ""
	}
	return m.http.Addr()
}

// Run starts the master and blocks until ctx is cancelled or it fails.
// On a clean stop the master deletes its heartbeat so the others take its
// partitions at once.
func (m *Master) Run(ctx context.Context) error {
	err := m.start(ctx)
	if err == nil {
		m.log.Info("master running", "partitions", m.cfg.Partitions, "nats", m.nc.ConnectedUrlRedacted())
		select {
		case <-ctx.Done():
		case <-m.done:
		}
		if fe := m.failErr.Load(); fe != nil {
			err = *fe
		}
	}
	m.stop(err == nil && !m.killed.Load())
	return err
}

// Kill drops the master's NATS connection without the clean hand-over, as if
// the process died. Tests and the load generator use it for failover.
func (m *Master) Kill() {
	m.killed.Store(true)
	m.closeOnce.Do(func() {
		m.ready.Store(false)
		if m.member != nil {
			m.member.abandon()
		}
		if m.nc != nil {
			m.nc.Close()
		}
		close(m.done)
	})
}

func (m *Master) start(ctx context.Context) error {
	if err := m.setupTrust(); err != nil {
		return err
	}
	if len(m.cfg.NATS.URL) == 0 {
		e := m.cfg.NATS.Embedded
		tune, err := embeddedTune(m.cfg, m.pki)
		if err != nil {
			return fmt.Errorf("embedded nats-server: %w", err)
		}
		srv, err := topology.StartServer(topology.ServerConfig{
			Name:     m.cfg.ID,
			Listen:   e.Listen,
			Monitor:  e.Monitor,
			StoreDir: e.StoreDir,
			Logger:   m.opts.Logger.With("component", "nats-server"),
			Tune:     tune,
		})
		if err != nil {
			return fmt.Errorf("embedded nats-server: %w", err)
		}
		m.embedded = srv
		m.log.Info("embedded nats-server started", "url", srv.ClientURL(), "monitor", srv.MonitorURL(), "store_dir", e.StoreDir,
			"operator_mode", m.pki != nil, "tls", m.cfg.TLS.Enabled())
	}
	url := m.cfg.NATS.URL.String()
	if m.embedded != nil {
		url = m.embedded.ClientURL()
	}
	reconnect := backoff.New(100*time.Millisecond, 2*time.Second)
	nopts := []nats.Option{
		nats.Name("zester-master " + m.cfg.ID),
		nats.MaxReconnects(-1),
		// Delays after each full pass over the server list; reset by the
		// reconnect handler. A master is one of a few clients: a short cap
		// keeps its failover quick.
		nats.CustomReconnectDelay(func(int) time.Duration { return reconnect.Next() }),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(5 * time.Second),
		daemon.AsyncErrors(m.log),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.met.disconnects.Inc()
			m.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			reconnect.Reset()
			m.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			go m.checkStore()
			if s := m.enroll.Load(); s != nil {
				go s.reapply()
			}
		}),
	}
	auth, err := m.connectOptions()
	if err != nil {
		return err
	}
	nopts = append(nopts, auth...)
	nopts = append(nopts, m.opts.NATSOptions...)
	nopts = append(nopts, m.closer.Option())
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", config.Redact(url), err)
	}
	m.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	m.js = js

	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := m.waitJetStream(bctx); err != nil {
		return err
	}
	if err := Bootstrap(bctx, js, Layout{Replicas: m.cfg.NATS.Replicas, Placement: m.cfg.NATS.Placement, Retention: m.cfg.Retention}); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{names.BucketFacts, &m.kvFacts}, {names.BucketJobs, &m.kvJobs}, {names.BucketJobReturns, &m.kvReturns}, {names.BucketMasterHeartbeat, &m.kvHeartbeat}} {
		kv, err := js.KeyValue(bctx, b.name)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}

	if !m.opts.NoHTTP && m.cfg.HTTP != "" {
		h, err := obs.ListenHTTP(m.cfg.HTTP, m.opts.Metrics, m.readyCheck)
		if err != nil {
			return err
		}
		m.http = h
	}

	m.index = newFactIndex(m)
	m.jobs = newJobEngine(m)
	m.presence = newPresence(m)
	m.member = newMembership(m)
	m.settings = newSettingsRenderer(m)
	m.settings.basket = m.basketLookup
	// Membership first: the index and the job engine need the table to know
	// which partitions are theirs.
	if err := m.member.start(ctx); err != nil {
		return err
	}
	if err := m.index.start(ctx); err != nil {
		return err
	}
	if err := m.jobs.start(ctx); err != nil {
		return err
	}
	if err := m.settings.start(ctx); err != nil {
		return err
	}
	go m.presence.run(ctx)
	m.startStateTree(ctx)
	if err := m.startAPI(); err != nil {
		return err
	}
	if err := m.startEnroll(ctx); err != nil {
		return err
	}
	go func() {
		// Ready once joined: the first heartbeat is written and one more
		// interval has passed to hear the others.
		select {
		case <-m.member.joined:
		case <-m.done:
			return
		case <-ctx.Done():
			return
		}
		m.ready.Store(true)
		close(m.joined)
		m.log.Info("master ready", "owned", len(m.member.ownedList()))
	}()
	return nil
}

// waitJetStream retries until the JetStream API answers (a cluster may still
// be electing its meta leader).
func (m *Master) waitJetStream(ctx context.Context) error {
	err := backoff.Retry(ctx, backoff.New(100*time.Millisecond, 2*time.Second), func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := m.js.AccountInfo(actx)
		return err
	})
	if err != nil {
		return fmt.Errorf("jetstream not available at %s: %w", m.nc.ConnectedUrlRedacted(), err)
	}
	return nil
}

// checkStore runs after a reconnect. When the buckets are gone (the
// JetStream store was wiped or replaced), this master's watches and
// in-memory state describe a store that no longer exists: it stops with an
// error, and its supervisor's restart bootstraps the empty store, as at
// first start. A bucket that merely cannot be reached yet is not a wipe.
func (m *Master) checkStore() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := backoff.Retry(ctx, backoff.New(100*time.Millisecond, 2*time.Second), func(ctx context.Context) error {
		_, err := m.js.Stream(ctx, names.KVStream(names.BucketFacts))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return backoff.Permanent(err)
		}
		return err
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		m.fail(fmt.Errorf("JetStream store was wiped (stream %s is gone): restart to bootstrap it again", names.KVStream(names.BucketFacts)))
	}
}

// fail stops the master with err (Run returns it).
func (m *Master) fail(err error) {
	m.failErr.CompareAndSwap(nil, &err)
	m.log.Error("master stopping", "err", err)
	m.closeOnce.Do(func() { close(m.done) })
}

func (m *Master) readyCheck(ctx context.Context) error {
	if m.nc == nil || !m.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !m.ready.Load() {
		return errors.New("not joined yet")
	}
	if blind := m.watches.Blind(); len(blind) > 0 {
		var b strings.Builder
		for i, h := range blind {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "watch %s (stream %s) blind for %s: %s; replacing its consumer", h.Name, h.Stream, time.Since(h.BlindSince).Round(time.Millisecond), h.Reason)
		}
		return errors.New(b.String())
	}
	if _, err := m.kvJobs.Status(ctx); err != nil {
		return fmt.Errorf("jobs bucket: %w", err)
	}
	return nil
}

// drainWait bounds the wait for the connection to drain at a stop: with the
// hand-over before it, well inside daemon.Grace.
const drainWait = 3 * time.Second

func (m *Master) stop(clean bool) {
	m.ready.Store(false)
	if clean && m.member != nil {
		m.member.leave()
	}
	m.closeOnce.Do(func() { close(m.done) })
	if m.jobs != nil {
		m.jobs.stop()
	}
	if m.http != nil {
		m.http.Close()
	}
	if m.nc != nil {
		m.closer.Drain(m.nc, drainWait)
	}
	if m.embedded != nil {
		m.embedded.Shutdown()
	}
	m.log.Info("master stopped")
}

// Watches is the health of the master's JetStream watches now.
func (m *Master) Watches() []kvwatch.Health { return m.watches.Watches() }

// WatchRecreations counts the watch consumers replaced by their watchdog.
func (m *Master) WatchRecreations() uint64 { return m.watchRecreations.Load() }

// Owned lists the partitions this master owns now.
func (m *Master) Owned() []int {
	if m.member == nil {
		return nil
	}
	return m.member.ownedList()
}

// PeelCount is the number of peels in the fact index.
func (m *Master) PeelCount() int {
	if m.index == nil {
		return 0
	}
	return m.index.count()
}

// Partitions is the deployment's partition count.
func (m *Master) Partitions() int { return m.cfg.Partitions }

// watchRecreated logs and counts a watch consumer replaced by its watchdog.
func (m *Master) watchRecreated(r kvwatch.Recreated) {
	m.watchRecreations.Add(1)
	m.met.watchRecreated(r.Watch)
	m.log.Warn("watch consumer replaced", "watch", r.Watch, "stream", r.Stream, "consumer", r.Consumer, "reason", r.Reason, "blind", r.Blind.Round(time.Millisecond))
}

// watchErr logs the errors of a bucket watch (its consumer resets itself).
func (m *Master) watchErr(bucket string) func(error) {
	return func(err error) {
		if m.nc != nil && m.nc.IsClosed() {
			return
		}
		m.log.Debug("watch", "bucket", bucket, "err", err)
	}
}

// control publishes a control message to the peels of partition p.
func (m *Master) control(p int, c wire.Control) {
	b, _ := json.Marshal(c)
	if err := m.nc.PublishMsg(m.signed(sig.Control, names.ControlSubject(p), b)); err != nil {
		m.met.errors.Inc()
		m.log.Warn("control", "partition", p, "op", c.Op, "err", err)
	}
}
