package main

// The chaos loop (go run ./bench -chaos 20): kill -9 a random node of a
// cluster of three nats-server processes, again and again, with a job in
// flight each time and a new job submitted a second after each kill. It
// writes its section of benchmarks.md (between chaosBegin and chaosEnd; the
// matrix run keeps it).

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zester-io/zester/internal/chaos"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/peel"
)

const (
	chaosBegin = "<!-- chaos loop: written by go run ./bench -chaos N -->"
	chaosEnd   = "<!-- end of chaos loop -->"
)

type chaosOpts struct {
	kills    int
	every    time.Duration
	peels    int
	masters  int
	out      string
	keepLogs bool
}

// kill is one round of the loop.
type killRound struct {
	victim                  string
	led                     []string // what the victim led: meta, KV_jobs, KV_job-returns
	inFlight, after         wire.Job // final records
	inFlightErr, afterErr   string
	inFlightOnce, afterOnce bool // one stored return per peel
	accepted, done          time.Duration
	jobsElect, returnsElect time.Duration
	recreations             uint64
	restartedIn             time.Duration
	stuckNote               string
}

func runChaos(ctx context.Context, o chaosOpts) error {
	dir, err := os.MkdirTemp("", "zester-chaos")
	if err != nil {
		return err
	}
	defer func() {
		if !o.keepLogs {
			os.RemoveAll(dir)
		}
	}()
	started := time.Now()
	load0 := loadAvg()
	fmt.Fprintf(os.Stderr, "chaos: building nats-server into %s\n", dir)
	bin, err := chaos.BuildServer(ctx, dir)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	c, err := chaos.Start(sctx, chaos.Options{Bin: bin, Dir: filepath.Join(dir, "cluster")})
	cancel()
	if err != nil {
		return err
	}
	defer c.Shutdown()
	logf, err := os.Create(filepath.Join(dir, "zester.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	logger := obs.NewLogger(logf, slog.LevelInfo)
	urls := c.URLs()

	// Masters and peels in this process, against the three server processes.
	var wg sync.WaitGroup
	rctx, stopAll := context.WithCancel(ctx)
	defer func() { stopAll(); wg.Wait() }()
	var masters []*master.Master
	failed := make(chan error, o.masters)
	for i := 1; i <= o.masters; i++ {
		cfg := master.DefaultConfig()
		cfg.ID, cfg.HTTP = fmt.Sprintf("m%d", i), ""
		cfg.NATS.URL, cfg.NATS.Replicas = config.URLs(urls), 3
		m, err := master.New(cfg, master.Options{Logger: logger.With("master", cfg.ID), NoHTTP: true})
		if err != nil {
			return err
		}
		masters = append(masters, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(rctx); err != nil && rctx.Err() == nil {
				failed <- fmt.Errorf("master %s: %w", m.ID(), err)
			}
		}()
	}
	if err := waitCond(ctx, 3*time.Minute, func() bool {
		select {
		case err := <-failed:
			failed <- err
			return true
		default:
		}
		for _, m := range masters {
			if !m.Ready() {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("masters not ready: %w", err)
	}
	select {
	case err := <-failed:
		return err
	default:
	}
	for i := 1; i <= o.peels; i++ {
		cfg := peel.DefaultConfig()
		cfg.ID, cfg.HTTP = fmt.Sprintf("peel%d", i), ""
		cfg.NATS.URL = config.URLs(urls)
		cfg.DataDir = filepath.Join(dir, cfg.ID)
		p, err := peel.New(cfg, peel.Options{Logger: logger.With("peel", cfg.ID), NoHTTP: true})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(rctx) }()
	}
	if err := waitCond(ctx, time.Minute, func() bool {
		for _, m := range masters {
			if m.PeelCount() != o.peels {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("masters do not index %d peels: %w", o.peels, err)
	}
	cl, err := chaos.Connect(ctx, urls)
	if err != nil {
		return err
	}
	defer cl.Close()
	recreations := func() uint64 {
		var n uint64
		for _, m := range masters {
			n += m.WatchRecreations()
		}
		return n
	}

	var rounds []killRound
	for i := 0; i < o.kills && ctx.Err() == nil; i++ {
		roundStart := time.Now()
		r := chaosRound(ctx, c, cl, o, recreations)
		rounds = append(rounds, r)
		fmt.Fprintf(os.Stderr, "chaos: kill %d/%d of %s (led %s): in-flight %s, post-kill %s done %s after the kill (accepted %s); %d watch consumers replaced\n",
			i+1, o.kills, r.victim, orNone(r.led), statusOf(r.inFlight, r.inFlightErr), statusOf(r.after, r.afterErr), secs(r.done), secs(r.accepted), r.recreations)
		if i < o.kills-1 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(roundStart.Add(o.every))):
			}
		}
	}

	// Nothing stuck: every job recorded is final, every watch sees.
	stuck := stuckJobs(ctx, cl)
	var blind []string
	for _, m := range masters {
		for _, h := range m.Watches() {
			if h.Blind {
				blind = append(blind, m.ID()+"/"+h.Name)
			}
		}
	}
	sec := chaosReport(o, rounds, stuck, blind, recreations(), started, load0, loadAvg())
	fmt.Print(sec)
	if o.out != "" {
		if err := spliceChaos(o.out, sec); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "chaos: wrote the chaos section of %s\n", o.out)
	}
	if o.keepLogs {
		fmt.Fprintf(os.Stderr, "chaos: logs kept in %s\n", dir)
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, "+")
}

func statusOf(j wire.Job, err string) string {
	if err != "" {
		return "error (" + err + ")"
	}
	return fmt.Sprintf("%s %d/%d", j.Status, j.Returned, j.Expected)
}

func waitCond(ctx context.Context, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// chaosRound: a `sleep 5` job running on every peel, kill -9 of a random
// node, a ping a second later, both to completion, the node restarted and
// caught up.
func chaosRound(ctx context.Context, c *chaos.Cluster, cl *chaos.Client, o chaosOpts, recreations func() uint64) killRound {
	var r killRound
	nodes := c.Nodes()
	victim := nodes[rand.IntN(len(nodes))]
	r.victim = victim.Name
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute) // hang guard
	defer cancel()

	jid1, err := cl.Submit(rctx, "cmd.run", map[string]string{"cmd": "sleep 5"}, time.Minute, time.Minute)
	if err != nil {
		r.inFlightErr = err.Error()
	} else if err := waitCond(rctx, time.Minute, func() bool {
		j, err := cl.Job(rctx, jid1)
		return err == nil && j.Status == wire.StatusRunning
	}); err != nil {
		r.inFlightErr = "not running: " + err.Error()
	}
	// What the victim leads: the elections the kill will cost.
	if l, _ := c.MetaLeader(victim); l == victim.Name {
		r.led = append(r.led, "meta")
	}
	for _, st := range []string{names.KVStream(names.BucketJobs), names.KVStream(names.BucketJobReturns)} {
		if l, _ := chaos.StreamLeader(rctx, cl.JS, st); l == victim.Name {
			r.led = append(r.led, st)
		}
	}
	before := recreations()
	time.Sleep(time.Second) // the peels are running the job
	killed := time.Now()
	if err := c.Kill(victim); err != nil {
		r.stuckNote = err.Error()
		return r
	}
	var ewg sync.WaitGroup
	for _, e := range []struct {
		stream string
		into   *time.Duration
	}{{names.KVStream(names.BucketJobs), &r.jobsElect}, {names.KVStream(names.BucketJobReturns), &r.returnsElect}} {
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			if _, err := chaos.WaitStreamLeader(rctx, cl.JS, e.stream, victim.Name); err == nil {
				*e.into = time.Since(killed)
			}
		}()
	}
	time.Sleep(time.Until(killed.Add(time.Second)))
	jid2, err := cl.Submit(rctx, "test.ping", nil, 30*time.Second, time.Minute)
	if err != nil {
		r.afterErr = err.Error()
	} else {
		r.accepted = time.Since(killed)
	}
	// Both jobs are waited for at once: the ping's time must not include
	// the sleep's. Done is the master's own finish time on the record.
	check := func(jid string, into *wire.Job, errOut *string, once *bool) time.Time {
		if jid == "" || *errOut != "" {
			return time.Time{}
		}
		j, at, err := cl.WaitFinal(rctx, jid)
		*into = j
		if err != nil {
			*errOut = err.Error()
			return time.Time{}
		}
		stored, err := cl.StoredReturns(rctx, jid)
		*once = err == nil && len(stored) == o.peels
		for _, n := range stored {
			if n != 1 {
				*once = false
			}
		}
		if !j.Finished.IsZero() {
			at = j.Finished
		}
		return at
	}
	var jwg sync.WaitGroup
	jwg.Add(1)
	go func() {
		defer jwg.Done()
		check(jid1, &r.inFlight, &r.inFlightErr, &r.inFlightOnce)
	}()
	if at := check(jid2, &r.after, &r.afterErr, &r.afterOnce); !at.IsZero() {
		r.done = at.Sub(killed)
	}
	jwg.Wait()
	ewg.Wait()
	r.recreations = recreations() - before

	t := time.Now()
	if err := c.Restart(victim); err != nil {
		r.stuckNote = "restart: " + err.Error()
		return r
	}
	if err := chaos.WaitStreamsCurrent(rctx, cl.JS, chaosStreams...); err != nil {
		r.stuckNote = "catch-up: " + err.Error()
	}
	r.restartedIn = time.Since(t)
	return r
}

var chaosStreams = []string{names.KVStream(names.BucketJobs), names.KVStream(names.BucketJobReturns),
	names.KVStream(names.BucketFacts), names.KVStream(names.BucketMasterHeartbeat)}

// stuckJobs lists the jobs whose record is not final.
func stuckJobs(ctx context.Context, cl *chaos.Client) []string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	kv, err := cl.JS.KeyValue(ctx, names.BucketJobs)
	if err != nil {
		return []string{"jobs bucket: " + err.Error()}
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return []string{"list jobs: " + err.Error()}
	}
	var stuck []string
	for k := range lister.Keys() {
		if _, _, isPart, ok := names.ParseJobKey(k); !ok || isPart {
			continue
		}
		j, err := cl.Job(ctx, k)
		if err != nil || !wire.Final(j.Status) {
			stuck = append(stuck, fmt.Sprintf("%s (%s)", k, j.Status))
		}
	}
	return stuck
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s)-1)*p+0.5))]
}

func secs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func chaosReport(o chaosOpts, rounds []killRound, stuck, blind []string, recreated uint64, started time.Time, load0, load1 string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## Chaos loop: kill -9 of a random node\n\n", chaosBegin)
	w("Written by `go run ./bench -chaos %d` (run started %s, %s wall). Three nats-server processes (built from go.mod's nats-server, one cluster on 127.0.0.1, buckets R3), %d in-process masters and %d in-process peels (real agents) against them. Each round: `cmd.run 'sleep 5'` on every peel, kill -9 of a random node once it runs, `test.ping` on every peel submitted 1 s after the kill, both waited for to a final record, the node restarted and caught up; one round every %s. Clients submit with their own job id and ask again when a request got no answer (a request sent into a connection that just died is lost).\n\n",
		o.kills, started.UTC().Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second), o.masters, o.peels, o.every)
	w("- **Machine:** %d × %s, shared with other jobs: load average %s at the start, %s at the end.\n", runtime.NumCPU(), cpuModel(), load0, load1)
	var doneOK, flightOK, onceOK int
	var dones, accepts []time.Duration
	for _, r := range rounds {
		if r.inFlightErr == "" && r.inFlight.Status == wire.StatusDone {
			flightOK++
		}
		if r.afterErr == "" && r.after.Status == wire.StatusDone {
			doneOK++
			dones = append(dones, r.done)
			accepts = append(accepts, r.accepted)
		}
		if r.inFlightOnce && r.afterOnce {
			onceOK++
		}
	}
	n := len(rounds)
	w("- **Jobs completed:** in flight at the kill %d of %d, submitted after the kill %d of %d (done with every peel answered).\n", flightOK, n, doneOK, n)
	w("- **Every return stored exactly once:** %d of %d rounds (one stored message per peel for both jobs).\n", onceOK, n)
	w("- **Kill → post-kill job done:** p50 %s, max %s (goal: within 10 s). Kill → post-kill job accepted: p50 %s, max %s.\n", secs(pct(dones, .5)), secs(slices.Max(append(dones, 0))), secs(pct(accepts, .5)), secs(slices.Max(append(accepts, 0))))
	w("- **Watch consumers replaced by the watchdog:** %d in all.\n", recreated)
	w("- **Stuck afterwards:** %d jobs not final%s; %d watches blind%s.\n\n", len(stuck), list(stuck), len(blind), list(blind))
	w("| # | victim | victim led | in-flight job | post-kill job | once | accepted | done | KV_jobs leader | KV_job-returns leader | watches replaced | restart + catch-up |\n|---:|---|---|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for i, r := range rounds {
		once := "yes"
		if !r.inFlightOnce || !r.afterOnce {
			once = "**no**"
		}
		note := ""
		if r.stuckNote != "" {
			note = " (" + r.stuckNote + ")"
		}
		w("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s%s |\n", i+1, r.victim, orNone(r.led), statusOf(r.inFlight, r.inFlightErr), statusOf(r.after, r.afterErr),
			once, secs(r.accepted), secs(r.done), secs(r.jobsElect), secs(r.returnsElect), r.recreations, secs(r.restartedIn), note)
	}
	var led []time.Duration
	for _, r := range rounds {
		if slices.Contains(r.led, names.KVStream(names.BucketJobs)) && r.jobsElect > 0 {
			led = append(led, r.jobsElect)
		}
		if slices.Contains(r.led, names.KVStream(names.BucketJobReturns)) && r.returnsElect > 0 {
			led = append(led, r.returnsElect)
		}
	}
	electRange := "none in this run"
	if len(led) > 0 {
		electRange = fmt.Sprintf("%s–%s from the kill in this run", secs(slices.Min(led)), secs(slices.Max(led)))
	}
	w("\n*KV_jobs leader* / *KV_job-returns leader*: kill → a leader other than the victim answers (polled every 25 ms; a stream the victim did not lead answers at once). A stream whose leader was killed is leaderless until its RAFT group elects another after a randomized election timeout (nats-server 2.15 raft.go: 4–9 s without the leader's heartbeat, not configurable; %s), so a job cannot be recorded, nor its returns stored, before the jobs and job-returns streams have a leader again. When the victim leads the meta group, watch consumers it hosted can only be replaced once a new meta leader is elected.\n%s\n", electRange, chaosEnd)
	return b.String()
}

func list(s []string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > 5 {
		s = append(s[:5:5], "…")
	}
	return " (" + strings.Join(s, ", ") + ")"
}

// spliceChaos replaces the chaos section of the file at path (or appends
// it), keeping everything else.
func spliceChaos(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(b)
	if i := strings.Index(s, chaosBegin); i >= 0 {
		if j := strings.Index(s[i:], chaosEnd); j >= 0 {
			s = s[:i] + strings.TrimSuffix(section, "\n") + s[i+j+len(chaosEnd):]
			return os.WriteFile(path, []byte(s), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s += "\n"
	}
	return os.WriteFile(path, []byte(s+section), 0o644)
}

// Sections measured by other commands (a heavy test, a loadgen scenario)
// are marked with keptBegin … keptEnd; a matrix run writes them again as
// they are, like the chaos section.
const (
	keptBegin = "<!-- kept: "
	keptEnd   = "<!-- end kept -->"
)

// keptSections is the chaos section and every kept section of the file at
// path ("" when none), so the matrix run can write them again.
func keptSections(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	var out strings.Builder
	for _, m := range [][2]string{{keptBegin, keptEnd}, {chaosBegin, chaosEnd}} {
		rest := s
		for {
			i := strings.Index(rest, m[0])
			if i < 0 {
				break
			}
			j := strings.Index(rest[i:], m[1])
			if j < 0 {
				break
			}
			out.WriteString("\n" + rest[i:i+j+len(m[1])] + "\n")
			rest = rest[i+j+len(m[1]):]
		}
	}
	return out.String()
}
