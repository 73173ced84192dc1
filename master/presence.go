package master

import (
	"context"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// presence knows which peels of the partitions this master owns are up.
//
// Peels beat on core NATS (names.BeatSubject, see internal/peelproto); the
// master subscribes to the beats of its own partitions only, so each beat
// reaches one master and nothing is stored: a fleet of 1,000,000 peels
// beating every 10 s is 100,000 small messages a second spread over the
// masters, and no JetStream write (docs/architecture.md, "Presence").
//
// A peel is online while its last beat is younger than offline_after (or
// three of the interval it announces, when that is longer) and it has not
// said goodbye. State is computed when asked, so there is no timer per peel.
//
// A partition this master just gained has no presence yet: the master asks
// its peels to beat now (wire.ControlBeat, answers spread over half the
// grace) and a job resolved there waits until the grace is over, or until
// every peel of the partition's fact index was heard, whichever comes first.
// So a job never skips a peel that is up because its master is new, and
// never waits for one that is down.
type presence struct {
	m            *Master
	offlineAfter time.Duration
	grace        time.Duration

	mu    sync.Mutex
	parts map[int]*presencePart
	// lastNews is when (Unix ns) a partition still warming up last heard
	// a peel it had not heard since its warm-up began, over all the owned
	// partitions: a fleet that reconnected at once answers over all of
	// them, and while such answers still come in, silence is no proof.
	lastNews atomic.Int64

	beats, badBeats, wrongPartition, duplicates *metrics.Counter
}

// presencePart is the presence of one owned partition.
type presencePart struct {
	p   int
	sub *nats.Subscription

	mu    sync.Mutex
	peels map[string]*peelBeat
	// warm is closed once the partition's presence is known: the grace
	// after gaining it (or after this master's reconnect) is over, or every
	// peel of waiting was heard. Each warm-up gets a new channel.
	warm    chan struct{}
	warmed  bool
	waiting map[string]struct{} // nil: no early end (index not loaded)
	timer   *time.Timer
	// since is when the current warm-up started (Unix ns): a peel not
	// heard since then is not known to be down until since + grace, even
	// when the warm-up ended early (it joined the index afterwards), nor
	// while such peels still come in (presence.lastNews, splitPresence).
	since int64
}

// peelBeat is what one peel's beats told: kept small (a million peels live
// in the masters' memory), instances as 64-bit hashes, times as Unix ns.
type peelBeat struct {
	last     int64 // local clock of the last beat
	prevLast int64 // when the previous instance last beat
	dupUntil int64 // flagged as a duplicate id until then
	instance uint64
	prev     uint64
	interval time.Duration
	// connAt is when (local Unix ns) this master first heard the peel's
	// current connection (wire.Beat.Conn, conn) or process: a job sent
	// before then may not have reached it (mayHaveMissed).
	connAt int64
	conn   uint32
	bye    bool
}

func newPresence(m *Master) *presence {
	s := m.opts.Metrics
	pr := &presence{
		m:              m,
		offlineAfter:   m.cfg.Presence.OfflineAfter.D(),
		grace:          m.cfg.Presence.TakeoverGrace.D(),
		parts:          map[int]*presencePart{},
		beats:          s.NewCounter(`zester_master_beats_total`),
		badBeats:       s.NewCounter(`zester_master_bad_beats_total`),
		wrongPartition: s.NewCounter(`zester_master_beats_wrong_partition_total`),
		duplicates:     s.NewCounter(`zester_master_duplicate_peel_ids_total`),
	}
	s.NewGauge(`zester_master_peels_online`, func() float64 { on, _, _ := pr.counts(); return float64(on) })
	s.NewGauge(`zester_master_peels_duplicate`, func() float64 { _, _, dup := pr.counts(); return float64(dup) })
	return pr
}

// run keeps the beat subscriptions equal to the owned partitions. It
// reconciles against the partition table rather than following gained/lost
// notifications, so their order does not matter; waitWarm syncs on demand,
// so a job never waits for this loop.
func (pr *presence) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	lastForget := time.Now()
	reconnects := pr.m.nc.Stats().Reconnects
	for {
		pr.syncAll()
		if n := pr.m.nc.Stats().Reconnects; n != reconnects {
			reconnects = n
			pr.m.log.Info("presence: reconnected; asking the owned partitions' peels to beat")
			pr.rewarm()
		}
		if time.Since(lastForget) > time.Hour {
			lastForget = time.Now()
			pr.forget()
		}
		select {
		case <-ctx.Done():
			return
		case <-pr.m.done:
			return
		case <-t.C:
		}
	}
}

func (pr *presence) syncAll() {
	P := pr.m.cfg.Partitions
	var gained []*presencePart
	pr.mu.Lock()
	for p := 0; p < P; p++ {
		if pp, fresh := pr.syncLocked(p); fresh {
			gained = append(gained, pp)
		}
	}
	pr.mu.Unlock()
	pr.announce(gained)
}

// sync brings partition p's subscription in line with ownership and
// returns its presence, nil when this master does not own p.
func (pr *presence) sync(p int) *presencePart {
	pr.mu.Lock()
	pp, fresh := pr.syncLocked(p)
	pr.mu.Unlock()
	if fresh {
		pr.announce([]*presencePart{pp})
	}
	return pp
}

func (pr *presence) syncLocked(p int) (pp *presencePart, fresh bool) {
	owns := pr.m.member != nil && pr.m.member.owns(p)
	pp = pr.parts[p]
	switch {
	case owns && pp == nil:
		pp = &presencePart{p: p, peels: map[string]*peelBeat{}, warm: make(chan struct{}), since: time.Now().UnixNano()}
		sub, err := pr.m.nc.Subscribe(names.BeatFilter(p), func(msg *nats.Msg) { pr.onBeat(pp, msg) })
		if err != nil {
			pr.m.met.errors.Inc()
			pr.m.log.Warn("presence: subscribe", "partition", p, "err", err)
			return nil, false
		}
		sub.SetPendingLimits(-1, 64<<20)
		pp.sub = sub
		pp.waiting = pr.waitingFor(p)
		pr.parts[p] = pp
		return pp, true
	case !owns && pp != nil:
		pp.sub.Unsubscribe()
		pp.stopWarm()
		delete(pr.parts, p)
		return nil, false
	}
	return pp, false
}

// waitingFor is the set of peels whose beats end a warm-up of partition p
// early: those of the fact index, once it is loaded (nil before: no early
// end, the grace runs out).
func (pr *presence) waitingFor(p int) map[string]struct{} {
	if pr.m.index == nil || !isClosed(pr.m.index.loaded) {
		return nil
	}
	w := map[string]struct{}{}
	for _, id := range pr.m.index.ids(p) {
		w[id] = struct{}{}
	}
	return w
}

// owned is the presence of every owned partition now (taken under pr.mu;
// each part has its own lock).
func (pr *presence) owned() []*presencePart {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return slices.Collect(maps.Values(pr.parts))
}

// rewarm starts a new warm-up of every owned partition: after this master's
// connection was down, beats were lost and silence proves nothing.
func (pr *presence) rewarm() {
	parts := pr.owned()
	for _, pp := range parts {
		w := pr.waitingFor(pp.p)
		pp.mu.Lock()
		if pp.timer != nil {
			pp.timer.Stop()
		}
		if pp.warmed {
			pp.warm, pp.warmed = make(chan struct{}), false
		}
		pp.waiting, pp.since = w, time.Now().UnixNano()
		pp.mu.Unlock()
	}
	pr.announce(parts)
}

// announce asks the peels of freshly gained partitions to beat now, once
// the subscriptions are known to the server, and starts their grace.
func (pr *presence) announce(parts []*presencePart) {
	if len(parts) == 0 {
		return
	}
	if err := pr.m.nc.FlushTimeout(2 * time.Second); err != nil {
		pr.m.log.Debug("presence: flush", "err", err)
	}
	for _, pp := range parts {
		pp.mu.Lock()
		if len(pp.waiting) == 0 && pp.waiting != nil {
			pp.endWarmLocked() // no peel known there: nothing to wait for
		} else {
			warm := pp.warm
			pp.timer = time.AfterFunc(pr.grace, func() { pp.endWarmOf(warm) })
		}
		pp.mu.Unlock()
		pr.m.control(pp.p, wire.Control{Op: wire.ControlBeat, Within: wire.Duration(pr.grace / 2)})
	}
}

// endWarmOf ends the warm-up whose channel is warm, unless a newer one
// replaced it.
func (pp *presencePart) endWarmOf(warm chan struct{}) {
	pp.mu.Lock()
	if pp.warm == warm {
		pp.endWarmLocked()
	}
	pp.mu.Unlock()
}

func (pp *presencePart) endWarmLocked() {
	if !pp.warmed {
		close(pp.warm)
		pp.warmed = true
	}
	pp.waiting = nil
}

func (pp *presencePart) stopWarm() {
	pp.mu.Lock()
	if pp.timer != nil {
		pp.timer.Stop()
	}
	pp.endWarmLocked()
	pp.mu.Unlock()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// instanceKey turns an instance nonce into 64 bits: the hex nonce itself,
// or its hash when a peel sends something else.
func instanceKey(s string) uint64 {
	if len(s) == 16 {
		if v, err := strconv.ParseUint(s, 16, 64); err == nil {
			return v
		}
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func (pr *presence) onBeat(pp *presencePart, msg *nats.Msg) {
	p, id, b, err := peelproto.ParseBeat(msg.Subject, msg.Data)
	if err != nil {
		pr.badBeats.Inc()
		return
	}
	if p != pp.p || shard.Partition(id, pr.m.cfg.Partitions) != p {
		// A peel that uses another partition count than the masters.
		pr.wrongPartition.Inc()
		return
	}
	pr.beats.Inc()
	inst := instanceKey(b.Instance)
	now := time.Now().UnixNano()
	pp.mu.Lock()
	e := pp.peels[id]
	if e == nil {
		e = &peelBeat{}
		pp.peels[id] = e
	}
	if e.last < pp.since && now < pp.since+int64(pr.warmUpBound()) {
		pr.lastNews.Store(now) // first heard in this warm-up
	}
	window := int64(pr.offlineAfterFor(e.interval))
	if !b.Bye && (e.connAt == 0 || e.instance != inst || e.conn != b.Conn) {
		e.connAt, e.conn = now, b.Conn
	}
	dupStart := false
	switch {
	case b.Bye && e.instance != 0 && e.instance != inst:
		// The goodbye of an instance that is not the current one.
	case b.Bye && now < e.dupUntil && now-e.prevLast <= window:
		// One of two processes with this id stopped; the other is up.
		e.instance, e.last, e.prev = e.prev, e.prevLast, 0
	case b.Bye:
		e.instance, e.last, e.bye = inst, now, true
	default:
		switch {
		case e.instance == 0 || e.instance == inst:
		case e.prev == inst && now-e.prevLast <= window:
			// The instance we had taken for replaced beats again: two
			// processes run with this id (a cloned host). A restart never
			// does this: its old instance stays silent.
			dupStart = now > e.dupUntil
			e.dupUntil = now + 2*window
			e.prev, e.prevLast = e.instance, e.last
		default:
			e.prev, e.prevLast = e.instance, e.last
		}
		e.instance, e.last, e.bye, e.interval = inst, now, false, b.Interval.D()
	}
	if pp.waiting != nil {
		delete(pp.waiting, id)
		if len(pp.waiting) == 0 {
			pp.endWarmLocked()
		}
	}
	pp.mu.Unlock()
	if dupStart {
		pr.duplicates.Inc()
		// With enrollment only the id's own credentials may beat as it, so
		// both processes hold its key: a copied data_dir.
		pr.m.log.Warn("two peel processes beat with the same id (a cloned host, or a copied data_dir holding its key); its jobs run twice and one return is refused",
			"peel", id, "partition", p)
	}
}

// warmUpBound is how long after a warm-up began silence is proof whatever
// still comes in: the grace and one default beat interval (splitPresence).
func (pr *presence) warmUpBound() time.Duration {
	return pr.grace + pr.offlineAfter/3
}

func (pr *presence) offlineAfterFor(interval time.Duration) time.Duration {
	return offlineWindow(pr.offlineAfter, interval)
}

func (pr *presence) online(e *peelBeat, now int64) bool { return beatOnline(e, now, pr.offlineAfter) }

// offlineWindow is how long a peel beating every interval may stay silent
// before it is offline: offline_after, or three of its beats when it beats
// more slowly than that allows.
func offlineWindow(offlineAfter, interval time.Duration) time.Duration {
	return max(offlineAfter, 3*interval)
}

// beatOnline: a peel is online at now (Unix ns) while its last beat is
// within its offline window and was not a goodbye.
func beatOnline(e *peelBeat, now int64, offlineAfter time.Duration) bool {
	return e != nil && !e.bye && now-e.last <= int64(offlineWindow(offlineAfter, e.interval))
}

// waitWarm returns once the presence of every partition of parts is known
// (see the type comment), or ctx ends. Partitions this master does not own
// are skipped (split then calls their peels online).
func (pr *presence) waitWarm(ctx context.Context, parts []int) {
	// Sync them all first, so that their warm-ups run at the same time.
	warms := make([]chan struct{}, 0, len(parts))
	for _, p := range parts {
		pp := pr.sync(p)
		if pp == nil {
			continue
		}
		pp.mu.Lock()
		warms = append(warms, pp.warm)
		pp.mu.Unlock()
	}
	for _, w := range warms {
		select {
		case <-w:
		case <-ctx.Done():
			return
		}
	}
}
