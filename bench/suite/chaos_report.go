package suite

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// The chaos loop's section of benchmarks.md, and the machine facts it
// records.

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
