package suite

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
