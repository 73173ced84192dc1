package master

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// membership keeps this master's heartbeat in master-heartbeat, watches the
// others' and computes the partition table from the live set.
//
// A master is live while its key is present and it was heard from within
// DeadAfter by this master's clock. A clean stop deletes the key (others
// react to the delete at once); a dead master is dropped DeadAfter after its
// last beat, checked every Heartbeat/4, so detection takes at most
// DeadAfter + Heartbeat/4 (3.25 s with the defaults), well inside the bucket's
// 15 s TTL. Every master computes the same table from the same live set
// (rendezvous hashing), so no election is needed.
type membership struct {
	m    *Master
	self string

	mu      sync.Mutex
	seen    map[string]time.Time // member → last heard (local clock)
	records map[string]wire.MasterRecord
	table   *shard.Table
	started time.Time
	// lastEcho is when our own heartbeat last came back through the watch:
	// while it is stale, the watch (not the others) may be what is dead.
	lastEcho time.Time
	stale    bool

	// order delivers table changes in the order they were computed; notify
	// receives them (the fact index and the job engine; tests replace it).
	order  turns
	notify func(gained, lost []int)

	joined     chan struct{}
	joinedOnce sync.Once
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	abandoned  bool
}

func newMembership(m *Master) *membership {
	return &membership{
		m:       m,
		self:    m.cfg.ID,
		seen:    map[string]time.Time{},
		records: map[string]wire.MasterRecord{},
		table:   shard.NewTable(m.cfg.Partitions, nil),
		started: time.Now().UTC(),
		joined:  make(chan struct{}),
		notify: func(gained, lost []int) {
			m.index.ownershipChanged(gained, lost)
			m.jobs.ownershipChanged(gained, lost)
			m.settings.ownershipChanged(gained, lost)
		},
	}
}

func (ms *membership) start(ctx context.Context) error {
	ctx, ms.cancel = context.WithCancel(ctx)
	w, err := kvwatch.Watch(ctx, ms.m.js, names.BucketMasterHeartbeat, kvwatch.Options{OnError: ms.m.watchErr(names.BucketMasterHeartbeat), Monitor: ms.m.watches})
	if err != nil {
		return err
	}
	// Initial values: a heartbeat older than DeadAfter belongs to a master
	// that is gone.
	now := time.Now()
	if err := w.Current(ctx, func(e kvwatch.KeyValueEntry) {
		if e.Operation() == jetstream.KeyValuePut && now.Sub(e.Created()) < ms.m.cfg.DeadAfter.D() {
			ms.observe(e, e.Created())
		}
	}); err != nil {
		w.Stop()
		return err
	}
	if err := ms.beat(ctx); err != nil {
		return err
	}
	ms.seen[ms.self] = time.Now()
	ms.lastEcho = time.Now()
	ms.recompute("start")
	ms.wg.Add(2)
	go func() {
		defer ms.wg.Done()
		defer w.Stop()
		w.Each(ctx, ms.handle)
	}()
	go func() {
		defer ms.wg.Done()
		hb := ms.m.cfg.Heartbeat.D()
		beat := time.NewTicker(hb)
		check := time.NewTicker(hb / 4)
		defer beat.Stop()
		defer check.Stop()
		joinAt := time.Now().Add(hb)
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				if err := ms.beat(ctx); err != nil && ctx.Err() == nil {
					ms.m.met.errors.Inc()
					ms.m.log.Warn("heartbeat", "err", err)
				}
			case <-check.C:
				ms.recompute("expiry")
				if time.Now().After(joinAt) {
					ms.joinedOnce.Do(func() { close(ms.joined) })
				}
			}
		}
	}()
	return nil
}

func (ms *membership) observe(e kvwatch.KeyValueEntry, at time.Time) {
	var rec wire.MasterRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || names.ValidateID(e.Key()) != nil {
		ms.m.log.Warn("ignoring bad heartbeat", "key", e.Key(), "err", err)
		return
	}
	ms.mu.Lock()
	ms.seen[e.Key()] = at
	ms.records[e.Key()] = rec
	ms.mu.Unlock()
}

func (ms *membership) handle(e kvwatch.KeyValueEntry) {
	switch e.Operation() {
	case jetstream.KeyValuePut:
		ms.mu.Lock()
		_, known := ms.seen[e.Key()]
		if e.Key() == ms.self {
			now := time.Now()
			if now.Sub(ms.lastEcho) > ms.staleAfter() {
				// Our own beats were not coming back (a server restart, a
				// cut connection, a stalled watch): for that long we heard
				// nobody, so the others' silence proves nothing. Each gets a
				// full DeadAfter from now to be heard again; taking their
				// partitions at once would own them twice until their next
				// beat.
				for id, t := range ms.seen {
					if id != ms.self && t.Before(now) {
						ms.seen[id] = now
					}
				}
			}
			ms.lastEcho = now
		}
		ms.mu.Unlock()
		ms.observe(e, time.Now())
		if !known {
			ms.recompute("join " + e.Key())
		}
	default: // delete, purge, TTL marker
		if e.Key() == ms.self {
			return // our own stale key expiring; the next beat restores it
		}
		ms.mu.Lock()
		delete(ms.seen, e.Key())
		delete(ms.records, e.Key())
		ms.mu.Unlock()
		ms.recompute("leave " + e.Key())
	}
}

// recompute drops members not heard from within DeadAfter and, when the
// live set changed, installs the new table and moves work.
func (ms *membership) recompute(why string) {
	ms.mu.Lock()
	if ms.abandoned {
		ms.mu.Unlock()
		return
	}
	now := time.Now()
	dead := ms.m.cfg.DeadAfter.D()
	// Expire others only while our own beats come back through the watch;
	// otherwise a stalled watch would make every master believe it is alone.
	stale := now.Sub(ms.lastEcho) > ms.staleAfter()
	if stale != ms.stale {
		ms.stale = stale
		if stale {
			ms.m.log.Warn("heartbeat watch is stale; holding the partition table until it is back")
		} else {
			ms.m.log.Info("heartbeat watch is back")
		}
	}
	for id, t := range ms.seen {
		if id != ms.self && now.Sub(t) > dead && !stale {
			delete(ms.seen, id)
			delete(ms.records, id)
		}
	}
	ms.seen[ms.self] = now
	members := slices.Sorted(maps.Keys(ms.seen))
	old := ms.table
	if slices.Equal(old.Members(), members) {
		ms.mu.Unlock()
		return
	}
	nt := shard.NewTable(ms.m.cfg.Partitions, members)
	ms.table = nt
	turn := ms.order.take() // under mu: turns follow the order of the tables
	ms.mu.Unlock()

	gained, lost := diffOwned(old, nt, ms.self, ms.m.cfg.Partitions)
	ms.order.run(turn, func() {
		ms.m.met.tableChanges.Inc()
		ms.m.log.Info("partition table changed", "why", why, "members", members, "owned", len(nt.Owned(ms.self)), "gained", len(gained), "lost", len(lost))
		ms.notify(gained, lost)
	})
}

// staleAfter is how long our own beats may take to come back through the
// watch before the watch counts as stale (two missed beats and a margin).
func (ms *membership) staleAfter() time.Duration {
	return 2*ms.m.cfg.Heartbeat.D() + 250*time.Millisecond
}

func diffOwned(old, nt *shard.Table, self string, p int) (gained, lost []int) {
	for i := 0; i < p; i++ {
		was, is := old.Owns(self, i), nt.Owns(self, i)
		switch {
		case is && !was:
			gained = append(gained, i)
		case was && !is:
			lost = append(lost, i)
		}
	}
	return gained, lost
}

// owns reports whether this master owns partition p now.
func (ms *membership) owns(p int) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.table.Owns(ms.self, p)
}

func (ms *membership) ownedList() []int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []int
	for i := 0; i < ms.m.cfg.Partitions; i++ {
		if ms.table.Owns(ms.self, i) {
			out = append(out, i)
		}
	}
	return out
}

func (ms *membership) beat(ctx context.Context) error {
	host, _ := os.Hostname()
	rec := wire.MasterRecord{
		ID:         ms.self,
		Host:       host,
		Version:    Version,
		Started:    ms.started,
		Beat:       time.Now().UTC(),
		Partitions: ms.m.cfg.Partitions,
		Owned:      ms.ownedList(),
		Load:       wire.Load{Peels: ms.m.index.count(), ActiveJobs: ms.m.jobs.activeCount()},
	}
	b, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := ms.m.kvHeartbeat.Put(ctx, names.HeartbeatKey(ms.self), b)
	return err
}

// leave deletes our heartbeat so the others take our partitions at once.
func (ms *membership) leave() {
	if ms.cancel != nil {
		ms.cancel()
	}
	ms.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ms.m.kvHeartbeat.Delete(ctx, names.HeartbeatKey(ms.self)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		ms.m.log.Warn("heartbeat delete", "err", err)
	}
}

// abandon stops heart-beating without deleting the key (a simulated crash).
func (ms *membership) abandon() {
	ms.mu.Lock()
	ms.abandoned = true
	ms.mu.Unlock()
	if ms.cancel != nil {
		ms.cancel()
	}
}
