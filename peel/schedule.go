package peel

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/state/mod"
)

// The scheduler runs the peel's schedule entries (peel.yaml schedule:, and
// whatever SetSchedule adds), each through the same path as a dispatched job
// (Peel.execute, under the same max_concurrent_jobs slots), and publishes
// each run's result to job-events on the peel's own event subject
// (names.ScheduleEventSubject), plus a drift event when states changed.
//
// Timing. Entry E of peel P runs at anchor + k·interval + offset_k, where the
// anchor is when the entry started on this peel and offset_k is splayOffset:
// a phase fixed by (P, E) plus a random share, within splay. A fleet
// restarted in the same second therefore spreads its runs evenly over splay,
// and each peel keeps roughly the same place in the period. A run still
// going when later periods come skips them (Salt's maxrunning: 1): one run
// of an entry at a time, and the event says how many were skipped.
type scheduler struct {
	p   *Peel
	log *slog.Logger
	// randN is the random share's source (math/rand/v2's Int64N; tests
	// replay a seeded one).
	randN func(int64) int64

	runs, skipped, drifts, eventErrors *metrics.Counter

	mu sync.Mutex
	// extra is SetSchedule's layer over peel.yaml's entries.
	extra Schedule
	// want are the compiled entries of base+extra; running the loops of
	// those started (nil before run).
	want    []scheduled
	running map[string]*entryLoop
	// stopCtx ends with run: loops wait on it, runs take it.
	stopCtx context.Context
	wg      sync.WaitGroup
}

// entryLoop is one entry's running loop.
type entryLoop struct {
	spec   scheduled
	cancel context.CancelFunc
	done   chan struct{}
}

// newScheduler checks peel.yaml's schedule against the peel's functions.
func newScheduler(p *Peel) (*scheduler, error) {
	want, err := p.cfg.Schedule.compiled(p.reg.Names())
	if err != nil {
		return nil, err
	}
	m := p.opts.Metrics
	return &scheduler{p: p, log: p.log.With("component", "peel.schedule"), randN: rand.Int64N, want: want,
		runs:        m.NewCounter(`zester_peel_schedule_runs_total`),
		skipped:     m.NewCounter(`zester_peel_schedule_skipped_total`),
		drifts:      m.NewCounter(`zester_peel_schedule_drift_total`),
		eventErrors: m.NewCounter(`zester_peel_schedule_event_errors_total`),
	}, nil
}

// SetSchedule sets the schedule entries that come from another source than
// peel.yaml (settings): they are added to peel.yaml's schedule, whose entry
// wins on a shared name (as with SetBasketFuncs: the host's own file has
// the last word), and SetSchedule(nil) leaves peel.yaml's alone. Nothing changes when any entry is bad (unknown
// function, bad interval or splay, …): the error names each. It may be
// called before or during Run; an entry whose definition did not change
// keeps its timing, a changed one starts over (after its current run, if
// one is going), a removed one stops after its current run.
func (p *Peel) SetSchedule(s Schedule) error {
	merged := maps.Clone(s)
	if merged == nil {
		merged = Schedule{}
	}
	maps.Copy(merged, p.cfg.Schedule)
	want, err := merged.compiled(p.reg.Names())
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	sc := p.sched
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.extra, sc.want = maps.Clone(s), want
	sc.applyLocked()
	return nil
}

// run starts the entries' loops and stops them when ctx ends, waiting for
// runs in progress (whose function ctx ends too).
func (sc *scheduler) run(ctx context.Context) {
	sc.mu.Lock()
	sc.stopCtx, sc.running = ctx, map[string]*entryLoop{}
	sc.applyLocked()
	sc.mu.Unlock()
	<-ctx.Done()
	sc.wg.Wait()
}

// applyLocked makes the running loops those of sc.want.
func (sc *scheduler) applyLocked() {
	if sc.stopCtx == nil {
		return // run starts them
	}
	want := map[string]scheduled{}
	for _, e := range sc.want {
		want[e.name] = e
	}
	for name, l := range sc.running {
		if e, ok := want[name]; !ok || !reflect.DeepEqual(e, l.spec) {
			l.cancel()
		}
	}
	for _, e := range sc.want {
		old := sc.running[e.name]
		if old != nil && reflect.DeepEqual(e, old.spec) {
			continue
		}
		lctx, cancel := context.WithCancel(sc.stopCtx)
		l := &entryLoop{spec: e, cancel: cancel, done: make(chan struct{})}
		sc.running[e.name] = l
		var prev <-chan struct{}
		if old != nil {
			prev = old.done
		}
		sc.wg.Add(1)
		go func() { defer sc.wg.Done(); sc.loop(lctx, l, prev) }()
	}
	for name := range sc.running {
		if _, ok := want[name]; !ok {
			delete(sc.running, name)
		}
	}
}

// loop runs one entry until lctx ends. prev is the replaced loop of the
// same name: one run of an entry at a time, also across a change.
func (sc *scheduler) loop(lctx context.Context, l *entryLoop, prev <-chan struct{}) {
	defer close(l.done)
	if prev != nil {
		select {
		case <-prev:
		case <-lctx.Done():
			return
		}
	}
	e := l.spec
	anchor := time.Now()
	k := int64(1)
	if e.runOnStart {
		k = 0
	}
	at := sc.runTime(anchor, e, k)
	for {
		t := time.NewTimer(time.Until(at))
		select {
		case <-lctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// The run takes the peel's context, not the loop's: a changed
		// entry lets its current run finish.
		ev := sc.runOnce(sc.stopCtx, e)
		var skipped int
		k, at, skipped = sc.next(anchor, e, k, time.Now())
		if ev == nil {
			continue // the peel is stopping
		}
		ev.Skipped, ev.Next = skipped, at
		sc.skipped.Add(skipped)
		if skipped > 0 {
			sc.log.Warn("scheduled run took longer than its interval; periods skipped", "entry", e.name, "duration", ev.Duration.D().Round(time.Millisecond), "interval", e.interval, "skipped", skipped)
		}
		if err := sc.publish(sc.stopCtx, ev); err != nil && sc.stopCtx.Err() == nil {
			sc.eventErrors.Inc()
			sc.log.Warn("scheduled run's event not stored", "entry", e.name, "err", err)
		}
	}
}

// runTime is when period k of entry e starts.
func (sc *scheduler) runTime(anchor time.Time, e scheduled, k int64) time.Time {
	return anchor.Add(time.Duration(k)*e.interval + splayOffset(sc.p.cfg.ID, e.name, e.splay, sc.randN))
}

// next finds the first period after k whose run time is not past at now;
// skipped counts the periods passed over.
func (sc *scheduler) next(anchor time.Time, e scheduled, k int64, now time.Time) (int64, time.Time, int) {
	skipped := 0
	n := k + 1
	// Periods wholly in the past (a run of hours, a suspended host) are
	// jumped over at once rather than one by one.
	if behind := int64(now.Sub(anchor) / e.interval); behind > n {
		skipped, n = int(behind-n), behind
	}
	at := sc.runTime(anchor, e, n)
	for at.Before(now) {
		n++
		skipped++
		at = sc.runTime(anchor, e, n)
	}
	return n, at, skipped
}

// splayOffset places a run in the first splay of its period: a phase fixed
// by the peel id and the entry (FNV-1a, mixed, so that similar ids land far
// apart) plus a random share of up to a quarter of splay (so that two peels
// whose phases meet do not meet every period), wrapped into [0, splay).
// The sum of a uniform phase and any independent share, wrapped, is uniform
// again: the fleet's runs spread evenly over splay.
func splayOffset(id, entry string, splay time.Duration, randN func(int64) int64) time.Duration {
	if splay <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(entry))
	x := h.Sum64()
	// A 64-bit finalizer (MurmurHash3's fmix64): every input bit moves
	// every output bit, so ids that differ in one digit differ everywhere.
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	phase := int64(x % uint64(splay))
	return time.Duration((phase + randN(int64(splay)/4+1)) % int64(splay))
}

// runOnce runs entry e in a job slot and makes its event; nil when ctx ended
// before or during the run (the peel is stopping: no result to report).
func (sc *scheduler) runOnce(ctx context.Context, e scheduled) *wire.ScheduleEvent {
	p := sc.p
	select {
	case p.jobSem <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	ret := p.execute(ctx, e.fn, e.args, false) // a schedule has no requester: nothing revealed
	<-p.jobSem
	if ctx.Err() != nil {
		return nil
	}
	sc.runs.Inc()
	ev := &wire.ScheduleEvent{Peel: p.cfg.ID, Entry: e.name, Function: e.fn, Started: ret.Started, Duration: ret.Duration,
		Success: ret.Success, Error: ret.Error, Return: ret}
	ev.States, ev.Drift = stateDrift(e.fn, ret.Result)
	if ev.States != nil && ev.States.Failed > 0 && ev.Success {
		// A state run with failed states is a failed run, whatever the
		// function's own verdict.
		ev.Success = false
	}
	if ev.States != nil && ev.States.Failed == 0 && len(ev.Drift) == 0 && ev.Success {
		ev.Return, ev.Clean = nil, true
	}
	lvl := slog.LevelDebug
	if len(ev.Drift) > 0 || !ev.Success {
		lvl = slog.LevelInfo
		if len(ev.Drift) > 0 {
			sc.drifts.Inc()
		}
	}
	sc.log.Log(ctx, lvl, "scheduled run", "entry", e.name, "fn", e.fn, "success", ev.Success, "duration", ev.Duration.D().Round(time.Millisecond), "drift", len(ev.Drift))
	return ev
}

// stateDrift summarises a state function's return (a map from
// mod.RunKey to mod.Run) and lists the states that changed, in run order.
// Both are nil for any other function or return.
func stateDrift(fn string, result json.RawMessage) (*wire.StateSummary, []wire.DriftState) {
	if !strings.HasPrefix(fn, "state.") || len(result) == 0 {
		return nil, nil
	}
	var runs map[string]mod.Run
	if json.Unmarshal(result, &runs) != nil {
		return nil, nil
	}
	sum := &wire.StateSummary{Total: len(runs)}
	type changed struct {
		order int
		d     wire.DriftState
	}
	var ch []changed
	for key, r := range runs {
		module, id, name, function, ok := mod.SplitRunKey(key)
		if !ok {
			return nil, nil // not a state return (state.show_sls and the like)
		}
		failed := r.Status == mod.Failed
		if failed {
			sum.Failed++
		}
		if r.Changed() {
			sum.Changed++
			if r.ID != "" {
				id = r.ID
			}
			if r.Name != "" {
				name = r.Name
			}
			ch = append(ch, changed{r.RunNum, wire.DriftState{ID: id, Name: name, Function: module + "." + function, SLS: r.SLS, Failed: failed}})
		}
	}
	sort.Slice(ch, func(i, j int) bool {
		if ch[i].order != ch[j].order {
			return ch[i].order < ch[j].order
		}
		return ch[i].d.ID < ch[j].d.ID
	})
	var drift []wire.DriftState
	for _, c := range ch {
		drift = append(drift, c.d)
	}
	return sum, drift
}

// eventStoreWithin bounds the storing of one event: as long as a return's
// (a stream leader election), then the run is reported by the next one.
const eventStoreWithin = 15 * time.Second

// publish stores the run's event in job-events, and the drift event when
// states changed. An event over the server's maximum payload loses its
// full return (Truncated) but keeps the summary and the drift.
func (sc *scheduler) publish(ctx context.Context, ev *wire.ScheduleEvent) error {
	p := sc.p
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if max := p.nc.MaxPayload(); max > 0 && int64(len(b)) > max-1024 {
		ev.Return, ev.Truncated = nil, true
		if b, err = json.Marshal(ev); err != nil {
			return err
		}
	}
	// The message id makes a retried publish count once (the stream's
	// duplicate window).
	msgID := fmt.Sprintf("%s/%s/%d", names.Token(p.cfg.ID), ev.Entry, ev.Started.UnixNano())
	if err := sc.store(ctx, names.ScheduleEventSubject(p.cfg.ID, ev.Entry), msgID, b); err != nil {
		return err
	}
	if len(ev.Drift) == 0 {
		return nil
	}
	d := *ev
	d.Return, d.Truncated = nil, false
	if b, err = json.Marshal(&d); err != nil {
		return err
	}
	return sc.store(ctx, names.ScheduleDriftSubject(p.cfg.ID, ev.Entry), msgID+"/drift", b)
}

// store publishes one event with its ack, retried with backoff.
func (sc *scheduler) store(ctx context.Context, subject, msgID string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, eventStoreWithin)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	return backoff.Retry(ctx, backoff.New(100*time.Millisecond, 2*time.Second), func(actx context.Context) error {
		_, err := sc.p.js.PublishMsg(ctxTimeout(actx, 5*time.Second), msg, jetstream.WithMsgID(msgID))
		if err != nil {
			return fmt.Errorf("publish %s: %w", subject, err)
		}
		return nil
	})
}
