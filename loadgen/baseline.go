package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/topology"
)

// Scratch buckets of the raw baselines; created and deleted by the run.
const (
	baselineBucket = "lg-baseline"
	scratchBucket  = "lg-scratch"
)

// returnShaped builds a message shaped like a stored return (same headers,
// same body) for a scratch bucket.
func returnShaped(bucket, key, jid, peel string, started time.Time) *nats.Msg {
	ret := wire.Return{JID: jid, Peel: peel, Function: "test.ping", Success: true, Result: json.RawMessage("true"),
		Started: started.UTC(), Duration: wire.Duration(time.Since(started))}
	b, _ := json.Marshal(&ret)
	m := &nats.Msg{Subject: names.KVSubjectPrefix(bucket) + key, Data: b, Header: nats.Header{}}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	m.Header.Set(wire.HeaderOK, "1")
	return m
}

func (r *runner) scratchKV(ctx context.Context, name string) (jetstream.KeyValue, func(), error) {
	e := r.env
	cfg := jetstream.KeyValueConfig{Bucket: name, History: 1, Storage: jetstream.FileStorage, Replicas: e.replicas}
	if e.placement != "" {
		cfg.Placement = &jetstream.Placement{Cluster: e.placement}
	}
	_ = e.js.DeleteKeyValue(ctx, name)
	kv, err := e.js.CreateKeyValue(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("scratch bucket %s: %w", name, err)
	}
	return kv, func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.js.DeleteKeyValue(dctx, name)
	}, nil
}

// settle lets subscription interest cross routes, gateways and leaf links.
func (r *runner) settle() {
	if r.env.proc == nil && (r.env.topo == nil || r.env.topo.Kind() != topology.KindSingle) {
		time.Sleep(300 * time.Millisecond)
	}
}

func (r *runner) baselineScenario(ctx context.Context, s *Scenario) {
	e, f := r.env, r.fleet
	n := f.Peels()
	b := &BaselineResult{N: n}
	s.Baseline = b
	run := r.runID

	// (a) Core fan-out.
	r.prog.set("baseline: core fan-out")
	collect := "lgbase." + run + ".collect"
	var got atomic.Int64
	done := make(chan struct{})
	stopCollect, ncoll, err := r.collectors(collect, n, func() {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		s.fail("%v", err)
		return
	}
	b.Collectors = ncoll
	st := func() string { return fmt.Sprintf("replies %s", fmtInt(got.Load())) }
	r.status.Store(&st)
	defer r.status.Store(nil)
	payload := make([]byte, 200)
	unsub, err := f.SubscribeAll(ctx, "lgbase."+run+".bcast", func(c *simfleet.Conn, _ *nats.Msg) {
		for range c.Peels() {
			c.NC().Publish(collect, payload)
		}
	})
	if err != nil {
		stopCollect()
		s.fail("%v", err)
		return
	}
	r.settle()
	t0 := time.Now()
	e.ctl.Publish("lgbase."+run+".bcast", nil)
	e.ctl.Flush()
	select {
	case <-done:
		b.FanoutTime = Sec(time.Since(t0))
	case <-time.After(time.Minute):
		s.fail("fan-out: %d of %d replies after a minute", got.Load(), n)
	}
	unsub()
	stopCollect()

	// (b) JetStream PublishAsync rate from one connection.
	r.prog.set("baseline: JetStream PublishAsync rate")
	if _, drop, err := r.scratchKV(ctx, scratchBucket); err != nil {
		s.fail("%v", err)
	} else {
		var errs atomic.Int64
		pjs, _ := jetstream.New(e.ctl, jetstream.WithPublishAsyncMaxPending(4096),
			jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { errs.Add(1) }))
		now := time.Now()
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			msgs[i] = returnShaped(scratchBucket, run+"."+strconv.Itoa(i), "lgscratch", f.ID(i), now)
		}
		t0 := time.Now()
		for _, m := range msgs {
			if _, err := pjs.PublishMsgAsync(m); err != nil {
				errs.Add(1)
			}
		}
		select {
		case <-pjs.PublishAsyncComplete():
			b.PublishTime = Sec(time.Since(t0))
			b.PublishRate = float64(n) / time.Since(t0).Seconds()
		case <-time.After(2 * time.Minute):
			s.fail("JetStream publish: not complete after 2 minutes")
		}
		if n := errs.Load(); n > 0 {
			s.note("JetStream publish: %d errors", n)
		}
		drop()
	}

	// (c) The ping equivalent, three times; the best counts (the most
	// favourable figure for raw NATS, so the ratio is conservative).
	// Each run stores into a bucket of its own (created empty, deleted
	// after), as the ping's returns go into a job-returns stream without a
	// million earlier subjects: at 1,000,000 peels a shared bucket held 3M
	// subjects by the third run, which took twice as long as the first.
	var best []time.Duration
	for k := range 3 {
		r.prog.set(fmt.Sprintf("baseline: ping equivalent, run %d of 3", k+1))
		_, drop, err := r.scratchKV(ctx, baselineBucket)
		if err != nil {
			s.fail("%v", err)
			return
		}
		lat, took, err := r.pingEquivalent(ctx, fmt.Sprintf("%s-%d", run, k))
		drop()
		if err != nil {
			s.fail("ping equivalent: %v", err)
			break
		}
		b.PingEquivRuns = append(b.PingEquivRuns, Sec(took))
		if b.PingEquivTime == 0 || Sec(took) < b.PingEquivTime {
			b.PingEquivTime = Sec(took)
			best = lat
		}
	}
	if len(best) > 0 {
		b.PingEquivStored = Sec(best[len(best)-1])
		b.PingEquivP50, b.PingEquivP99 = Sec(pct(best, 0.5)), Sec(pct(best, 0.99))
	}
	r.baseline = b
	s.Summary = fmt.Sprintf("(a) core fan-out, %s × 200 B replies to %s: %s; (b) JetStream PublishAsync from one connection: %s (%s for %s); (c) ping equivalent, broadcast → %s PublishAsync stores → one consumer read them all: %s best of %s (all stored %s, p50 %s, p99 %s)",
		fmtInt(int64(n)), collectorsText(b.Collectors), b.FanoutTime, fmtRate(b.PublishRate), b.PublishTime, fmtInt(int64(n)), fmtInt(int64(n)), b.PingEquivTime, joinSecs(b.PingEquivRuns), b.PingEquivStored, b.PingEquivP50, b.PingEquivP99)
}

// collectorBytes is what one collector may have pending in the server
// (half of nats-server's default max_pending, 64 MiB per client): past its
// max_pending the server cuts a client off as a slow consumer and drops what
// it held, so a burst of a million replies to one connection (~260 MB with
// subjects and framing) is lost by design, whatever the machine.
const collectorBytes = 32 << 20

// collectors subscribes the fan-out's collectors: one queue group of enough
// connections of their own that the whole burst of n replies, unread, fits
// their server-side pending limits (collectorBytes each). on runs once per
// reply received. It returns a stop function and the number of collectors.
func (r *runner) collectors(subject string, n int, on func()) (func(), int, error) {
	k := max(1, (n*260+collectorBytes-1)/collectorBytes)
	var conns []*nats.Conn
	stop := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	opts := []nats.Option{nats.Name("zester-loadgen collector")}
	if r.env.sec != nil {
		opts = append(opts, r.env.sec.adminOptions()...)
	}
	for range k {
		nc, err := nats.Connect(strings.Join(r.env.hub, ","), opts...)
		if err != nil {
			stop()
			return nil, 0, fmt.Errorf("fan-out collector: %w", err)
		}
		conns = append(conns, nc)
		sub, err := nc.QueueSubscribe(subject, "collect", func(*nats.Msg) { on() })
		if err != nil {
			stop()
			return nil, 0, fmt.Errorf("fan-out collector: %w", err)
		}
		sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			stop()
			return nil, 0, fmt.Errorf("fan-out collector: %w", err)
		}
	}
	return stop, k, nil
}

func collectorsText(k int) string {
	if k <= 1 {
		return "one collector"
	}
	return fmt.Sprintf("%d collectors (one queue group, so that the burst fits their server-side pending limits)", k)
}

func joinSecs(v []Seconds) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

// pingEquivalent is baseline (c) once: the fastest bare pipeline of the
// same work as a ping, under the same flow control. One core broadcast to
// every fleet connection; on it, each connection stores a return-shaped
// message per peel (the same subject shape, headers and body as a return:
// expected last subject sequence 0, so stored exactly once) with
// js.PublishMsgAsync straight from the broadcast handler, each taking room
// in the connection's peelproto.Window first (Conn.PublishNow), refusals
// retried as the fleet's are; one ordered consumer (headers only, like the
// master's) counts them. The bodies are spliced from one encoded return, so
// no per-message encoding is counted. It returns the per-message stored
// latencies (sorted) and the time from the broadcast until the consumer had
// all.
func (r *runner) pingEquivalent(ctx context.Context, run string) ([]time.Duration, time.Duration, error) {
	e, f := r.env, r.fleet
	n := f.Peels()
	prefix := names.KVSubjectPrefix(baselineBucket) + run + "."
	storedAt := make([]int64, n)
	var stored atomic.Int64
	mark := func(m *nats.Msg) {
		id := m.Subject[len(prefix):]
		if i := simfleet.PeelIndex(id); i >= 0 && i < n && atomic.CompareAndSwapInt64(&storedAt[i], 0, time.Now().UnixNano()) {
			stored.Add(1)
		}
	}
	unExtra := f.OnExtra(prefix, func(c *simfleet.Conn, m *nats.Msg, _ *jetstream.PubAck, err error) {
		switch {
		case err == nil, peelproto.IsAlreadyStored(err):
			mark(m)
		default:
			c.Retry(m, err)
		}
	})
	defer unExtra()
	cons, err := e.js.OrderedConsumer(ctx, names.KVStream(baselineBucket), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"}, DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("consumer: %w", err)
	}
	var consumed atomic.Int64
	st := func() string {
		return fmt.Sprintf("stored %s, consumed %s", fmtInt(stored.Load()), fmtInt(consumed.Load()))
	}
	r.status.Store(&st)
	defer r.status.Store(nil)
	cdone := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if consumed.Add(1) == int64(n) {
			close(cdone)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	bcast := "lgbase." + run + ".ping"
	jid := "lgbase" + run
	hdr := returnShaped(baselineBucket, "k", jid, "@", time.Now()).Header
	unsub, err := f.SubscribeAll(ctx, bcast, func(c *simfleet.Conn, _ *nats.Msg) {
		// One encoded return with the peel id cut out; each message is the
		// two halves around its own id (the bytes a peel would send).
		tmpl := returnShaped(baselineBucket, "k", jid, "@", time.Now()).Data
		at := bytes.Index(tmpl, []byte(`"@"`)) + 1
		head, tail := tmpl[:at], tmpl[at+1:]
		for _, idx := range c.Peels() {
			id := f.ID(int(idx))
			body := make([]byte, 0, len(head)+len(id)+len(tail))
			body = append(append(append(body, head...), id...), tail...)
			c.PublishNow(&nats.Msg{Subject: prefix + id, Data: body, Header: hdr})
		}
	})
	if err != nil {
		return nil, 0, err
	}
	defer unsub()
	r.settle()
	t0 := time.Now()
	e.ctl.Publish(bcast, nil)
	e.ctl.Flush()
	var took time.Duration
	select {
	case <-cdone:
		took = time.Since(t0)
	case <-time.After(2 * time.Minute):
		return nil, 0, fmt.Errorf("%d of %d consumed after 2 minutes", consumed.Load(), n)
	}
	waitUntil(ctx, 30*time.Second, func() bool { return stored.Load() >= int64(n) })
	lat := make([]time.Duration, 0, n)
	for _, at := range storedAt {
		if at != 0 {
			lat = append(lat, time.Duration(at-t0.UnixNano()))
		}
	}
	slices.Sort(lat)
	return lat, took, nil
}
