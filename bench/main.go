// Command bench runs the load generator over a matrix of fleet sizes,
// master counts and NATS topologies and rewrites benchmarks.md with the
// measured figures.
//
//	go run ./bench -matrix quick   # 1k and 10k peels, single and cluster: under 3 minutes
//	go run ./bench -matrix full    # 1k/10k/100k × 1/3 masters × single/cluster/leaf
//	go run ./bench -chaos 20       # 20 kill -9 of a random node of 3 nats-server processes (~7 min)
//
// Every cell is a fresh in-process topology with in-process masters (package
// loadgen); cells run one after the other on the same machine.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zester-io/zester/loadgen"
)

// analysis is the hand-written part of benchmarks.md (profile findings and
// what would move the limits); it is copied in verbatim.
//
//go:embed analysis.md
var analysis string

type cell struct {
	Peels     int
	Masters   int
	Topology  string
	Mode      string // "" multiplexed, or perpeel
	Scenarios []string
	Headline  bool
}

func (c cell) name() string {
	n := strconv.Itoa(c.Peels)
	if c.Peels%1000 == 0 {
		n = strconv.Itoa(c.Peels/1000) + "k"
	}
	s := fmt.Sprintf("%s-%s-%dm", c.Topology, n, c.Masters)
	if c.Mode != "" {
		s += "-" + c.Mode
	}
	return s
}

// where is the topology column of the tables.
func (c cell) where() string {
	if c.Mode != "" {
		return c.Topology + ", " + c.Mode
	}
	return c.Topology
}

func matrix(kind string, peels []int, masters []int, topos []string) []cell {
	var out []cell
	for _, p := range peels {
		for _, t := range topos {
			for _, m := range masters {
				c := cell{Peels: p, Masters: m, Topology: t, Scenarios: []string{loadgen.ScFactstorm, loadgen.ScPing}}
				if m >= 3 {
					c.Scenarios = append(c.Scenarios, loadgen.ScMasterkill)
					if t == "cluster" {
						c.Scenarios = append(c.Scenarios, loadgen.ScServerkill)
					}
				}
				if m == 1 && kind == "full" {
					c.Scenarios = append(c.Scenarios, loadgen.ScReconnect)
				}
				// The largest single-server, one-master cell is the
				// README's demo at full size: every scenario.
				if kind == "full" && p == slices.Max(peels) && t == "single" && m == 1 {
					c.Scenarios, c.Headline = loadgen.AllScenarios, true
				}
				out = append(out, c)
			}
		}
	}
	if kind == "full" {
		// One connection per peel, as many as the open-file limit allows
		// with the server in the same process (2 files a connection).
		out = append(out, cell{Peels: 9500, Masters: 1, Topology: "single", Mode: loadgen.ModePerPeel,
			Scenarios: []string{loadgen.ScFactstorm, loadgen.ScPing, loadgen.ScReconnect}})
	}
	return out
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		mult := 1
		if strings.HasSuffix(f, "k") {
			f, mult = strings.TrimSuffix(f, "k"), 1000
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

func main() {
	// The enrollment storm re-runs this executable as its server child.
	if code, ok := loadgen.ServeChild(); ok {
		os.Exit(code)
	}
	kind := flag.String("matrix", "quick", "quick (1k, 10k × 1/3 masters × single/cluster; under 3 minutes) or full (1k/10k/100k × 1/3 masters × single/cluster/leaf)")
	peelsFlag := flag.String("peels", "", "override the fleet sizes, e.g. 1k,10k,100k")
	mastersFlag := flag.String("masters", "", "override the master counts, e.g. 1,3")
	toposFlag := flag.String("topologies", "", "override the topologies, e.g. single,cluster,leaf")
	out := flag.String("out", "", "file to rewrite (default: benchmarks.md at the module root)")
	reports := flag.String("reports", "", "directory for each cell's report.json and report.md")
	cpuprofile := flag.String("cpuprofile", "", "directory for per-scenario CPU profiles of each cell")
	dry := flag.Bool("n", false, "print the cells and exit")
	only := flag.String("only", "", "run only these cells (comma list of names as -n prints)")
	from := flag.String("from", "", "do not run: rewrite the file from the reports a previous run saved with -reports DIR")
	chaosKills := flag.Int("chaos", 0, "run the chaos loop instead of the matrix: N kill -9 of a random node of 3 nats-server processes (see bench/chaos.go)")
	chaosEvery := flag.Duration("chaos-every", 20*time.Second, "chaos loop: one kill every")
	chaosPeels := flag.Int("chaos-peels", 3, "chaos loop: peels (real agents, in-process)")
	chaosMasters := flag.Int("chaos-masters", 2, "chaos loop: masters (in-process)")
	chaosKeep := flag.Bool("chaos-keep", false, "chaos loop: keep the servers' and Zester's logs")
	flag.Parse()
	if *chaosKills > 0 {
		path := *out
		if path == "" {
			root, err := moduleRoot()
			if err != nil {
				fatalf("%v (use -out)", err)
			}
			path = filepath.Join(root, "benchmarks.md")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runChaos(ctx, chaosOpts{kills: *chaosKills, every: *chaosEvery, peels: *chaosPeels, masters: *chaosMasters, out: path, keepLogs: *chaosKeep}); err != nil {
			fatalf("chaos: %v", err)
		}
		return
	}

	var peels, masters []int
	var topos []string
	switch *kind {
	case "quick":
		peels, masters, topos = []int{1000, 10_000}, []int{1, 3}, []string{"single", "cluster"}
	case "full":
		peels, masters, topos = []int{1000, 10_000, 100_000}, []int{1, 3}, []string{"single", "cluster", "leaf"}
	default:
		fatalf("-matrix %q: want quick or full", *kind)
	}
	var err error
	if *peelsFlag != "" {
		if peels, err = ints(*peelsFlag); err != nil {
			fatalf("-peels: %v", err)
		}
	}
	if *mastersFlag != "" {
		if masters, err = ints(*mastersFlag); err != nil {
			fatalf("-masters: %v", err)
		}
	}
	if *toposFlag != "" {
		topos = strings.Split(*toposFlag, ",")
	}
	cells := matrix(*kind, peels, masters, topos)
	if *only != "" && *from == "" {
		want := strings.Split(*only, ",")
		cells = slices.DeleteFunc(cells, func(c cell) bool { return !slices.Contains(want, c.name()) })
		if len(cells) == 0 {
			fatalf("-only %q matches no cell (see -n)", *only)
		}
	}
	if *dry {
		for _, c := range cells {
			fmt.Printf("%-22s %s\n", c.name(), strings.Join(c.Scenarios, ","))
		}
		return
	}
	path := *out
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			fatalf("%v (use -out)", err)
		}
		path = filepath.Join(root, "benchmarks.md")
	}

	if *from != "" {
		results, err := load(*from, cells)
		if err != nil {
			fatalf("%v", err)
		}
		keep := keptSections(path)
		f, err := os.Create(path)
		if err != nil {
			fatalf("%v", err)
		}
		var took time.Duration
		for _, r := range results {
			took += r.wall
		}
		write(f, *kind, results, took, os.Args[1:])
		io.WriteString(f, keep)
		if err := f.Close(); err != nil {
			fatalf("%v", err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s from %d saved reports\n", path, len(results))
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var results []result
	for i, c := range cells {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "[%6.0fs] cell %d/%d %s: %s\n", time.Since(start).Seconds(), i+1, len(cells), c.name(), strings.Join(c.Scenarios, ","))
		cfg := loadgen.DefaultConfig()
		cfg.Peels, cfg.Masters, cfg.Topology, cfg.Scenarios = c.Peels, c.Masters, c.Topology, c.Scenarios
		cfg.Command = fmt.Sprintf("zester-loadgen --peels %d --masters %d --topology %s --scenarios %s", c.Peels, c.Masters, c.Topology, strings.Join(c.Scenarios, ","))
		if c.Mode != "" {
			cfg.Mode = c.Mode
			cfg.Command += " --mode " + c.Mode
		}
		if !c.Headline {
			cfg.CompressionSamples = -1
		}
		if *cpuprofile != "" {
			cfg.CPUProfileDir = filepath.Join(*cpuprofile, c.name())
		}
		t := time.Now()
		rep, err := loadgen.Run(ctx, cfg)
		retried := ""
		if err != nil && rep == nil && ctx.Err() == nil {
			// A set-up failure (a master not ready, a topology not formed):
			// say so, and try the cell once more.
			retried = err.Error()
			fmt.Fprintf(os.Stderr, "         %s: %v; retrying once\n", c.name(), err)
			t = time.Now()
			rep, err = loadgen.Run(ctx, cfg)
		}
		res := result{cell: c, rep: rep, err: err, wall: time.Since(t), retried: retried}
		results = append(results, res)
		if err != nil {
			fmt.Fprintf(os.Stderr, "         %s: %v\n", c.name(), err)
			continue
		}
		fmt.Fprintf(os.Stderr, "         %s\n", res.oneLine())
		if *reports != "" {
			if err := rep.WriteFiles(filepath.Join(*reports, c.name())); err != nil {
				fmt.Fprintf(os.Stderr, "         report: %v\n", err)
			}
		}
	}
	if len(results) == 0 {
		fatalf("no cell ran")
	}
	keep := keptSections(path)
	f, err := os.Create(path)
	if err != nil {
		fatalf("%v", err)
	}
	write(f, *kind, results, time.Since(start), os.Args[1:])
	io.WriteString(f, keep)
	if err := f.Close(); err != nil {
		fatalf("%v", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d cells, %s)\n", path, len(results), time.Since(start).Round(time.Second))
	for _, r := range results {
		if r.err != nil || r.rep.Failed {
			os.Exit(1)
		}
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(2)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/zester-io/zester") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the zester module")
		}
		dir = parent
	}
}

type result struct {
	cell    cell
	rep     *loadgen.Report
	err     error
	wall    time.Duration
	retried string // the set-up error of a first attempt
}

func (r result) oneLine() string {
	var parts []string
	if s := r.rep.Find(loadgen.ScPing); s != nil && s.Ping != nil {
		parts = append(parts, fmt.Sprintf("ping %s (%.2f× baseline) %s", s.Ping.Time, s.Ping.Ratio, s.Status))
	}
	if s := r.rep.Find(loadgen.ScMasterkill); s != nil && s.Failover != nil {
		parts = append(parts, fmt.Sprintf("failover %s %s", s.Failover.Failover, s.Status))
	}
	if s := r.rep.Find(loadgen.ScServerkill); s != nil && s.Failover != nil {
		parts = append(parts, fmt.Sprintf("serverkill write gap %s %s", s.Failover.WriteGap, s.Status))
	}
	if s := r.rep.Find(loadgen.ScReconnect); s != nil && s.Reconnect != nil {
		parts = append(parts, fmt.Sprintf("reconnect %s %s", s.Reconnect.AllReconnected, s.Status))
	}
	parts = append(parts, fmt.Sprintf("peak RSS %s, wall %s", mib(r.rep.Process.PeakRSS), r.wall.Round(time.Second)))
	return strings.Join(parts, "; ")
}

func mib(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func sec(s loadgen.Seconds) string {
	if s == 0 {
		return "–"
	}
	return s.String()
}

func num(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func status(s *loadgen.Scenario) string {
	if s.Status == loadgen.StatusOK {
		return "ok"
	}
	return "**" + s.Status + "**"
}

func write(w io.Writer, kind string, results []result, took time.Duration, args []string) {
	var first *loadgen.Report
	for _, r := range results {
		if r.rep != nil {
			first = r.rep
			break
		}
	}
	fmt.Fprintf(w, "# Zester benchmarks\n\n")
	when := time.Now().UTC()
	if first != nil {
		when = first.Started.UTC()
	}
	var kept []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-from" || a == "-out" || a == "-reports" || a == "-cpuprofile" || a == "--from" || a == "--out" || a == "--reports" || a == "--cpuprofile":
			i++ // and its value
		case strings.HasPrefix(strings.TrimLeft(a, "-"), "from=") || strings.HasPrefix(strings.TrimLeft(a, "-"), "out=") ||
			strings.HasPrefix(strings.TrimLeft(a, "-"), "reports=") || strings.HasPrefix(strings.TrimLeft(a, "-"), "cpuprofile="):
		default:
			kept = append(kept, a)
		}
	}
	fmt.Fprintf(w, "Written by `go run ./bench %s` (%d cells; run started %s, %s wall). Do not edit by hand: re-run the command; the analysis at the end comes from `bench/analysis.md`.\n\n",
		strings.Join(kept, " "), len(results), when.Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	if first != nil {
		m, v := first.Machine, first.Versions
		fmt.Fprintf(w, "- **Machine:** %d × %s, %s RAM, %s, kernel %s, open-file limit %s\n", m.CPUs, m.CPUModel, mib(m.MemBytes), m.OS, m.Kernel, num(int(m.NoFile)))
		fmt.Fprintf(w, "- **Software:** %s, nats-server %s (embedded, in-process), nats.go %s, %s\n", v.Go, v.NATSServer, v.NATSClient, runtime.GOOS)
	}
	fmt.Fprintf(w, "- **Setup:** everything in one process on the same cores: the nats-server(s) of the topology, the masters (`master.New`, heartbeat 500 ms, dead after 1.5 s, 64 partitions) and the simulated fleet (peels multiplexed over peels/100 TCP connections, at most 1,000; one cell with a connection per peel). JetStream file storage; R1 on single and leaf, R3 on cluster. Answer latency 0 for ping and the baselines, uniform 1–3 s for masterkill/serverkill.\n")
	fmt.Fprintf(w, "- **Topologies:** single = one server; cluster = 3 routed servers, buckets R3; leaf = one JetStream hub + one leaf node without JetStream, peels on the leaf, masters on the hub.\n")
	fmt.Fprintf(w, "- **Ratio** = Zester's ping (submit → job record final with every return stored) ÷ raw NATS baseline (c) on the same topology in the same run (one core broadcast, every peel stores a return-shaped message with PublishAsync, one headers-only consumer reads them all; best of 3).\n\n")

	fmt.Fprintf(w, "Reproduce one cell with its command from the *Commands* section at the end (`-reports DIR` keeps every cell's report.json and report.md).\n\n")

	fmt.Fprintf(w, "## Ping to every peel\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | conns | job final | all stored | p50 | p99 | returns/s | baseline (c) | ratio | lost | dup | status |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.rep == nil {
			fmt.Fprintf(w, "| %s | %s | %d | | | | | | | | | | | **error: %s** |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, r.err)
			continue
		}
		s := r.rep.Find(loadgen.ScPing)
		if s == nil || s.Ping == nil {
			continue
		}
		p := s.Ping
		base := loadgen.Seconds(0)
		if b := r.rep.Find(loadgen.ScBaseline); b != nil && b.Baseline != nil {
			base = b.Baseline.PingEquivTime
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %.2f× | %d | %d | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, num(r.rep.Setup.Conns),
			sec(p.Final), sec(p.AllStored), sec(p.P50), sec(p.P99), num(int(p.Throughput)), sec(base), p.Ratio, p.Lost, p.Duplicates, status(s))
	}

	fmt.Fprintf(w, "\n## Raw NATS baselines (same topology, same run)\n\n")
	fmt.Fprintf(w, "(a) one core broadcast to every connection, every peel answers 200 B to one collector; (b) PublishAsync of N return-shaped messages with unique subjects from one connection, window 4,096; (c) the ping equivalent (runs listed, best counts).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | (a) fan-out | (b) publish | (b) rate | (c) ping equivalent | (c) runs |\n|---:|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		s := r.rep.Find(loadgen.ScBaseline)
		if s == nil || s.Baseline == nil {
			continue
		}
		b := s.Baseline
		var runs []string
		for _, x := range b.PingEquivRuns {
			runs = append(runs, x.String())
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s/s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, sec(b.FanoutTime), sec(b.PublishTime), num(int(b.PublishRate)), sec(b.PingEquivTime), strings.Join(runs, ", "))
	}

	fmt.Fprintf(w, "\n## Fact storm\n\nEvery peel stores its facts (factcodec: JSON + zstd) at once; *stored* = first publish → last ack; *indexed* = until every master's index knows every peel (read from their heartbeats, which are written every 500 ms: that is the resolution).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | stored | facts/s | indexed | JSON avg | stored avg | ratio | encode µs/doc |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		s := r.rep.Find(loadgen.ScFactstorm)
		if s == nil || s.Facts == nil {
			continue
		}
		f := s.Facts
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %.0f B | %.0f B | %.2f× | %.0f |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, sec(f.StoreTime), num(int(f.Rate)), sec(f.IndexTime), f.JSONAvg, f.StoredAvg, f.Ratio, f.EncodeUS)
	}
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		if s := r.rep.Find(loadgen.ScFactstorm); s != nil && s.Facts != nil && s.Facts.Compression != nil {
			c := s.Facts.Compression
			fmt.Fprintf(w, "\nCompression of %d sample fact documents (average JSON %.0f B), measured in the %s cell:\n\n", c.Samples, c.JSONBytes, r.cell.name())
			fmt.Fprintf(w, "| encoding | avg stored | ratio | encode µs/doc | decode µs/doc | round-trips |\n|---|---:|---:|---:|---:|---|\n")
			for _, x := range []loadgen.Codec{c.Factcodec, c.TrainedDict, c.RawDict} {
				fmt.Fprintf(w, "| %s | %.0f B | %.2f× | %.0f | %.0f | %v |\n", x.Name, x.AvgBytes, x.Ratio, x.EncodeUS, x.DecodeUS, x.RoundTrips)
			}
			fmt.Fprintf(w, "\nTrained dictionary: %s bytes; raw dictionary: %d whole documents, %s bytes.\n", num(c.TrainedBytes), c.RawDictDocs, num(c.RawBytes))
			break
		}
	}

	fmt.Fprintf(w, "\n## Failover\n\n*masterkill*: 3 masters, a ping with answers due 1–3 s after dispatch, the master owning the job's coordinator partition is killed (`Kill()`, no hand-over) once every peel has the job; *failover* = kill → the survivors' heartbeat records own every partition exactly once. *serverkill* (cluster): the server leading `KV_job-returns` is stopped mid-job; *write gap* = stop → next successful KV write through the remaining servers.\n\n")
	fmt.Fprintf(w, "| scenario | peels | topology | victim | fault at | failover / write gap | job final after fault | all stored | lost | dup | refused dups | status |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		for _, name := range []string{loadgen.ScMasterkill, loadgen.ScServerkill} {
			s := r.rep.Find(name)
			if s == nil || s.Failover == nil || s.Failover.Ping == nil {
				continue
			}
			fo := s.Failover
			gap := fo.Failover
			if name == loadgen.ScServerkill {
				gap = fo.WriteGap
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %s |\n", name, num(r.cell.Peels), r.cell.where(), fo.Victim, sec(fo.FaultAt), sec(gap), sec(fo.DoneAfter), sec(fo.Ping.AllStored), fo.Ping.Lost, fo.Ping.Duplicates, fo.Ping.DupRefused, status(s))
		}
	}

	fmt.Fprintf(w, "\n## Reconnect after a server restart\n\nThe server most peels are connected to is restarted (same port and store); peels use the real agent's reconnect settings (wait 1 s, jitter 1–2 s).\n\n")
	fmt.Fprintf(w, "| peels | topology | server | conns moved | peels moved | restart | all reconnected | ping done after restart | ping itself | status |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		s := r.rep.Find(loadgen.ScReconnect)
		if s == nil || s.Reconnect == nil {
			continue
		}
		rc := s.Reconnect
		pingT := loadgen.Seconds(0)
		if rc.Ping != nil {
			pingT = rc.Ping.Time
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), rc.Server, num(rc.Conns), num(rc.PeelsMoved), sec(rc.RestartTime), sec(rc.AllReconnected), sec(rc.PingDone), sec(pingT), status(s))
	}

	fmt.Fprintf(w, "\n## Resources\n\n*fleet heap* = Go heap + stacks grown by creating and connecting the simulated fleet (before any traffic). *peak RSS* and *CPU* are of the whole process (servers + masters + fleet).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | fleet heap | B/peel | peak RSS | CPU | wall | scenarios |\n|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.rep == nil {
			continue
		}
		var sc []string
		for _, s := range r.rep.Scenarios {
			if s.Status != loadgen.StatusSkipped {
				sc = append(sc, s.Name+"="+s.Status)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.0f | %s | %s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, mib(r.rep.Fleet.HeapBytes), r.rep.Fleet.BytesPerPeel, mib(r.rep.Process.PeakRSS), r.rep.Process.CPU, r.rep.Wall, strings.Join(sc, " "))
	}

	for _, r := range results {
		if r.rep == nil || !r.cell.Headline {
			continue
		}
		fmt.Fprintf(w, "\n## Targets (the %s cell: `%s`)\n\n", r.cell.name(), r.rep.Command)
		fmt.Fprintf(w, "| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.rep.Targets {
			met := "yes"
			if !t.Met {
				met = "**no**"
			}
			if t.Note != "" {
				met += " (" + t.Note + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.What, t.Goal, t.Measured, met)
		}
		fmt.Fprintf(w, "\nEvery scenario of that run:\n\n| scenario | status | result |\n|---|---|---|\n")
		for _, s := range r.rep.Scenarios {
			res := s.Summary
			for _, n := range s.Notes {
				res += "<br>· " + n
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", s.Name, s.Status, strings.ReplaceAll(res, "|", "\\|"))
		}
	}
	var retried []string
	for _, r := range results {
		if r.retried != "" {
			retried = append(retried, fmt.Sprintf("- %s: the first attempt failed to set up (%s) and was run again.", r.cell.name(), r.retried))
		}
	}
	if len(retried) > 0 {
		fmt.Fprintf(w, "\n## Retried cells\n\n%s\n", strings.Join(retried, "\n"))
	}
	fmt.Fprintf(w, "\n## Commands\n\n")
	for _, r := range results {
		if r.rep != nil {
			fmt.Fprintf(w, "- %s: `go run ./cmd/%s`\n", r.cell.name(), r.rep.Command)
		}
	}
	if strings.TrimSpace(analysis) != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(analysis))
	}
}

// load reads the reports saved by a run with -reports, in matrix order.
func load(dir string, cells []cell) ([]result, error) {
	var out []result
	for _, c := range cells {
		b, err := os.ReadFile(filepath.Join(dir, c.name(), "report.json"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rep loadgen.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name(), err)
		}
		out = append(out, result{cell: c, rep: &rep, wall: rep.Wall.D()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no report.json of this matrix's cells under %s", dir)
	}
	return out, nil
}
