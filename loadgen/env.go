package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// env is where a run happens: an in-process topology with in-process
// masters, or an external NATS with external masters.
type env struct {
	cfg    *Config
	log    *slog.Logger
	dir    string
	topo   *topology.Topology
	proc   *topology.ProcessServer // --server-process: the one server, a child
	client []string                // URLs for the fleet
	hub    []string                // URLs for masters and the control connection

	mmu     sync.Mutex
	masters []*masterHandle
	nextID  int

	ctl       *nats.Conn
	js        jetstream.JetStream
	kvJobs    jetstream.KeyValue
	kvReturns jetstream.KeyValue
	kvHB      jetstream.KeyValue

	// sec is the trust of a secure run (nil: open servers, insecure masters).
	sec *secureEnv

	partitions    int
	replicas      int
	placement     string
	serverVersion string
}

type masterHandle struct {
	id     string
	m      *master.Master
	cancel context.CancelFunc
	exited chan struct{}
	err    error
	killed bool
}

func (e *env) external() bool { return e.topo == nil && e.proc == nil }

func startEnv(ctx context.Context, cfg *Config, log *slog.Logger) (*env, error) {
	e := &env{cfg: cfg, log: log, partitions: cfg.Partitions}
	if cfg.NATS != "" {
		e.client = config.SplitURLs(cfg.NATS)
		e.hub = e.client
		e.replicas = 1
	} else {
		dir, err := os.MkdirTemp(cfg.StoreDir, "zester-loadgen-")
		if err != nil {
			return nil, err
		}
		e.dir = dir
		if cfg.ServerProcess {
			if err := e.startProcessServer(ctx); err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
		}
		o := topology.Options{Dir: dir}
		if cfg.ServerLog {
			o.Logger = log
		}
		var tuneErr error
		if cfg.Secure {
			if cfg.Topology != topology.KindSingle {
				os.RemoveAll(dir)
				return nil, errSecureTopology
			}
			if e.sec, err = newSecureEnv(dir, cfg.Partitions); err != nil {
				os.RemoveAll(dir)
				return nil, fmt.Errorf("--secure: %w", err)
			}
			o.Tune = e.sec.tune(&tuneErr)
		}
		var t *topology.Topology
		switch {
		case cfg.ServerProcess:
		case cfg.Topology == topology.KindSingle:
			t, err = topology.StartSingle(o)
		case cfg.Topology == topology.KindCluster:
			t, err = topology.StartCluster(o)
		case cfg.Topology == topology.KindLeaf:
			t, err = topology.StartLeaf(o)
		case cfg.Topology == topology.KindSuperCluster:
			o.Leafs = 0
			t, err = topology.StartSuperCluster(o)
		default:
			err = fmt.Errorf("unknown topology %q", cfg.Topology)
		}
		if err == nil && tuneErr != nil {
			t.Shutdown()
			err = fmt.Errorf("--secure: %w", tuneErr)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if t != nil {
			e.topo = t
			e.client = t.ClientURLs()
			e.hub = t.HubURLs()
			e.replicas = t.Replicas()
			e.placement = t.Placement()
		}
	}
	copts := []nats.Option{nats.Name("zester-loadgen control"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond), nats.ReconnectBufSize(64 << 20)}
	if e.sec != nil {
		copts = append(copts, e.sec.adminOptions()...)
	}
	nc, err := nats.Connect(strings.Join(e.hub, ","), copts...)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("control connection to %s: %w", strings.Join(e.hub, ","), err)
	}
	e.ctl = nc
	e.serverVersion = nc.ConnectedServerVersion()
	if e.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		e.close()
		return nil, err
	}
	if !e.external() {
		for range cfg.Masters {
			if _, err := e.startMaster(ctx); err != nil {
				e.close()
				return nil, err
			}
		}
	}
	if err := e.openBuckets(ctx); err != nil {
		e.close()
		return nil, err
	}
	if e.external() {
		// The deployment's partition count comes from a master.
		var info wire.Info
		if err := e.api(ctx, "info", nil, &info); err != nil {
			e.close()
			return nil, fmt.Errorf("asking a master for the partition count: %w", err)
		}
		e.partitions = info.Partitions
	}
	return e, nil
}

func (e *env) openBuckets(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if e.kvJobs, err = e.js.KeyValue(ctx, names.BucketJobs); err == nil {
			if e.kvReturns, err = e.js.KeyValue(ctx, names.BucketJobReturns); err == nil {
				if e.kvHB, err = e.js.KeyValue(ctx, names.BucketMasterHeartbeat); err == nil {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zester buckets not found (is a master running?): %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *env) masterConfig(id string) master.Config {
	c := master.DefaultConfig()
	// The topology launchers start open servers: the masters run insecure
	// unless the run is a secure one (secure.go).
	c.Insecure = e.sec == nil
	if e.sec != nil {
		c.PKIDir = e.sec.dir
	}
	c.ID = id
	c.HTTP = ""
	c.LogLevel = "error"
	c.NATS.URL = config.URLs(e.hub)
	c.NATS.Replicas = e.replicas
	c.NATS.Placement = e.placement
	c.Partitions = e.partitions
	c.Heartbeat = config.Dur(500 * time.Millisecond)
	c.DeadAfter = config.Dur(1500 * time.Millisecond)
	c.Presence.TakeoverGrace = config.Dur(takeoverGrace(e.cfg.Peels, c.Presence.TakeoverGrace.D()))
	c.Jobs.DefaultTimeout = config.Dur(e.cfg.JobTimeout)
	return c
}

// graceRate is how many peels a second the masters and the server of one
// 2-core machine take answering a ControlBeat on top of a running fleet.
const graceRate = 50_000

// takeoverGrace is the masters' presence.takeover_grace for a fleet of
// peels: the default (2 s), or the time the fleet needs to answer a
// ControlBeat at graceRate (the answers are spread over half the grace),
// at most 30 s. A master that gains partitions asks their peels to beat
// within half its grace, and one that reconnects (a server restart) waits
// for every peel's next beat as long: at 1,000,000 peels the default made
// 666,000 peels answer within one second when two masters joined, the
// server cut the masters off, and after a restart the peels reconnecting
// later than 2 s counted as offline (h40: a ping targeted 995,195 of 1M).
func takeoverGrace(peels int, def time.Duration) time.Duration {
	need := time.Duration(peels) * time.Second / graceRate
	return min(max(def, need), 30*time.Second)
}

// masterStartAttempts is how often a master is started before the run gives
// up: a master that cannot reach JetStream within its API timeout at start
// (a 1M run's server, busy with the other masters' catch-up) exits, and is
// started again, as a service manager would.
const masterStartAttempts = 3

// startMaster starts one more in-process master and waits until it is
// ready, retrying a master that stopped during its start.
func (e *env) startMaster(ctx context.Context) (*masterHandle, error) {
	var err error
	for attempt := 1; attempt <= masterStartAttempts; attempt++ {
		var h *masterHandle
		if h, err = e.startMasterOnce(ctx); err == nil || ctx.Err() != nil {
			return h, err
		}
		e.log.Warn("master did not start", "attempt", attempt, "err", err)
	}
	return nil, err
}

func (e *env) startMasterOnce(ctx context.Context) (*masterHandle, error) {
	e.mmu.Lock()
	e.nextID++
	id := fmt.Sprintf("lg-master-%d", e.nextID)
	e.mmu.Unlock()
	m, err := master.New(e.masterConfig(id), master.Options{Logger: e.log.With("master", id), NoHTTP: true})
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	h := &masterHandle{id: id, m: m, cancel: cancel, exited: make(chan struct{})}
	go func() { h.err = m.Run(mctx); close(h.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for !m.Ready() {
		select {
		case <-h.exited:
			return nil, fmt.Errorf("master %s stopped: %v", id, h.err)
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			return nil, fmt.Errorf("master %s not ready after 60s", id)
		}
	}
	e.mmu.Lock()
	e.masters = append(e.masters, h)
	e.mmu.Unlock()
	return h, nil
}

// live returns the masters that are running.
func (e *env) live() []*masterHandle {
	e.mmu.Lock()
	defer e.mmu.Unlock()
	var out []*masterHandle
	for _, h := range e.masters {
		if !h.killed {
			select {
			case <-h.exited:
			default:
				out = append(out, h)
			}
		}
	}
	return out
}

func (e *env) liveIDs() []string {
	var ids []string
	for _, h := range e.live() {
		ids = append(ids, h.id)
	}
	return ids
}

// kill crashes a master (no hand-over).
func (e *env) kill(h *masterHandle) {
	e.mmu.Lock()
	h.killed = true
	e.mmu.Unlock()
	h.m.Kill()
}

// stopMaster stops a master cleanly (it deletes its heartbeat).
func (e *env) stopMaster(h *masterHandle) {
	h.cancel()
	select {
	case <-h.exited:
	case <-time.After(20 * time.Second):
	}
	e.mmu.Lock()
	h.killed = true
	e.mmu.Unlock()
}

// setMasters brings the number of live masters to n.
func (e *env) setMasters(ctx context.Context, n int) error {
	live := e.live()
	for len(live) > n {
		e.stopMaster(live[len(live)-1])
		live = live[:len(live)-1]
	}
	for len(live) < n {
		h, err := e.startMaster(ctx)
		if err != nil {
			return err
		}
		live = append(live, h)
	}
	return nil
}

func (e *env) close() {
	for _, h := range e.live() {
		h.cancel()
	}
	for _, h := range e.masters {
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
		}
	}
	if e.ctl != nil {
		e.ctl.Close()
	}
	if e.topo != nil {
		e.topo.Shutdown()
	}
	if e.proc != nil {
		e.proc.Stop()
		if e.cfg.Out != "" {
			// The child's log (slow consumers, its warnings) outlives the store.
			if b, err := os.ReadFile(filepath.Join(e.dir, "server", "single.log") /* topology.ProcessConfig.Name default */); err == nil {
				_ = os.WriteFile(filepath.Join(e.cfg.Out, "server.log"), b, 0o644)
			}
		}
	}
	if e.dir != "" && !e.cfg.KeepStore {
		os.RemoveAll(e.dir)
	}
}

// api calls a master API endpoint.
func (e *env) api(ctx context.Context, endpoint string, req, resp any) error {
	var body []byte
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		body = b
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m := &nats.Msg{Subject: names.APISubject(endpoint), Data: body}
	if e.sec != nil {
		if err := e.sec.signer.Sign(sig.API, m, time.Now()); err != nil {
			return err
		}
	}
	msg, err := e.ctl.RequestMsgWithContext(rctx, m)
	if err != nil {
		return err
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		var ae wire.APIError
		if json.Unmarshal(msg.Data, &ae) == nil && ae.Error != "" {
			return fmt.Errorf("%s: %s (%s)", endpoint, ae.Error, code)
		}
		return fmt.Errorf("%s: %s (%s)", endpoint, msg.Header.Get("Nats-Service-Error"), code)
	}
	if resp != nil {
		return json.Unmarshal(msg.Data, resp)
	}
	return nil
}

// heartbeats reads the heartbeat records of the given masters (all keys
// when ids is nil).
func (e *env) heartbeats(ctx context.Context, ids []string) (map[string]wire.MasterRecord, error) {
	if ids == nil {
		keys, err := e.kvHB.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, err
		}
		ids = keys
	}
	out := map[string]wire.MasterRecord{}
	for _, id := range ids {
		en, err := e.kvHB.Get(ctx, names.HeartbeatKey(id))
		if err != nil {
			continue
		}
		var rec wire.MasterRecord
		if json.Unmarshal(en.Value(), &rec) == nil {
			out[id] = rec
		}
	}
	return out, nil
}

// coverage checks that the records' Owned lists split every partition
// exactly once.
func coverage(recs map[string]wire.MasterRecord, partitions int) (ok bool, detail string) {
	owner := make([]int, partitions)
	for _, r := range recs {
		for _, p := range r.Owned {
			if p >= 0 && p < partitions {
				owner[p]++
			}
		}
	}
	var missing, double []int
	for p, n := range owner {
		switch {
		case n == 0:
			missing = append(missing, p)
		case n > 1:
			double = append(double, p)
		}
	}
	if len(missing) == 0 && len(double) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d partitions unowned, %d owned twice", len(missing), len(double))
}

// waitSettled waits until the live masters' heartbeats cover every
// partition exactly once and every live master's index knows at least
// peels peels.
func (e *env) waitSettled(ctx context.Context, peels int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ids := e.liveIDs()
		if e.external() {
			ids = nil
		}
		recs, err := e.heartbeats(ctx, ids)
		if err == nil {
			if e.external() {
				for id, r := range recs {
					if time.Since(r.Beat) > 5*time.Second {
						delete(recs, id)
					}
				}
			}
			ok, detail := coverage(recs, e.partitions)
			if ok && !e.external() && len(recs) != len(ids) {
				ok, detail = false, fmt.Sprintf("%d of %d heartbeats", len(recs), len(ids))
			}
			if ok {
				for id, r := range recs {
					if r.Load.Peels < peels {
						ok, detail = false, fmt.Sprintf("master %s indexed %d of %d peels", id, r.Load.Peels, peels)
						break
					}
				}
			}
			if ok {
				return nil
			}
			last = detail
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("masters not settled after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverIndex finds a server of the topology by name.
func (e *env) serverIndex(name string) int {
	for i, s := range e.topo.Servers() {
		if s.Name() == name {
			return i
		}
	}
	return -1
}

// streamLeader names the server leading a stream ("" when unknown).
func (e *env) streamLeader(ctx context.Context, stream string) string {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// countStored counts the messages and distinct subjects stored under filter
// in stream, reading headers only.
func (e *env) countStored(ctx context.Context, stream, filter string) (unique, msgs int, err error) {
	// One plain consumer for the whole count: an ordered consumer is
	// re-created at every Fetch, and each creation on a one-message-per-
	// subject stream counts its pending messages subject by subject under
	// the stream's lock (250 of them for 500,000 returns, ~28 s of CPU).
	cons, err := e.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubject: filter, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckNonePolicy,
		HeadersOnly: true, MemoryStorage: true, InactiveThreshold: time.Minute})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.js.DeleteConsumer(dctx, stream, cons.CachedInfo().Name)
	}()
	pending := int(cons.CachedInfo().NumPending)
	seen := make(map[string]struct{}, pending)
	idle := 0
	for msgs < pending {
		batch, err := cons.Fetch(min(pending-msgs, 2000), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return len(seen), msgs, err
		}
		n := 0
		for m := range batch.Messages() {
			seen[m.Subject()] = struct{}{}
			n++
		}
		msgs += n
		if n > 0 {
			idle = 0
			continue
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return len(seen), msgs, err
		}
		if ctx.Err() != nil {
			return len(seen), msgs, ctx.Err()
		}
		if idle++; idle >= 3 {
			return len(seen), msgs, fmt.Errorf("count of %s stalled at %d of %d messages", filter, msgs, pending)
		}
	}
	return len(seen), msgs, nil
}

// coordinatorOwner is the live master owning the job's coordinator
// partition.
func (e *env) coordinatorOwner(ctx context.Context, jid string) *masterHandle {
	p := shard.Coordinator(jid, e.partitions)
	recs, _ := e.heartbeats(ctx, e.liveIDs())
	for _, h := range e.live() {
		if slices.Contains(recs[h.id].Owned, p) {
			return h
		}
	}
	return nil
}
