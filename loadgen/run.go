package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/factgen"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/topology"
)

type runner struct {
	ctx      context.Context // the run's: cancelled on interrupt
	cfg      *Config
	log      *slog.Logger
	env      *env
	fleet    *simfleet.Fleet
	rep      *Report
	prog     *progress
	facts    *simfleet.EncodedFacts
	baseline *BaselineResult
	peak     int64
	runID    string
	// status, when set, adds what the current step counts to the progress
	// lines (the baselines' replies, stores and consumed messages).
	status atomic.Pointer[func() string]
}

// Run performs one load-generator run and returns its report. An error means
// the run could not be set up; scenario failures are in the report
// (Report.Failed).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	lvl, err := obs.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	r := &runner{ctx: ctx, cfg: &cfg, log: slog.New(slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{Level: lvl})),
		runID: fmt.Sprintf("r%d", time.Now().UnixNano()%1_000_000_000)}
	if lim := cfg.MemLimitGiB; lim >= 0 && (lim > 0 || os.Getenv("GOMEMLIMIT") == "") {
		prev := debug.SetMemoryLimit(int64(cmp.Or(lim, DefaultMemLimitGiB)) << 30)
		defer debug.SetMemoryLimit(prev)
	}
	// Each run's peak RSS is its own (a process may run several: bench).
	debug.FreeOSMemory()
	resetPeakRSS()
	start := time.Now()
	u0, s0 := cpuTimes()
	r.rep = &Report{Started: start, Command: cfg.Command, Machine: machineInfo()}
	r.rep.Setup = Setup{Secure: cfg.Secure, Peels: cfg.Peels, Conns: cfg.conns(), Mode: cfg.Mode, Topology: cfg.Topology, Masters: cfg.Masters,
		Partitions: cfg.Partitions, Latency: cfg.Latency.String(), KillLatency: cfg.KillLatency.String(), FailRate: cfg.FailRate,
		BeatInterval: cfg.BeatInterval.String(),
		Target:       cfg.Target, NATS: cfg.NATS}
	r.prog = newProgress(cfg.Progress, cfg.ProgressTTY, r)
	defer r.prog.close()

	r.prog.set("starting NATS and masters")
	e, err := startEnv(ctx, r.cfg, r.log)
	if err != nil {
		return nil, err
	}
	r.env = e
	defer func() {
		r.prog.set("shutting down")
		if r.fleet != nil {
			r.fleet.Close()
		}
		e.close()
	}()
	r.rep.Versions = versions(e.serverVersion, !e.external())
	r.rep.Setup.Partitions = e.partitions
	r.rep.Setup.Replicas = e.replicas
	if e.external() {
		r.rep.Setup.Topology, r.rep.Setup.Masters = "external", 0
	} else {
		r.rep.Setup.Servers = len(e.nodes())
		r.rep.Setup.ServerProcess = e.proc != nil
	}

	// The fleet.
	r.prog.set(fmt.Sprintf("connecting %s simulated peels over %s connections", fmtInt(int64(cfg.Peels)), fmtInt(int64(cfg.conns()))))
	heap0 := heapInUse()
	fc := simfleet.FleetConfig{Peels: cfg.Peels, Conns: cfg.Conns, PerPeel: cfg.Mode == ModePerPeel, Partitions: e.partitions,
		URLs: e.client, Latency: cfg.Latency, FailRate: cfg.FailRate, Facts: factgen.JSON, BeatInterval: cfg.BeatInterval}
	if e.sec != nil {
		fc.Auth, fc.Trust = e.sec.connOptions, &e.sec.trust
	}
	f, err := simfleet.NewFleet(fc)
	if err != nil {
		return nil, err
	}
	r.fleet = f
	t := time.Now()
	if err := f.Connect(ctx, 32); err != nil {
		return nil, err
	}
	r.rep.Fleet.ConnectTime = Sec(time.Since(t))
	heap1 := heapInUse()
	// Noise from the servers' and masters' own allocations can exceed a
	// tiny fleet's size; the figure is meaningful from ~10,000 peels.
	r.rep.Fleet.HeapBytes = max(heap1-heap0, 0)
	r.rep.Fleet.BytesPerPeel = float64(r.rep.Fleet.HeapBytes) / float64(cfg.Peels)
	r.rep.Fleet.OpenFiles = openFiles()
	for _, c := range f.Connections() {
		r.rep.Fleet.Subs += c.Subs()
	}
	r.notePeak()

	// Every scenario needs the facts: the masters target from them.
	r.prog.set("generating and encoding facts")
	if r.facts, err = f.EncodeFacts(ctx, time.Now()); err != nil {
		return nil, err
	}
	if cfg.has(ScFactstorm) {
		r.scenario(ScFactstorm, r.factstorm)
	} else {
		r.prog.set("publishing facts")
		if _, err := f.PublishFacts(ctx, r.facts); err != nil {
			return nil, err
		}
		if err := e.waitSettled(ctx, cfg.Peels, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	r.facts = nil // release the encoded documents

	for _, name := range AllScenarios[1:] {
		if ctx.Err() != nil {
			break
		}
		if !cfg.has(name) && !(name == ScBaseline && cfg.has(ScPing)) {
			continue
		}
		sc, ok := r.scenarios()[name]
		if !ok {
			continue
		}
		if why := sc.unavailable; why != "" {
			r.skip(name, why)
			continue
		}
		r.scenario(name, sc.run)
	}
	if err := ctx.Err(); err != nil {
		return r.rep, err
	}

	r.notePeak()
	u1, s1 := cpuTimes()
	r.rep.Process = Resources{UserCPU: Sec(u1 - u0), SysCPU: Sec(s1 - s0), CPU: Sec(u1 - u0 + s1 - s0), PeakRSS: r.peak, ServerPeakRSS: e.procRSS()}
	for _, s := range r.rep.Scenarios {
		r.rep.Process.FleetIn += s.Res.FleetIn
		r.rep.Process.FleetOut += s.Res.FleetOut
		r.rep.Process.ServerIn += s.Res.ServerIn
		r.rep.Process.ServerOut += s.Res.ServerOut
	}
	r.rep.Wall = Sec(time.Since(start))
	r.rep.Fleet.Verified, r.rep.Fleet.Refused = r.fleet.Verified()
	r.rep.Fleet.AsyncErrors = r.fleet.AsyncErrors.Load()
	r.rep.Targets = r.targets()
	return r.rep, nil
}

func (r *runner) notePeak() {
	if p := peakRSS(); p > r.peak {
		r.peak = p
	}
}

// scenarioRun is how to run one scenario after the fact storm, and why it
// cannot run in this environment ("" when it can).
type scenarioRun struct {
	run         func(ctx context.Context, s *Scenario)
	unavailable string
}

func (r *runner) scenarios() map[string]scenarioRun {
	e := r.env
	notIf := func(cond bool, why string) string {
		if cond {
			return why
		}
		return ""
	}
	replicated := e.topo != nil && (e.topo.Kind() == topology.KindCluster || e.topo.Kind() == topology.KindSuperCluster)
	return map[string]scenarioRun{
		ScBaseline:   {run: r.baselineScenario},
		ScPing:       {run: r.pingScenario},
		ScBatch:      {run: r.batchScenario},
		ScMasterkill: {r.masterkill, notIf(e.external(), "needs in-process masters (not available with --nats)")},
		ScServerkill: {r.serverkill, notIf(!replicated, "needs a replicated JetStream: run with --topology cluster (or supercluster)")},
		ScReconnect:  {r.reconnect, notIf(e.external(), "needs an in-process server to restart (not available with --nats)")},
		ScEnrollment: {run: r.enrollScenario},
	}
}

func (r *runner) skip(name, why string) {
	r.rep.Scenarios = append(r.rep.Scenarios, &Scenario{Name: name, Status: StatusSkipped, Summary: why})
}

func (r *runner) serverBytes() (in, out uint64) {
	if r.env.proc != nil {
		return r.env.procBytes()
	}
	if r.env.topo == nil {
		return 0, 0
	}
	for _, s := range r.env.topo.Servers() {
		if !s.Running() {
			continue
		}
		if v, err := s.NATS().Varz(nil); err == nil {
			in += uint64(v.InBytes)
			out += uint64(v.OutBytes)
		}
	}
	return in, out
}

func sub(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return a - b
}

// scenario runs fn with the resources it uses measured.
func (r *runner) scenario(name string, fn func(ctx context.Context, s *Scenario)) *Scenario {
	s := &Scenario{Name: name, Status: StatusOK}
	r.prog.set(name)
	r.notePeak()
	resetPeakRSS()
	u0, s0 := cpuTimes()
	st0 := r.fleet.Stats()
	why0 := r.fleet.RetryReasons()
	in0, out0 := r.serverBytes()
	var prof *os.File
	if dir := r.cfg.CPUProfileDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if p, err := os.Create(filepath.Join(dir, "cpu-"+name+".pprof")); err == nil {
				if pprof.StartCPUProfile(p) == nil {
					prof = p
				} else {
					p.Close()
				}
			}
		}
	}
	pctx, stopServerProf := context.WithCancel(r.ctx)
	profDone := make(chan struct{})
	if dir := r.cfg.CPUProfileDir; dir != "" {
		go func() { defer close(profDone); r.env.profileServer(pctx, dir, name) }()
	} else {
		close(profDone)
	}
	t := time.Now()
	fn(r.ctx, s)
	s.Wall = Sec(time.Since(t))
	stopServerProf()
	<-profDone
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
		s.Res.Profile = prof.Name()
	}
	r.heapProfile(name)
	if why := retryDelta(why0, r.fleet.RetryReasons()); why != "" {
		s.note("the fleet's retries by reason: %s", why)
	}
	u1, s1 := cpuTimes()
	st1 := r.fleet.Stats()
	in1, out1 := r.serverBytes()
	s.Res.UserCPU, s.Res.SysCPU, s.Res.CPU = Sec(u1-u0), Sec(s1-s0), Sec(u1-u0+s1-s0)
	s.Res.PeakRSS = peakRSS()
	s.Res.FleetOut, s.Res.FleetIn = sub(st1.OutBytes, st0.OutBytes), sub(st1.InBytes, st0.InBytes)
	s.Res.ServerIn, s.Res.ServerOut = sub(in1, in0), sub(out1, out0)
	r.notePeak()
	if s.Status == StatusFailed {
		r.rep.Failed = true
	}
	r.rep.Scenarios = append(r.rep.Scenarios, s)
	r.log.Info("scenario done", "name", name, "status", s.Status, "summary", s.Summary)
	return s
}

// retryDelta lists the retries between two RetryReasons readings, most
// frequent first (at most 5; "" when none).
func retryDelta(before, after []simfleet.RetryReason) string {
	was := map[string]int64{}
	for _, r := range before {
		was[r.Why] = r.Count
	}
	var parts []string
	for _, r := range after {
		if d := r.Count - was[r.Why]; d > 0 && len(parts) < 5 {
			parts = append(parts, fmt.Sprintf("%s × %s", fmtInt(d), r.Why))
		}
	}
	return strings.Join(parts, "; ")
}

// heapProfile writes heap-<name>.pprof into MemProfileDir (when set).
func (r *runner) heapProfile(name string) {
	dir := r.cfg.MemProfileDir
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.log.Warn("heap profile", "err", err)
		return
	}
	p, err := os.Create(filepath.Join(dir, "heap-"+name+".pprof"))
	if err != nil {
		r.log.Warn("heap profile", "err", err)
		return
	}
	defer p.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(p); err != nil {
		r.log.Warn("heap profile", "err", err)
	}
}

// ---- factstorm ----

func (r *runner) factstorm(ctx context.Context, s *Scenario) {
	f, e := r.fleet, r.env
	fr := &FactsResult{Peels: f.Peels(), Encoder: r.facts.Encoder, EncodeTime: Sec(r.facts.Took),
		JSONAvg: float64(r.facts.RawBytes) / float64(f.Peels()), StoredAvg: float64(r.facts.EncBytes) / float64(f.Peels()),
		BytesStored: r.facts.EncBytes}
	fr.Ratio = float64(r.facts.RawBytes) / float64(r.facts.EncBytes)
	fr.EncodeUS = float64(r.facts.Took.Microseconds()) / float64(f.Peels())
	s.Facts = fr
	refused0, retries0, timeouts0, slow0 := f.Refusals.Load(), f.Retries.Load(), f.Timeouts.Load(), f.SlowAcks.Load()
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d, err := f.PublishFacts(sctx, r.facts)
	fr.StoreTime = Sec(d)
	fr.Rate = float64(f.Peels()) / d.Seconds()
	if err != nil {
		s.fail("%v", err)
		s.Summary = fmt.Sprintf("facts not all stored: %v", err)
		return
	}
	r.prog.set("factstorm: waiting for the masters' index")
	if err := e.waitSettled(ctx, f.Peels(), 3*time.Minute); err != nil {
		s.fail("%v", err)
	} else {
		fr.IndexTime = Sec(time.Since(t0))
	}
	var comp *CompressionReport
	if n := r.cfg.CompressionSamples; n >= 0 {
		r.prog.set("factstorm: measuring compression")
		if comp, err = MeasureCompression(cmp.Or(n, 600)); err == nil {
			fr.Compression = comp
		}
	}
	s.Summary = fmt.Sprintf("%s facts stored in %s (%s), all indexed by the masters after %s; JSON %s → %s stored (%.1f×)",
		fmtInt(int64(f.Peels())), fr.StoreTime, fmtRate(fr.Rate), fr.IndexTime, fmtBytes(int64(fr.JSONAvg)), fmtBytes(int64(fr.StoredAvg)), fr.Ratio)
	s.note("flow control: the server refused %s fact stores (429), %s timed out unacknowledged, %s retries in all; %s acks came late (each a slow-down signal); each connection's window (AIMD) and each refused peel's spread paced them",
		fmtInt(f.Refusals.Load()-refused0), fmtInt(f.Timeouts.Load()-timeouts0), fmtInt(f.Retries.Load()-retries0), fmtInt(f.SlowAcks.Load()-slow0))
	s.note("encoding (each peel's own work, done before the storm): %s, %.0f µs/doc on %d cores with %s", fr.EncodeTime, fr.EncodeUS, r.rep.Machine.CPUs, fr.Encoder)
	if comp != nil {
		s.note("dictionaries built from this run's samples, on %d other documents: trained zstd dictionary (%s) %.1f×, raw dictionary of %d documents (%s) %.1f× (factcodec %.1f×)",
			comp.Samples, fmtBytes(int64(comp.TrainedBytes)), comp.TrainedDict.Ratio, comp.RawDictDocs, fmtBytes(int64(comp.RawBytes)), comp.RawDict.Ratio, comp.Factcodec.Ratio)
	}
}

// ---- ping ----

type pingOpts struct {
	latency     simfleet.Dist
	batch       string
	target      *wire.Target // default: the configured glob
	submitRetry time.Duration
	// during runs beside the job once it is submitted; the ping waits for it.
	during func(ctx context.Context, jid string, t0 time.Time, jt *simfleet.JobTrack)
}

func (r *runner) ping(ctx context.Context, o pingOpts) (*PingResult, time.Time, error) {
	f, e := r.fleet, r.env
	f.SetLatency(o.latency)
	defer f.SetLatency(r.cfg.Latency)
	res := &PingResult{Latency: o.latency.String(), Peels: f.Peels()}
	req := wire.RunRequest{Target: wire.Target{Expr: r.cfg.Target}, Function: "test.ping",
		Timeout: wire.Duration(r.cfg.JobTimeout), Requester: "zester-loadgen", Batch: o.batch}
	if o.target != nil {
		req.Target = *o.target
	}
	var resp wire.RunResponse
	var t0 time.Time
	deadline := time.Now().Add(o.submitRetry)
	retry := backoff.New(100*time.Millisecond, 2*time.Second)
	for {
		t0 = time.Now()
		err := e.api(ctx, names.EndpointJobRun, req, &resp)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, t0, fmt.Errorf("submit: %w", err)
		}
		time.Sleep(retry.Next())
	}
	jid := resp.JID
	res.JID = jid
	jt := f.Job(jid)
	defer f.Forget(jid)

	duringDone := make(chan struct{})
	if o.during != nil {
		go func() { defer close(duringDone); o.during(ctx, jid, t0, jt) }()
	} else {
		close(duringDone)
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.JobTimeout+30*time.Second)
	defer cancel()
	var job wire.Job
	var tFinal time.Time
	var updates <-chan jetstream.KeyValueEntry
	if w, err := e.kvJobs.Watch(wctx, names.JobKey(jid)); err == nil {
		defer w.Stop()
		updates = w.Updates()
	}
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	consider := func(en jetstream.KeyValueEntry) bool {
		if en == nil || en.Operation() != jetstream.KeyValuePut {
			return false
		}
		var j wire.Job
		if json.Unmarshal(en.Value(), &j) != nil {
			return false
		}
		job = j
		return wire.Final(j.Status)
	}
wait:
	for {
		select {
		case en, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			if consider(en) {
				tFinal = time.Now()
				break wait
			}
		case <-poll.C:
			gctx, gc := context.WithTimeout(wctx, 2*time.Second)
			en, err := e.kvJobs.Get(gctx, names.JobKey(jid))
			gc()
			if err == nil && consider(en) {
				tFinal = time.Now()
				break wait
			}
		case <-wctx.Done():
			res.Problems = append(res.Problems, fmt.Sprintf("job record not final %s after submit (status %q)", fmtDur(time.Since(t0)), job.Status))
			break wait
		}
	}
	// Every peel that ran the job should know its return stored.
	for end := time.Now().Add(10 * time.Second); jt.Stored.Load() < jt.Started.Load() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	<-duringDone

	res.Status, res.Expected, res.Returned, res.Failed, res.Missing = job.Status, job.Expected, job.Returned, job.Failed, job.Missing
	// Count what the store holds; the JetStream API may be busy right after
	// a big job (or a fault), so retry.
	var unique, msgs int
	var err error
	recount := backoff.New(time.Second, 8*time.Second)
	for attempt := 0; attempt < 5; attempt++ {
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		unique, msgs, err = e.countStored(cctx, names.KVStream(names.BucketJobReturns), names.ReturnSubjectPrefix+names.ReturnFilter(jid))
		ccancel()
		// A count below the job's own on a replicated stream right after a
		// server restart can come from a replica still catching up; count
		// again before calling anything lost.
		if (err == nil && unique >= job.Returned) || ctx.Err() != nil {
			break
		}
		time.Sleep(recount.Next())
	}
	if err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("counting stored returns: %v", err))
	}
	res.StoredKeys, res.StoredMsgs = unique, msgs
	lat := jt.Latencies(t0)
	if len(lat) > 0 {
		res.AllStored = Sec(lat[len(lat)-1])
		res.P50, res.P90, res.P99, res.Max = Sec(pct(lat, 0.5)), Sec(pct(lat, 0.9)), Sec(pct(lat, 0.99)), Sec(lat[len(lat)-1])
		res.Throughput = float64(len(lat)) / lat[len(lat)-1].Seconds()
	}
	if !tFinal.IsZero() {
		res.Final = Sec(tFinal.Sub(t0))
	}
	res.Time = max(res.Final, res.AllStored)
	if fd := jt.FirstDispatch.Load(); fd > 0 {
		res.FirstDispatch = Sec(time.Duration(fd - t0.UnixNano()))
	}
	want := job.Expected
	if want == 0 {
		want = f.Peels()
	}
	res.Lost = max(want-unique, 0)
	res.Duplicates, res.DupRefused, res.DupDispatch = jt.DoubleStored.Load(), jt.DupRefused.Load(), jt.DupDispatch.Load()
	res.Retries, res.FailedSent, res.PeakInflight = jt.Retries.Load(), jt.Failed.Load(), jt.PeakInflight.Load()

	problem := func(format string, a ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, a...)) }
	if job.Status != wire.StatusDone {
		problem("job status %q, want done", job.Status)
	}
	if o.target == nil && r.cfg.Target == "*" && job.Expected != f.Peels() {
		problem("master expected %d peels, the fleet has %d", job.Expected, f.Peels())
	}
	if job.Returned != job.Expected {
		problem("job record: %d of %d returned (%d missing)", job.Returned, job.Expected, job.Missing)
	}
	if unique != want {
		problem("%d distinct returns stored in job-returns, want %d", unique, want)
	}
	if msgs != unique {
		problem("%d messages for %d keys in job-returns", msgs, unique)
	}
	if res.Duplicates > 0 {
		problem("%d returns stored twice", res.Duplicates)
	}
	if int64(job.Failed) != res.FailedSent && wire.Final(job.Status) {
		problem("job record counts %d failed returns, the fleet sent %d", job.Failed, res.FailedSent)
	}
	if int(jt.Started.Load()) != want {
		problem("%d peels received the job, want %d", jt.Started.Load(), want)
	}
	if ns := jt.NotStored(f, 5); len(ns) > 0 {
		problem("peels whose return is not known stored, e.g. %s", strings.Join(ns, ", "))
	}
	res.Verified = len(res.Problems) == 0
	return res, t0, nil
}

func (p *PingResult) summary() string {
	s := fmt.Sprintf("%s/%s returns stored, job %s in %s (all stored %s); p50 %s p99 %s max %s; %s; lost %d, stored twice %d, retries refused as already stored %d",
		fmtInt(int64(p.StoredKeys)), fmtInt(int64(p.Peels)), p.Status, p.Time, p.AllStored, p.P50, p.P99, p.Max, fmtRate(p.Throughput), p.Lost, p.Duplicates, p.DupRefused)
	return s
}

func (r *runner) pingScenario(ctx context.Context, s *Scenario) {
	res, _, err := r.ping(ctx, pingOpts{latency: r.cfg.Latency})
	if err != nil {
		s.fail("%v", err)
		s.Summary = "ping failed: " + err.Error()
		return
	}
	s.Ping = res
	if b := r.baseline; b != nil && b.PingEquivTime > 0 {
		res.Ratio = float64(res.Time) / float64(b.PingEquivTime)
	}
	s.Summary = res.summary()
	if res.Ratio > 0 {
		s.Summary += fmt.Sprintf("; %.1f× the raw NATS ping-equivalent (%s)", res.Ratio, r.baseline.PingEquivTime)
	}
	if res.FailedSent > 0 {
		s.note("%d returns reported failure (--fail-rate), the job record counts %d", res.FailedSent, res.Failed)
	}
	for _, p := range res.Problems {
		s.fail("%s", p)
	}
}

// ---- batch ----

func (r *runner) batchScenario(ctx context.Context, s *Scenario) {
	const batch = "10%"
	f := r.fleet
	size := max(int(math.Ceil(float64(f.Peels())*0.10)), 1)
	br := &BatchResult{Batch: batch, Size: size}
	s.Batch = br
	lat := simfleet.Fixed(300 * time.Millisecond)
	res, _, err := r.ping(ctx, pingOpts{latency: lat, batch: batch})
	switch {
	case err != nil:
		// The master refuses RunRequest.Batch: run the rolling batch the way
		// the CLI does (zester run --batch): waves of list targets, the next
		// wave once the previous job is final.
		br.MasterRefused = err.Error()
		r.clientBatch(ctx, s, br, lat)
		return
	case res.PeakInflight > int64(size+size/20+1):
		br.Ping, br.PeakInflight = res, res.PeakInflight
		s.Status = StatusUnsupported
		s.Summary = fmt.Sprintf("the master accepted batch=%s (%s peels at a time) but ran %s peels at once: RunRequest.Batch is ignored",
			batch, fmtInt(int64(size)), fmtInt(res.PeakInflight))
		return
	}
	br.Ping, br.PeakInflight = res, res.PeakInflight
	br.Mode = "master"
	s.Summary = fmt.Sprintf("batch=%s run by the master: at most %s peels in flight; %s", batch, fmtInt(res.PeakInflight), res.summary())
	for _, p := range res.Problems {
		s.fail("%s", p)
	}
}

// clientBatch runs waves of at most br.Size peels, each a job with a list
// target, as `zester run --batch` does.
func (r *runner) clientBatch(ctx context.Context, s *Scenario, br *BatchResult, lat simfleet.Dist) {
	f := r.fleet
	if r.cfg.Target != "*" {
		s.Status = StatusUnsupported
		s.Summary = "the master refuses RunRequest.Batch (" + br.MasterRefused + "); the client-side rolling batch is only simulated for --target '*'"
		return
	}
	br.Mode = "client"
	ids := make([]string, f.Peels())
	for i := range ids {
		ids[i] = f.ID(i)
	}
	slices.Sort(ids)
	start := time.Now()
	stored, lost, dup := 0, 0, int64(0)
	var slowest Seconds
	for lo := 0; lo < len(ids); lo += br.Size {
		wave := ids[lo:min(lo+br.Size, len(ids))]
		r.prog.set(fmt.Sprintf("batch: wave %d of %d", lo/br.Size+1, (len(ids)+br.Size-1)/br.Size))
		res, _, err := r.ping(ctx, pingOpts{latency: lat, target: &wire.Target{Kind: "list", Expr: strings.Join(wave, ",")}})
		if err != nil {
			s.fail("wave %d: %v", lo/br.Size+1, err)
			break
		}
		br.Waves++
		br.PeakInflight = max(br.PeakInflight, res.PeakInflight)
		stored += res.StoredKeys
		lost += res.Lost
		dup += res.Duplicates
		slowest = max(slowest, res.Time)
		if res.Expected != len(wave) {
			s.fail("wave %d: the master expected %d peels, the wave has %d", br.Waves, res.Expected, len(wave))
		}
		for _, p := range res.Problems {
			s.fail("wave %d: %s", br.Waves, p)
		}
	}
	br.Total = Sec(time.Since(start))
	if br.PeakInflight > int64(br.Size) {
		s.fail("%d peels in flight at once, more than the batch of %d", br.PeakInflight, br.Size)
	}
	s.Summary = fmt.Sprintf("client-side rolling batch (the master refuses RunRequest.Batch, as `zester run --batch` expects): %d waves of ≤ %s peels with answers after %s, %s of %s returns stored in %s (slowest wave %s), at most %s in flight, lost %d, stored twice %d",
		br.Waves, fmtInt(int64(br.Size)), lat, fmtInt(int64(stored)), fmtInt(int64(f.Peels())), br.Total, slowest, fmtInt(br.PeakInflight), lost, dup)
}

// ---- masterkill ----

func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (r *runner) masterkill(ctx context.Context, s *Scenario) {
	e, f := r.env, r.fleet
	const n = 3
	r.prog.set(fmt.Sprintf("masterkill: starting %d masters", n))
	if err := e.setMasters(ctx, max(n, len(e.live()))); err != nil {
		s.fail("%v", err)
		s.Summary = err.Error()
		return
	}
	if err := e.waitSettled(ctx, f.Peels(), 2*time.Minute); err != nil {
		s.fail("%v", err)
		s.Summary = err.Error()
		return
	}
	fo := &FailoverResult{Masters: len(e.live())}
	s.Failover = fo
	r.prog.set("masterkill: ping in flight")
	var foErr error
	during := func(ctx context.Context, jid string, t0 time.Time, jt *simfleet.JobTrack) {
		// In flight: every peel has the job, no return is due yet.
		waitUntil(ctx, 10*time.Second, func() bool { return jt.Started.Load() >= int64(f.Peels()) })
		victim, why := e.coordinatorOwner(ctx, jid), "owned the job's coordinator partition"
		if victim == nil {
			victim, why = e.live()[0], "first live master"
		}
		var survivors []string
		for _, h := range e.live() {
			if h != victim {
				survivors = append(survivors, h.id)
			}
		}
		fo.Victim, fo.Why = victim.id, why
		killAt := time.Now()
		fo.FaultAt = Sec(killAt.Sub(t0))
		e.kill(victim)
		r.prog.set("masterkill: master " + victim.id + " killed, waiting for failover")
		for {
			recs, err := e.heartbeats(ctx, survivors)
			if err == nil {
				if ok, _ := coverage(recs, e.partitions); ok {
					fo.Failover = Sec(time.Since(killAt))
					return
				}
			}
			if time.Since(killAt) > 60*time.Second {
				foErr = errors.New("survivors did not take over every partition within 60s")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if res := r.pingThroughFault(ctx, s, fo, during); res != nil {
		s.Summary = fmt.Sprintf("killed %s (%s) %s after submit; survivors owned every partition %s after the kill; %s (all returns stored %s after submit, latency %s): %s",
			fo.Victim, fo.Why, fo.FaultAt, fo.Failover, fo.jobAfter(res, "kill"), res.AllStored, res.Latency, storedSummary(res))
	}
	if foErr != nil {
		s.fail("%v", foErr)
	}
	// Back to the configured number of masters for what follows.
	r.prog.set("masterkill: restoring masters")
	if err := e.setMasters(ctx, r.cfg.Masters); err != nil {
		s.fail("restoring masters: %v", err)
	} else if err := e.waitSettled(ctx, f.Peels(), 2*time.Minute); err != nil {
		s.fail("after restoring masters: %v", err)
	}
}

// pingThroughFault runs the fault scenarios' ping (answers with the kill
// latency, the fault injected by during) and records its problems; nil when
// the ping itself failed.
func (r *runner) pingThroughFault(ctx context.Context, s *Scenario, fo *FailoverResult, during func(ctx context.Context, jid string, t0 time.Time, jt *simfleet.JobTrack)) *PingResult {
	res, _, err := r.ping(ctx, pingOpts{latency: r.cfg.KillLatency, during: during})
	if err != nil {
		s.fail("%v", err)
		s.Summary = "ping failed: " + err.Error()
		return nil
	}
	fo.Ping = res
	for _, p := range res.Problems {
		s.fail("%s", p)
	}
	return res
}

func storedSummary(res *PingResult) string {
	return fmt.Sprintf("%s of %s returns stored, lost %d, stored twice %d (retries %d, refused as already stored %d)",
		fmtInt(int64(res.StoredKeys)), fmtInt(int64(res.Peels)), res.Lost, res.Duplicates, res.Retries, res.DupRefused)
}

// ---- serverkill ----

func (r *runner) serverkill(ctx context.Context, s *Scenario) {
	e, f := r.env, r.fleet
	if err := e.waitSettled(ctx, f.Peels(), 2*time.Minute); err != nil {
		s.fail("%v", err)
		s.Summary = err.Error()
		return
	}
	stream := names.KVStream(names.BucketJobReturns)
	leader := e.streamLeader(ctx, stream)
	idx := e.serverIndex(leader)
	why := "leader of " + stream
	if idx < 0 {
		idx, why = 0, "first server (stream leader unknown)"
	}
	victim := e.topo.Servers()[idx]
	fo := &FailoverResult{Victim: victim.Name(), Why: why, Masters: len(e.live())}
	s.Failover = fo
	// The probe writes through the servers that stay up.
	var urls []string
	for i, sv := range e.topo.Servers() {
		if i != idx && slices.Contains(e.hub, sv.ClientURL()) {
			urls = append(urls, sv.ClientURL())
		}
	}
	pnc, err := nats.Connect(strings.Join(urls, ","), nats.Name("zester-loadgen probe"), nats.MaxReconnects(-1))
	if err != nil {
		s.fail("probe connection: %v", err)
		return
	}
	defer pnc.Close()
	pjs, _ := jetstream.New(pnc)
	pkv, err := pjs.KeyValue(ctx, names.BucketJobReturns)
	if err != nil {
		s.fail("probe bucket: %v", err)
		return
	}
	during := func(ctx context.Context, jid string, t0 time.Time, jt *simfleet.JobTrack) {
		waitUntil(ctx, 10*time.Second, func() bool { return jt.Started.Load() >= int64(f.Peels()) })
		stopAt := time.Now()
		fo.FaultAt = Sec(stopAt.Sub(t0))
		r.prog.set("serverkill: stopping " + victim.Name())
		e.topo.StopServer(idx)
		fo.ShutdownTime = Sec(time.Since(stopAt))
		for n := 0; time.Since(stopAt) < 60*time.Second; n++ {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := pkv.Put(pctx, fmt.Sprintf("lgprobe.%s-%d", r.runID, n), []byte("probe"))
			cancel()
			if err == nil {
				fo.WriteGap = Sec(time.Since(stopAt))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if res := r.pingThroughFault(ctx, s, fo, during); res != nil {
		s.Summary = fmt.Sprintf("stopped %s (%s) %s after submit (stop took %s); next KV write %s after the stop; %s (all returns stored %s after submit, latency %s): %s",
			fo.Victim, fo.Why, fo.FaultAt, fo.ShutdownTime, fo.WriteGap, fo.jobAfter(res, "stop"), res.AllStored, res.Latency, storedSummary(res))
		if fo.WriteGap == 0 {
			s.fail("no KV write succeeded within 60s of the stop")
		}
	}
	r.prog.set("serverkill: restarting " + victim.Name())
	if err := e.topo.RestartServer(idx); err != nil {
		s.fail("restart %s: %v", victim.Name(), err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e.topo.WaitReady(wctx); err != nil {
		s.fail("%v", err)
	}
	if !waitUntil(ctx, 60*time.Second, func() bool { return f.Connected() == f.Conns() }) {
		s.fail("%d of %d fleet connections back after the restart", f.Connected(), f.Conns())
	}
}

// ---- reconnect ----

func (r *runner) reconnect(ctx context.Context, s *Scenario) {
	e, f := r.env, r.fleet
	// The server most of the fleet is connected to.
	perURL := map[string]int{}
	for _, c := range f.Connections() {
		perURL[c.NC().ConnectedUrl()]++
	}
	idx, most := 0, -1
	nodes := e.nodes()
	for i, sv := range nodes {
		if n := perURL[sv.ClientURL()]; n > most {
			idx, most = i, n
		}
	}
	srv := nodes[idx]
	url := srv.ClientURL()
	rr := &ReconnectResult{Server: srv.Name()}
	s.Reconnect = rr
	on := make([]bool, f.Conns())
	rc0 := make([]int64, f.Conns())
	for i, c := range f.Connections() {
		on[i] = c.NC().ConnectedUrl() == url
		rc0[i] = c.Reconnects()
		if on[i] {
			rr.Conns++
			rr.PeelsMoved += len(c.Peels())
		}
	}
	if rr.Conns == 0 {
		s.fail("no fleet connection is on %s (connected to: %v)", srv.Name(), slices.Sorted(maps.Keys(perURL)))
		s.Summary = "nothing to reconnect"
		return
	}
	r.prog.set("reconnect: restarting " + srv.Name())
	facts0, refused0 := f.FactsStored.Load(), f.Refusals.Load()
	t0 := time.Now()
	if err := e.restartNode(ctx, idx); err != nil {
		s.fail("restart: %v", err)
		s.Summary = err.Error()
		return
	}
	rr.RestartTime = Sec(time.Since(t0))
	r.prog.set("reconnect: waiting for every connection")
	back := func() bool {
		for i, c := range f.Connections() {
			if !c.NC().IsConnected() || (on[i] && c.Reconnects() <= rc0[i]) {
				return false
			}
		}
		return true
	}
	if !waitUntil(ctx, 3*time.Minute, back) {
		s.fail("%d of %d connections back after 3 minutes", f.Connected(), f.Conns())
	}
	rr.AllReconnected = Sec(time.Since(t0))
	// Every peel that reconnected republishes its facts, spread (simfleet's
	// flow.go); the ping runs meanwhile, as it would in a real fleet.
	republished := make(chan struct{})
	go func() {
		defer close(republished)
		if waitUntil(ctx, 3*time.Minute, func() bool { return f.FactsStored.Load()-facts0 >= int64(rr.PeelsMoved) }) {
			rr.FactsRepublished = Sec(time.Since(t0))
		}
	}()
	r.prog.set("reconnect: ping after the restart")
	res, pt0, err := r.ping(ctx, pingOpts{latency: r.cfg.Latency, submitRetry: time.Minute})
	if err != nil {
		s.fail("%v", err)
		s.Summary = fmt.Sprintf("%s connections (%s peels) reconnected %s after the restart began; ping failed: %v", fmtInt(int64(rr.Conns)), fmtInt(int64(rr.PeelsMoved)), rr.AllReconnected, err)
	} else {
		rr.Ping = res
		rr.PingDone = Sec(pt0.Add(res.Time.D()).Sub(t0))
		s.Summary = fmt.Sprintf("restarted %s (stop + start %s); %s connections (%s peels) reconnected %s after the restart began; a ping then returned from %s of %s peels, %s after the restart began (ping itself %s), lost %d, stored twice %d",
			srv.Name(), rr.RestartTime, fmtInt(int64(rr.Conns)), fmtInt(int64(rr.PeelsMoved)), rr.AllReconnected, fmtInt(int64(res.StoredKeys)), fmtInt(int64(res.Peels)), rr.PingDone, res.Time, res.Lost, res.Duplicates)
		for _, p := range res.Problems {
			s.fail("%s", p)
		}
	}
	<-republished
	rr.Refusals = f.Refusals.Load() - refused0
	if rr.FactsRepublished == 0 {
		s.fail("%s of %s reconnected peels' facts stored again within 3 minutes", fmtInt(f.FactsStored.Load()-facts0), fmtInt(int64(rr.PeelsMoved)))
	} else {
		s.note("every reconnected peel's facts stored again %s after the restart began; the server refused %s stores meanwhile", rr.FactsRepublished, fmtInt(rr.Refusals))
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e.waitNodesReady(wctx); err != nil {
		s.fail("%v", err)
	}
}

// ---- targets ----

func (r *runner) targets() []Target {
	var out []Target
	peels := r.fleet.Peels()
	scale := ""
	if peels < 100_000 {
		scale = fmt.Sprintf("this run: %s peels", fmtInt(int64(peels)))
	}
	if sc := r.rep.Find(ScPing); sc != nil && sc.Ping != nil {
		p := sc.Ping
		out = append(out, Target{What: "simulated peels in one run, ping verified", Goal: "100,000", Measured: fmtInt(int64(peels)), Met: peels >= 100_000 && p.Verified})
		out = append(out, Target{What: "ping to all, every return stored", Goal: "< 3 s", Measured: p.Time.String(), Met: p.Verified && p.Time < 3, Note: scale})
		if p.Ratio > 0 {
			out = append(out, Target{What: "ping vs raw NATS ping-equivalent (c)", Goal: "≤ 3×", Measured: fmt.Sprintf("%.2f× (%s vs %s)", p.Ratio, p.Time, r.baseline.PingEquivTime), Met: p.Ratio <= 3})
		}
	}
	mem := r.rep.Fleet.HeapBytes
	m := Target{What: "memory of the simulated fleet", Goal: "< 2 GiB for 100,000 peels", Measured: fmtBytes(mem)}
	switch {
	case r.cfg.Mode == ModePerPeel && r.cfg.ServerProcess:
		m.Measured += " (perpeel: one nats.go connection, its buffers included, per peel)"
	case r.cfg.Mode == ModePerPeel:
		m.Measured += " (perpeel: includes the in-process server's per-connection state)"
	}
	if peels < 100_000 {
		proj := int64(r.rep.Fleet.BytesPerPeel * 100_000)
		m.Measured += fmt.Sprintf(" (%.0f B/peel → %s at 100,000)", r.rep.Fleet.BytesPerPeel, fmtBytes(proj))
		m.Met = proj < 2<<30
		m.Note = "projected"
	} else {
		m.Met = mem < 2<<30
	}
	out = append(out, m)
	if sc := r.rep.Find(ScMasterkill); sc != nil && sc.Failover != nil && sc.Failover.Ping != nil {
		fo := sc.Failover
		done := "job not final"
		if fo.DoneAfter > 0 {
			done = "job final " + fo.DoneAfter.String() + " after the kill"
		}
		out = append(out, Target{What: "master failover", Goal: "< 5 s, 0 lost, 0 duplicated", Measured: fmt.Sprintf("%s to own every partition (%s), lost %d, duplicated %d", fo.Failover, done, fo.Ping.Lost, fo.Ping.Duplicates),
			Met: fo.Failover > 0 && fo.Failover < 5 && fo.Ping.Lost == 0 && fo.Ping.Duplicates == 0 && sc.Status == StatusOK})
	}
	if sc := r.rep.Find(ScReconnect); sc != nil && sc.Reconnect != nil {
		rc := sc.Reconnect
		out = append(out, Target{What: "peels reconnected after a server restart", Goal: "< 30 s for 100,000", Measured: fmt.Sprintf("%s peels in %s (a ping returned from all %s, their facts stored again %s after the restart began; %s refused)", fmtInt(int64(rc.PeelsMoved)), rc.AllReconnected, rc.PingDone, rc.FactsRepublished, fmtInt(rc.Refusals)),
			Met: rc.AllReconnected < 30 && sc.Status == StatusOK, Note: scale})
	}
	if sc := r.rep.Find(ScFactstorm); sc != nil && sc.Facts != nil {
		fr := sc.Facts
		t := Target{What: "facts smaller than JSON", Goal: "≥ 8×", Measured: fmt.Sprintf("factcodec %.1f×", fr.Ratio), Met: fr.Ratio >= 8}
		if c := fr.Compression; c != nil {
			// The goal is the peel's encoding (factcodec.Encode, measured on
			// the samples); the fleet stores with its own encoder
			// (fr.Encoder, EncodeFast: same format, ~10 % larger).
			t.Measured = fmt.Sprintf("factcodec %.1f× (the fleet stored %.1f× with %s)", c.Factcodec.Ratio, fr.Ratio, fr.Encoder)
			t.Met = c.Factcodec.Ratio >= 8
			t.Measured += fmt.Sprintf("; trained dictionary %.1f×; raw dictionary %.1f×", c.TrainedDict.Ratio, c.RawDict.Ratio)
			if !t.Met && c.RawDict.Ratio >= 8 {
				t.Note = "a raw dictionary of documents in the agent's layout reaches it; factcodec's current encoding does not"
			}
		}
		out = append(out, t)
	}
	return out
}

// jobAfter says when the job went final relative to the fault, and sets
// DoneAfter.
func (fo *FailoverResult) jobAfter(res *PingResult, fault string) string {
	if res.Final == 0 {
		return fmt.Sprintf("job NOT final (status %q, %d of %d counted returned)", res.Status, res.Returned, res.Expected)
	}
	fo.DoneAfter = max(res.Time-fo.FaultAt, 0)
	return fmt.Sprintf("job %s %s after the %s", res.Status, fo.DoneAfter, fault)
}
