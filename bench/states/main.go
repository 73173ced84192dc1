// Command states measures a highstate of a 50-state tree on a simulated
// fleet (docs/states.md, benchmarks.md "States"): one in-process
// nats-server, one in-process zester-master whose states_dir is
// statetreetest.Highstate(50), and N simulated peels (internal/simfleet)
// that answer state jobs as real peels do over NATS: each fetches the
// job's tree version from the state-tree bucket with the real peel's code
// and cache rules, and stores a return of a real 50-state highstate's size.
//
//	go run ./bench/states [--peels 20000]
//
// Phases: a test.ping of the whole fleet (the master indexes and reaches
// every peel; the figure to compare with), the highstate cold (every peel
// fetches the whole tree: the manifest and the version's pack), the
// highstate warm (nothing: the version is pinned and materialised), and a
// raw baseline of the same run: the same direct gets and return puts from
// a bare nats.go pipeline over the same connections, with the same
// parallelism, without the master; and the cold baseline of the per-file
// fetch (the manifest and every content), the cost before packs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/factgen"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/topology"
)

var (
	peels    = flag.Int("peels", 20_000, "simulated peels")
	states   = flag.Int("states", 50, "states in the tree (one .sls each)")
	parallel = flag.Int("parallel", 2048, "state runs fetching at once across the fleet (and baseline workers)")
	timeout  = flag.Duration("timeout", 10*time.Minute, "bound of each job")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the cold highstate (the whole process: server, master, fleet) to this file")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/states:", err)
		os.Exit(1)
	}
}

func run() error {
	N := *peels
	work, err := os.MkdirTemp("", "zester-states-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Printf("# states benchmark: %d peels, a %d-state tree, %d cores, go %s, load %s\n\n", N, *states, runtime.NumCPU(), runtime.Version(), loadavg())

	srv, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(work, "nats")})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	tree := filepath.Join(work, "states")
	for p, c := range statetreetest.Highstate(*states, "/etc/zester") {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			return err
		}
	}
	mc := master.DefaultConfig()
	mc.Insecure, mc.ID, mc.HTTP, mc.LogLevel = true, "bench-m1", "", "error"
	mc.NATS.URL = config.URLs{url}
	mc.StatesDir = tree
	mc.Jobs.DefaultTimeout = config.Dur(*timeout)
	m, err := master.New(mc, master.Options{NoHTTP: true})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	for !m.Ready() {
		time.Sleep(20 * time.Millisecond)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var man statetree.Manifest
	for man.Version == "" {
		if v, err := statetree.Current(ctx, nc); err == nil && v != "" {
			b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeManifestKey(v))
			if err == nil {
				json.Unmarshal(b, &man)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var treeBytes int64
	for _, e := range man.Files {
		treeBytes += e.Size
	}
	packInfo := "no pack"
	if man.Pack != nil {
		packInfo = fmt.Sprintf("pack %d B", man.Pack.Size)
	}
	fmt.Printf("tree: %d files, %d B, %s, version %.12s\n", len(man.Files), treeBytes, packInfo, man.Version)

	t0 := time.Now()
	f, err := simfleet.NewFleet(simfleet.FleetConfig{Peels: N, Partitions: mc.Partitions, URLs: []string{url}, Facts: factgen.JSON})
	if err != nil {
		return err
	}
	if err := f.Connect(ctx, 32); err != nil {
		return err
	}
	defer f.Close()
	ef, err := f.EncodeFacts(ctx, time.Now())
	if err != nil {
		return err
	}
	if _, err := f.PublishFacts(ctx, ef); err != nil {
		return err
	}
	fmt.Printf("fleet: %d peels over %d connections, facts published in %s\n\n", N, f.Conns(), time.Since(t0).Round(time.Millisecond))
	st := f.EnableStates(simfleet.StateConfig{Parallel: *parallel})
	kvJobs, err := js.KeyValue(ctx, names.BucketJobs)
	if err != nil {
		return err
	}

	fmt.Println("| run | returned | failed | dispatch (submit → first peel) | time to all returns | job final | tree gets | tree bytes per peel | tree bytes total | return bytes stored | server in+out |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	// test.ping until the master reaches every peel (its index fills as
	// the facts land); the last one is the figure.
	for attempt := 0; ; attempt++ {
		r, err := job(ctx, nc, kvJobs, f, st, srv, "test.ping")
		if err != nil {
			return err
		}
		if r.returned == N {
			r.print("test.ping (for comparison)")
			break
		}
		if attempt == 30 {
			return fmt.Errorf("test.ping reached %d of %d peels", r.returned, N)
		}
		time.Sleep(time.Second)
	}
	if *cpuProf != "" {
		pf, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	cold, err := job(ctx, nc, kvJobs, f, st, srv, "state.highstate")
	pprof.StopCPUProfile() // nothing when not started
	if err != nil {
		return err
	}
	cold.print("state.highstate, cold")
	warm, err := job(ctx, nc, kvJobs, f, st, srv, "state.highstate")
	if err != nil {
		return err
	}
	warm.print("state.highstate, warm")

	// The raw baseline: the same gets and puts, no master, no tracking. A
	// pinned job's peel gets no version key: cold it gets the manifest and
	// the pack (no pack: every content), warm nothing. "cold, per file"
	// is the cold fetch without packs (the manifest and every content),
	// for the figure before packs.
	perFile := []string{names.StateTreeManifestKey(man.Version)}
	for _, e := range man.Files {
		perFile = append(perFile, names.StateTreeFileKey(e.Digest))
	}
	coldKeys := perFile
	if man.Pack != nil {
		coldKeys = []string{names.StateTreeManifestKey(man.Version), names.StateTreePackKey(man.Version)}
	}
	coldRet := cold.retBytes / int64(max(cold.returned, 1))
	fmt.Println()
	for _, b := range []struct {
		name string
		keys []string
		ret  int64
	}{{"cold", coldKeys, coldRet}, {"cold, per file", perFile, coldRet}, {"warm", nil, warm.retBytes / int64(max(warm.returned, 1))}} {
		d, err := baseline(f, N, b.keys, int(b.ret))
		if err != nil {
			return err
		}
		fmt.Printf("baseline %s: %d peels × (%d direct gets + one %d B return put) from a bare nats.go pipeline, %d at once: %s\n", b.name, N, len(b.keys), b.ret, *parallel, d.Round(time.Millisecond))
	}
	fmt.Printf("\nload after: %s; heap in use %d MiB\n", loadavg(), heap()>>20)
	return nil
}

type result struct {
	returned, failed          int
	dispatch, allStored, fin  time.Duration
	gets, treeBytes, retBytes int64
	wire                      uint64
	peels                     int
}

func (r result) print(name string) {
	fmt.Printf("| %s | %d | %d | %s | %s | %s | %d | %d | %.1f MB | %.1f MB | %.1f MB |\n", name, r.returned, r.failed,
		r.dispatch.Round(time.Millisecond), r.allStored.Round(time.Millisecond), r.fin.Round(time.Millisecond),
		r.gets, r.treeBytes/int64(max(r.peels, 1)), float64(r.treeBytes)/1e6, float64(r.retBytes)/1e6, float64(r.wire)/1e6)
}

// job submits fn to every peel and waits for its record to be final.
func job(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, f *simfleet.Fleet, st *simfleet.States, srv *topology.Server, fn string) (result, error) {
	g0, b0, r0 := st.TreeGets.Load(), st.TreeBytes.Load(), st.ReturnBytes.Load()
	w0 := serverBytes(srv)
	req, _ := json.Marshal(wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: fn, Timeout: wire.Duration(*timeout), Requester: "bench-states"})
	t0 := time.Now()
	msg, err := nc.Request(names.APISubject(names.EndpointJobRun), req, 30*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("submit %s: %w", fn, err)
	}
	var resp wire.RunResponse
	if json.Unmarshal(msg.Data, &resp) != nil || resp.JID == "" {
		return result{}, fmt.Errorf("submit %s: %s", fn, msg.Data)
	}
	jt := f.Job(resp.JID)
	defer f.Forget(resp.JID)
	var j wire.Job
	for {
		if e, err := kv.Get(ctx, names.JobKey(resp.JID)); err == nil && json.Unmarshal(e.Value(), &j) == nil && wire.Final(j.Status) {
			break
		}
		if time.Since(t0) > *timeout+30*time.Second {
			return result{}, errors.New(fn + ": job not final")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := result{returned: j.Returned, failed: j.Failed, fin: time.Since(t0), peels: f.Peels()}
	if fd := jt.FirstDispatch.Load(); fd != 0 {
		r.dispatch = time.Unix(0, fd).Sub(t0)
	}
	if l := jt.Latencies(t0); len(l) > 0 {
		r.allStored = l[len(l)-1]
	}
	r.gets, r.treeBytes, r.retBytes = st.TreeGets.Load()-g0, st.TreeBytes.Load()-b0, st.ReturnBytes.Load()-r0
	r.wire = serverBytes(srv) - w0
	return r, nil
}

func serverBytes(srv *topology.Server) uint64 {
	v, err := srv.NATS().Varz(nil)
	if err != nil {
		return 0
	}
	return uint64(v.InBytes + v.OutBytes)
}

// baseline does, for n peels, the direct gets of keys and one put of a
// ret-byte return, over the fleet's connections, parallel at once.
func baseline(f *simfleet.Fleet, n int, keys []string, ret int) (time.Duration, error) {
	conns := f.Connections()
	jss := make([]jetstream.JetStream, len(conns))
	for i, c := range conns {
		jss[i], _ = jetstream.New(c.NC(), jetstream.WithPublishAsyncMaxPending(4096))
	}
	body := []byte(strings.Repeat("x", ret))
	jid := fmt.Sprintf("baseline%d", time.Now().UnixNano())
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c := conns[(w+i)%len(conns)]
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				for _, k := range keys {
					if _, _, err := peelproto.GetKV(ctx, c.NC(), names.BucketStateTree, k); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
				cancel()
				m := peelproto.ReturnMsgRaw(jid, simfleet.PeelID(i), true, body)
				if _, err := jss[(w+i)%len(conns)].PublishMsgAsync(m); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, j := range jss {
		select {
		case <-j.PublishAsyncComplete():
		case <-time.After(*timeout):
			return 0, errors.New("baseline: puts not acknowledged")
		}
	}
	d := time.Since(t0)
	if n := failed.Load(); n > 0 {
		return d, fmt.Errorf("baseline: %d operations failed, first: %v", n, firstErr.Load())
	}
	return d, nil
}

func heap() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// loadavg is /proc/loadavg as it is (the three averages first).
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}
