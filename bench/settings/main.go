// Command settings measures the masters' settings renderer at fleet scale
// (docs/settings.md, "Measured"): N simulated peels (an accepted enrollment
// record with a curve key and a fact document each, in KV; no peel process)
// against one real zester-master in a child process, so that its CPU and
// memory are its own, and an in-process nats-server.
//
//	go run ./bench/settings [--peels 100000]
//
// Phases, each timed until every entry is current (the master's write
// counter, scraped from its /metrics, reaches what the phase must write,
// and its render counter what it must render):
//
//	rebuild   master start on empty settings-files and secrets buckets
//	          (facts and enrollments present): every entry written
//	restart   master restart with every entry current: nothing written
//	secret    a new secret in common.zy (every peel uses it) right after
//	          the restart, while the master still makes the peels' shared
//	          keys (cold): every settings-files and every secrets entry
//	          written
//	text      a text change in common.zy: every settings-files entry
//	secret    another new secret, once every shared key is made (the
//	          steady state of a running master)
//
// Raw baselines of the same run: the same number of bare KV puts of the
// same sizes through PublishAsync, and nkeys Seal per peel.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/settings/settingstest"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/topology"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/settings:", err)
		os.Exit(1)
	}
}

var (
	peels   = flag.Int("peels", 100_000, "simulated peels")
	keep    = flag.Bool("keep", false, "keep the work directory")
	timeout = flag.Duration("timeout", 10*time.Minute, "bound of each phase")
	profDir = flag.String("cpuprofile", "", "directory for a CPU profile of the master during each phase (cpu-<n>.pprof, via ZESTER_PPROF=1)")
	mEnv    = flag.String("master-env", "", "extra environment of the master, comma-separated (GOGC=400,GOMEMLIMIT=900MiB)")
	profSec = flag.Int("cpuprofile-seconds", 10, "length of each phase's CPU profile")
	heapOut = flag.String("heapprofile", "", "file for a heap profile of the master after the last phase (needs --cpuprofile or ZESTER_PPROF=1 in --master-env)")
	profOf  = flag.String("cpuprofile-phases", "", "phases to profile, comma-separated numbers from 1 (default all; profiles longer than a phase overlap the next, which then has none)")
	onlyRb  = flag.Bool("rebuild-only", false, "run the rebuild phase alone (no other phase, no baselines): for profiling it")
	srvProf = flag.String("server-cpuprofile", "", "file for a CPU profile of this process (the in-process nats-server and the bench's polling) during the rebuild phase")
)

func run() error {
	flag.Parse()
	N := *peels
	work, err := os.MkdirTemp("", "zester-settings-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	fmt.Printf("# settings benchmark: %d peels, %d cores, go %s, load %s\n\n", N, runtime.NumCPU(), runtime.Version(), loadavg())

	bin := filepath.Join(work, "zester-master")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/zester-master").CombinedOutput(); err != nil {
		return fmt.Errorf("build zester-master: %v\n%s", err, out)
	}
	srv, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(work, "nats")})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	ctx := context.Background()
	if err := master.Bootstrap(ctx, js, master.Layout{}); err != nil {
		return err
	}

	// The settings tree and the masters' curve key.
	pkiDir, dir := filepath.Join(work, "pki"), filepath.Join(work, "settings")
	os.MkdirAll(pkiDir, 0o700)
	pub, err := pki.CreateCurveSeed(filepath.Join(pkiDir, pki.FileMasterCurve))
	if err != nil {
		return err
	}
	tree, err := settingstest.Tree(pub)
	if err != nil {
		return err
	}
	writeTree := func() {
		for p, s := range tree {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
			os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644)
		}
	}
	writeTree()

	// The fleet: keys before the clock (a peel makes its own once).
	t0 := time.Now()
	curves := make([]string, N)
	parallel(N, func(i int) {
		kp, _ := nkeys.CreateCurveKeys()
		curves[i], _ = kp.PublicKey()
	})
	now := time.Now().UTC()
	seed := time.Now()
	if err := putAll(ctx, js, N, func(i int) (string, []byte) {
		r := enroll.Record{ID: peelID(i), State: enroll.StateAccepted, NKey: "U" + strings.Repeat("A", 55), Curve: curves[i], Requested: now, Decided: now}
		b, _ := json.Marshal(r)
		return names.KVSubjectPrefix(names.BucketEnrollments) + names.EnrollRecordKey(r.ID), b
	}); err != nil {
		return err
	}
	if err := putAll(ctx, js, N, func(i int) (string, []byte) {
		return names.KVSubjectPrefix(names.BucketFacts) + names.FactsKey(peelID(i)), factcodec.Encode(settingstest.Facts(i))
	}); err != nil {
		return err
	}
	fmt.Printf("seeded %d enrollment records and fact documents in %s (keys %s)\n\n", N, time.Since(seed).Round(time.Millisecond), seed.Sub(t0).Round(time.Millisecond))

	m := &child{bin: bin, work: work, url: srv.ClientURL(), dir: dir, pkiDir: pkiDir}
	// server CPU: this process's (the in-process nats-server and the
	// bench's polling); cores busy: master and server CPU over the time
	// (the machine has runtime.NumCPU).
	fmt.Println("| phase | peels rendered | found current | entries written | time until current | master CPU | server CPU | cores busy | master RSS peak | load |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var srvProfile *os.File
	if *srvProf != "" {
		if srvProfile, err = os.Create(*srvProf); err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(srvProfile); err != nil {
			return err
		}
	}
	if err := m.start(); err != nil {
		return err
	}
	defer m.stop()
	if err := m.phase("rebuild (empty buckets, master start)", N, 2*N, nil); err != nil {
		return err
	}
	if srvProfile != nil {
		pprof.StopCPUProfile()
		srvProfile.Close()
	}
	if *onlyRb {
		m.profiling.Wait()
		fmt.Printf("\nmaster RSS peak: %.0f MiB; load after: %s\n", float64(m.rssPeak())/(1<<20), loadavg())
		return nil
	}
	m.stop()
	if err := m.start(); err != nil {
		return err
	}
	if err := m.phase("restart (all current)", N, 0, nil); err != nil {
		return err
	}
	newSecret := func() {
		tok, _ := settings.Seal(pub, []byte("monitoring-token-"+strconv.FormatInt(time.Now().UnixNano(), 10)))
		tree["common.zy"] = replaceToken(tree["common.zy"], tok)
		writeTree()
	}
	// Right after the restart: the master is still making the peels' shared
	// keys (one X25519 each, once per master lifetime); the batch makes
	// those it finds not made.
	if err := m.phase("new secret in common.zy (cold: right after restart)", N, 2*N, newSecret); err != nil {
		return err
	}
	sealed0 := lastSeq(ctx, js, names.BucketSecrets)
	if err := m.phase("text change in common.zy", N, N, func() {
		tree["common.zy"] = strings.Replace(tree["common.zy"], "htop", "htop, jq", 1)
		writeTree()
	}); err != nil {
		return err
	}
	// A text change leaves every peel's values as they were: nothing is
	// sealed again.
	if d := lastSeq(ctx, js, names.BucketSecrets) - sealed0; d != 0 {
		return fmt.Errorf("the text change wrote %d secrets entries, want none", d)
	}
	// The steady state: every peel's shared key made (the master's warm-up
	// done), as for every change but the first after a master start.
	waited := time.Now()
	for m.metric("zester_master_settings_sealer_keys") < float64(N) {
		if time.Since(waited) > *timeout {
			return fmt.Errorf("sealer: %v of %d shared keys after %s", m.metric("zester_master_settings_sealer_keys"), N, *timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := m.phase("new secret in common.zy (steady: every shared key made)", N, 2*N, newSecret); err != nil {
		return err
	}
	peak := m.rssPeak()
	if *heapOut != "" {
		m.fetch("heap", *heapOut)
	}
	m.stop()

	// Raw baselines of the same sizes.
	fsz, ssz := avgSize(ctx, js, names.BucketSettingsFiles, N), avgSize(ctx, js, names.BucketSecrets, N)
	fmt.Printf("\nmaster RSS peak over the run: %.0f MiB; entry sizes: settings-files %d B, secrets %d B (averages)\n\n", float64(peak)/(1<<20), fsz, ssz)
	start := time.Now()
	if err := putAll(ctx, js, 2*N, func(i int) (string, []byte) {
		if i%2 == 0 {
			return names.KVSubjectPrefix(names.BucketBasket) + "raw.b" + strconv.Itoa(i), make([]byte, fsz)
		}
		return names.KVSubjectPrefix(names.BucketBasket) + "raw.s" + strconv.Itoa(i), make([]byte, ssz)
	}); err != nil {
		return err
	}
	fmt.Printf("baseline: %d bare KV puts (half %d B, half %d B) through PublishAsync: %s\n", 2*N, fsz, ssz, time.Since(start).Round(time.Millisecond))
	vals := []byte(`{"v":1,"id":"peel00001","values":{"zsr1:aaaaaaaaaaaaaaaaaaaaaa":"monitoring-token-123","zsr1:bbbbbbbbbbbbbbbbbbbbbb":"db-password-456"}}`)
	start = time.Now()
	parallel(N, func(i int) { settings.Seal(curves[i], vals) })
	fmt.Printf("baseline: settings.Seal (one-time key + nkeys Seal) ×%d on %d cores: %s\n", N, runtime.GOMAXPROCS(0), time.Since(start).Round(time.Millisecond))
	kp, _ := pki.LoadMasterCurve(pkiDir)
	t, err := settings.Load(os.DirFS(dir), settings.LoadOptions{})
	if err != nil {
		return err
	}
	open := settings.CachingOpener(kp)
	start = time.Now()
	parallel(N, func(i int) {
		var f map[string]any
		doc, _ := factcodec.Decode(factcodec.Encode(settingstest.Facts(i)))
		json.Unmarshal(doc, &f)
		t.Compile(peelID(i), f, settings.Options{Secret: open})
	})
	fmt.Printf("baseline: decode facts + Tree.Compile ×%d on %d cores, in process: %s\n", N, runtime.GOMAXPROCS(0), time.Since(start).Round(time.Millisecond))
	fmt.Printf("load after: %s\n", loadavg())
	return nil
}

func peelID(i int) string { return fmt.Sprintf("peel%05d", i) }

// replaceToken puts tok in place of the first token of s.
func replaceToken(s, tok string) string {
	i := strings.Index(s, settings.TokenPrefix)
	j := i + strings.IndexByte(s[i:], '"')
	return s[:i] + tok + s[j:]
}

func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for k := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += w {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// putAll publishes n messages asynchronously and waits for every ack.
func putAll(ctx context.Context, js jetstream.JetStream, n int, msg func(i int) (string, []byte)) error {
	for i := range n {
		subj, b := msg(i)
		for {
			_, err := js.PublishAsync(subj, b)
			if err == nil {
				break
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Second):
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(*timeout):
		return fmt.Errorf("acks not complete after %s", *timeout)
	}
	if p := js.PublishAsyncPending(); p > 0 {
		return fmt.Errorf("%d publishes pending", p)
	}
	_ = ctx
	return nil
}

func lastSeq(ctx context.Context, js jetstream.JetStream, bucket string) uint64 {
	st, err := js.Stream(ctx, names.KVStream(bucket))
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.LastSeq
}

func avgSize(ctx context.Context, js jetstream.JetStream, bucket string, n int) int {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0
	}
	total, got := 0, 0
	for i := 0; i < n; i += max(1, n/100) {
		if e, err := kv.Get(ctx, peelID(i)); err == nil {
			total += len(e.Value())
			got++
		}
	}
	if got == 0 {
		return 0
	}
	return total / got
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// child is the zester-master process.
type child struct {
	bin, work, url, dir, pkiDir string
	cmd                         *exec.Cmd
	http                        string
	started                     time.Time
	selfAtStart                 float64 // selfCPU at the master's start
	phases                      int
	profiling                   sync.WaitGroup // profiles being taken
}

// profile writes a CPU profile of the master, --cpuprofile-seconds long.
func (c *child) profile(path string) {
	c.fetch(fmt.Sprintf("profile?seconds=%d", *profSec), path)
}

// fetch writes the master's /debug/pprof/<what> to path.
func (c *child) fetch(what, path string) {
	os.MkdirAll(filepath.Dir(path), 0o755)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", c.http, what))
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

func (c *child) start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.http = l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("id: bench-m1\ninsecure: true\nlog_level: info\nhttp: %s\nnats:\n  url: %s\nsettings_dir: %s\npki_dir: %s\n", c.http, c.url, c.dir, c.pkiDir)
	path := filepath.Join(c.work, "master.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	c.cmd = exec.Command(c.bin, "--config", path)
	c.cmd.Env = os.Environ()
	if *profDir != "" {
		c.cmd.Env = append(c.cmd.Env, "ZESTER_PPROF=1")
	}
	if *mEnv != "" {
		c.cmd.Env = append(c.cmd.Env, strings.Split(*mEnv, ",")...)
	}
	c.cmd.Stderr = os.Stderr
	c.started = time.Now()
	c.selfAtStart = selfCPU()
	return c.cmd.Start()
}

func (c *child) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// metric reads one counter from the master's /metrics (-1 when it does not
// answer yet).
func (c *child) metric(name string) float64 { return c.metrics(name)[0] }

// metrics reads several counters from one scrape of the master's /metrics
// (-1 each when it does not answer yet; 0 for one not there). One scrape
// per poll: the page is the master's to render (process and Go runtime
// metrics too), and polling it once per counter every 25 ms cost the
// master about 4 % of its CPU in a phase's profile.
func (c *child) metrics(names ...string) []float64 {
	out := make([]float64, len(names))
	resp, err := http.Get("http://" + c.http + "/metrics")
	if err != nil {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		for i, name := range names {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				out[i], _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
	}
	return out
}

// counters is one scrape of what a phase waits on: renders plus peels
// found current (judged), writes, and peels found current.
func (c *child) counters() (judged, writes, current float64) {
	v := c.metrics("zester_master_settings_renders_total", "zester_master_settings_writes_total", "zester_master_settings_current_total")
	if v[0] < 0 {
		return -1, -1, -1
	}
	return v[0] + v[2], v[1], v[2]
}

// phase runs change and waits until the master judged renders more peels
// (rendered them, or found them current from their entries' input hashes)
// and wrote writes more entries (and, for 0 writes, that a second passed
// without one after the renders). With change nil the phase is the
// master's start: counted from the process start, from zero.
func (c *child) phase(name string, renders, writes int, change func()) error {
	for j, _, _ := c.counters(); j < 0; j, _, _ = c.counters() {
		time.Sleep(20 * time.Millisecond)
	}
	var r0, w0, k0, cpu0 float64
	start := c.started
	srv0 := c.selfAtStart
	if change != nil {
		r0, w0, k0 = c.counters()
		cpu0 = c.cpu()
		srv0 = selfCPU()
		start = time.Now()
		change()
	}
	c.phases++
	if *profDir != "" && (*profOf == "" || slices.Contains(strings.Split(*profOf, ","), strconv.Itoa(c.phases))) {
		c.profiling.Add(1)
		go func() {
			defer c.profiling.Done()
			c.profile(filepath.Join(*profDir, fmt.Sprintf("cpu-%d.pprof", c.phases)))
		}()
	}
	deadline := start.Add(*timeout)
	for {
		r, w, k := c.counters()
		if r-r0 >= float64(renders) && w-w0 >= float64(writes) {
			took := time.Since(start)
			mcpu, srv := c.cpu()-cpu0, selfCPU()-srv0
			if writes == 0 {
				time.Sleep(time.Second)
				if _, w2, _ := c.counters(); w2 != w {
					return fmt.Errorf("%s: %v writes after the renders, want none", name, w2-w0)
				}
			}
			k -= k0
			fmt.Printf("| %s | %.0f | %.0f | %.0f | %s | %.1f s | %.1f s | %.2f | %.0f MiB | %s |\n", name, r-r0-k, k, w-w0, took.Round(time.Millisecond), mcpu, srv, (mcpu+srv)/took.Seconds(), float64(c.rssPeak())/(1<<20), loadavg())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: after %s: %.0f of %d renders, %.0f of %d writes", name, *timeout, r-r0, renders, w-w0, writes)
		}
		time.Sleep(pollEvery)
	}
}

// pollEvery is how often a phase scrapes the master's /metrics: each
// scrape costs the master rendering the page (process and Go runtime
// metrics too) and the bench parsing it, about 2 % of the master's CPU at
// every 25 ms in a rebuild's profile; a phase's time is known to within it.
const pollEvery = 50 * time.Millisecond

// selfCPU is this process's user+system CPU seconds: the in-process
// nats-server's, with the bench's own polling (a few % of a core).
func selfCPU() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	return statCPU(string(b))
}

// statCPU is utime+stime of a /proc/<pid>/stat line, in seconds.
func statCPU(s string) float64 {
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// cpu is the child's user+system CPU seconds.
func (c *child) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return statCPU(string(b))
}

// rssPeak is the child's peak resident set (VmHWM).
func (c *child) rssPeak() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
