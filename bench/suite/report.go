package suite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/zester-io/zester/loadgen"
)

// result is one cell's run.
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
	parts = append(parts, fmt.Sprintf("peak RSS %s, wall %s", size(r.rep.Process.PeakRSS), r.wall.Round(time.Second)))
	return strings.Join(parts, "; ")
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

func size(b int64) string { return humanize.IBytes(uint64(max(b, 0))) }

func sec(s loadgen.Seconds) string {
	if s == 0 {
		return "–"
	}
	return s.String()
}

func num(n int) string { return humanize.Comma(int64(n)) }

func status(s *loadgen.Scenario) string {
	if s.Status == loadgen.StatusOK {
		return "ok"
	}
	return "**" + s.Status + "**"
}

// page is benchmarks.md as a matrix run writes it.
type page struct {
	kind     string
	results  []result
	took     time.Duration
	args     []string // the command line, for the header
	analysis string   // bench/analysis.md, copied in verbatim at the end
}

// ran is the results of the cells that ran (have a report).
func (p page) ran() []result {
	var out []result
	for _, r := range p.results {
		if r.rep != nil {
			out = append(out, r)
		}
	}
	return out
}

// each calls f for every cell that ran the named scenario and has its
// figures (has reports whether s holds them).
func (p page) each(name string, has func(*loadgen.Scenario) bool, f func(r result, s *loadgen.Scenario)) {
	for _, r := range p.ran() {
		if s := r.rep.Find(name); s != nil && has(s) {
			f(r, s)
		}
	}
}

func (p page) write(w io.Writer) {
	p.header(w)
	p.ping(w)
	p.baselines(w)
	p.facts(w)
	p.failover(w)
	p.reconnect(w)
	p.resources(w)
	p.targets(w)
	p.footer(w)
}

// outputFlags are the flags that name where a run writes, left out of the
// command line the page shows.
var outputFlags = []string{"from", "out", "reports", "cpuprofile"}

// shownArgs is the command line without outputFlags and their values.
func shownArgs(args []string) []string {
	var kept []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch {
		case !strings.HasPrefix(args[i], "-") || !slices.Contains(outputFlags, name):
			kept = append(kept, args[i])
		case !hasValue:
			i++ // and its value, the next argument
		}
	}
	return kept
}

func (p page) header(w io.Writer) {
	var first *loadgen.Report
	for _, r := range p.results {
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
	fmt.Fprintf(w, "Written by `go run ./bench %s` (%d cells; run started %s, %s wall). Do not edit by hand: re-run the command; the analysis at the end comes from `bench/analysis.md`.\n\n",
		strings.Join(shownArgs(p.args), " "), len(p.results), when.Format("2006-01-02 15:04 MST"), p.took.Round(time.Second))
	if first != nil {
		m, v := first.Machine, first.Versions
		fmt.Fprintf(w, "- **Machine:** %d × %s, %s RAM, %s, kernel %s, open-file limit %s\n", m.CPUs, m.CPUModel, size(m.MemBytes), m.OS, m.Kernel, num(int(m.NoFile)))
		fmt.Fprintf(w, "- **Software:** %s, nats-server %s (embedded, in-process), nats.go %s, %s\n", v.Go, v.NATSServer, v.NATSClient, runtime.GOOS)
	}
	fmt.Fprintf(w, "- **Setup:** everything in one process on the same cores: the nats-server(s) of the topology, the masters (`master.New`, heartbeat 500 ms, dead after 1.5 s, 64 partitions) and the simulated fleet (peels multiplexed over peels/100 TCP connections, at most 1,000; one cell with a connection per peel). JetStream file storage; R1 on single and leaf, R3 on cluster. Answer latency 0 for ping and the baselines, uniform 1–3 s for masterkill/serverkill.\n")
	fmt.Fprintf(w, "- **Topologies:** single = one server; cluster = 3 routed servers, buckets R3; leaf = one JetStream hub + one leaf node without JetStream, peels on the leaf, masters on the hub.\n")
	fmt.Fprintf(w, "- **Ratio** = Zester's ping (submit → job record final with every return stored) ÷ raw NATS baseline (c) on the same topology in the same run (one core broadcast, every peel stores a return-shaped message with PublishAsync, one headers-only consumer reads them all; best of 3).\n\n")
	fmt.Fprintf(w, "Reproduce one cell with its command from the *Commands* section at the end (`-reports DIR` keeps every cell's report.json and report.md).\n\n")
}

func (p page) ping(w io.Writer) {
	fmt.Fprintf(w, "## Ping to every peel\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | conns | job final | all stored | p50 | p99 | returns/s | baseline (c) | ratio | lost | dup | status |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range p.results {
		if r.rep == nil {
			fmt.Fprintf(w, "| %s | %s | %d | | | | | | | | | | | **error: %s** |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, r.err)
			continue
		}
		s := r.rep.Find(loadgen.ScPing)
		if s == nil || s.Ping == nil {
			continue
		}
		pg := s.Ping
		base := loadgen.Seconds(0)
		if b := r.rep.Find(loadgen.ScBaseline); b != nil && b.Baseline != nil {
			base = b.Baseline.PingEquivTime
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %.2f× | %d | %d | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, num(r.rep.Setup.Conns),
			sec(pg.Final), sec(pg.AllStored), sec(pg.P50), sec(pg.P99), num(int(pg.Throughput)), sec(base), pg.Ratio, pg.Lost, pg.Duplicates, status(s))
	}
}

func (p page) baselines(w io.Writer) {
	fmt.Fprintf(w, "\n## Raw NATS baselines (same topology, same run)\n\n")
	fmt.Fprintf(w, "(a) one core broadcast to every connection, every peel answers 200 B to one collector; (b) PublishAsync of N return-shaped messages with unique subjects from one connection, window 4,096; (c) the ping equivalent (runs listed, best counts).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | (a) fan-out | (b) publish | (b) rate | (c) ping equivalent | (c) runs |\n|---:|---|---:|---:|---:|---:|---:|---|\n")
	p.each(loadgen.ScBaseline, func(s *loadgen.Scenario) bool { return s.Baseline != nil }, func(r result, s *loadgen.Scenario) {
		b := s.Baseline
		var runs []string
		for _, x := range b.PingEquivRuns {
			runs = append(runs, x.String())
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s/s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, sec(b.FanoutTime), sec(b.PublishTime), num(int(b.PublishRate)), sec(b.PingEquivTime), strings.Join(runs, ", "))
	})
}

func (p page) facts(w io.Writer) {
	fmt.Fprintf(w, "\n## Fact storm\n\nEvery peel stores its facts (factcodec: JSON + zstd) at once; *stored* = first publish → last ack; *indexed* = until every master's index knows every peel (read from their heartbeats, which are written every 500 ms: that is the resolution).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | stored | facts/s | indexed | JSON avg | stored avg | ratio | encode µs/doc |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	hasFacts := func(s *loadgen.Scenario) bool { return s.Facts != nil }
	p.each(loadgen.ScFactstorm, hasFacts, func(r result, s *loadgen.Scenario) {
		f := s.Facts
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %.0f B | %.0f B | %.2f× | %.0f |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, sec(f.StoreTime), num(int(f.Rate)), sec(f.IndexTime), f.JSONAvg, f.StoredAvg, f.Ratio, f.EncodeUS)
	})
	done := false
	p.each(loadgen.ScFactstorm, hasFacts, func(r result, s *loadgen.Scenario) {
		c := s.Facts.Compression
		if done || c == nil {
			return
		}
		done = true
		fmt.Fprintf(w, "\nCompression of %d sample fact documents (average JSON %.0f B), measured in the %s cell:\n\n", c.Samples, c.JSONBytes, r.cell.name())
		fmt.Fprintf(w, "| encoding | avg stored | ratio | encode µs/doc | decode µs/doc | round-trips |\n|---|---:|---:|---:|---:|---|\n")
		for _, x := range []loadgen.Codec{c.Factcodec, c.TrainedDict, c.RawDict} {
			fmt.Fprintf(w, "| %s | %.0f B | %.2f× | %.0f | %.0f | %v |\n", x.Name, x.AvgBytes, x.Ratio, x.EncodeUS, x.DecodeUS, x.RoundTrips)
		}
		fmt.Fprintf(w, "\nTrained dictionary: %s bytes; raw dictionary: %d whole documents, %s bytes.\n", num(c.TrainedBytes), c.RawDictDocs, num(c.RawBytes))
	})
}

func (p page) failover(w io.Writer) {
	fmt.Fprintf(w, "\n## Failover\n\n*masterkill*: 3 masters, a ping with answers due 1–3 s after dispatch, the master owning the job's coordinator partition is killed (`Kill()`, no hand-over) once every peel has the job; *failover* = kill → the survivors' heartbeat records own every partition exactly once. *serverkill* (cluster): the server leading `KV_job-returns` is stopped mid-job; *write gap* = stop → next successful KV write through the remaining servers.\n\n")
	fmt.Fprintf(w, "| scenario | peels | topology | victim | fault at | failover / write gap | job final after fault | all stored | lost | dup | refused dups | status |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range p.ran() {
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
}

func (p page) reconnect(w io.Writer) {
	fmt.Fprintf(w, "\n## Reconnect after a server restart\n\nThe server most peels are connected to is restarted (same port and store); peels use the real agent's reconnect settings (wait 1 s, jitter 1–2 s).\n\n")
	fmt.Fprintf(w, "| peels | topology | server | conns moved | peels moved | restart | all reconnected | ping done after restart | ping itself | status |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	p.each(loadgen.ScReconnect, func(s *loadgen.Scenario) bool { return s.Reconnect != nil }, func(r result, s *loadgen.Scenario) {
		rc := s.Reconnect
		pingT := loadgen.Seconds(0)
		if rc.Ping != nil {
			pingT = rc.Ping.Time
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), rc.Server, num(rc.Conns), num(rc.PeelsMoved), sec(rc.RestartTime), sec(rc.AllReconnected), sec(rc.PingDone), sec(pingT), status(s))
	})
}

func (p page) resources(w io.Writer) {
	fmt.Fprintf(w, "\n## Resources\n\n*fleet heap* = Go heap + stacks grown by creating and connecting the simulated fleet (before any traffic). *peak RSS* and *CPU* are of the whole process (servers + masters + fleet).\n\n")
	fmt.Fprintf(w, "| peels | topology | masters | fleet heap | B/peel | peak RSS | CPU | wall | scenarios |\n|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range p.ran() {
		var sc []string
		for _, s := range r.rep.Scenarios {
			if s.Status != loadgen.StatusSkipped {
				sc = append(sc, s.Name+"="+s.Status)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.0f | %s | %s | %s | %s |\n", num(r.cell.Peels), r.cell.where(), r.cell.Masters, size(r.rep.Fleet.HeapBytes), r.rep.Fleet.BytesPerPeel, size(r.rep.Process.PeakRSS), r.rep.Process.CPU, r.rep.Wall, strings.Join(sc, " "))
	}
}

func (p page) targets(w io.Writer) {
	for _, r := range p.ran() {
		if !r.cell.Headline {
			continue
		}
		fmt.Fprintf(w, "\n## Targets (the %s cell: `%s`)\n\n", r.cell.name(), r.rep.Command)
		fmt.Fprintf(w, "| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.rep.Targets {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.What, t.Goal, t.Measured, t.MetText("**no**"))
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
}

func (p page) footer(w io.Writer) {
	var retried []string
	for _, r := range p.results {
		if r.retried != "" {
			retried = append(retried, fmt.Sprintf("- %s: the first attempt failed to set up (%s) and was run again.", r.cell.name(), r.retried))
		}
	}
	if len(retried) > 0 {
		fmt.Fprintf(w, "\n## Retried cells\n\n%s\n", strings.Join(retried, "\n"))
	}
	fmt.Fprintf(w, "\n## Commands\n\n")
	for _, r := range p.results {
		if r.rep != nil {
			fmt.Fprintf(w, "- %s: `go run ./cmd/%s`\n", r.cell.name(), r.rep.Command)
		}
	}
	if strings.TrimSpace(p.analysis) != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(p.analysis))
	}
}
