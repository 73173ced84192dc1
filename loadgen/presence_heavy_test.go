package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
)

// TestHeavyPresenceCost measures what presence beats cost a master: 100,000
// simulated peels over 1,000 connections beating every 10 s (the default)
// against one zester-master process, whose CPU is read from /proc. Run:
//
//	ZESTER_HEAVY=1 go test -run HeavyPresence -v ./loadgen/
func TestHeavyPresenceCost(t *testing.T) {
	if os.Getenv("ZESTER_HEAVY") == "" {
		t.Skip("set ZESTER_HEAVY=1 for the 100,000-peel presence run")
	}
	peels, _ := strconv.Atoi(os.Getenv("ZESTER_PRESENCE_PEELS"))
	if peels == 0 {
		peels = 100_000
	}
	const interval = 10 * time.Second
	const window = 30 * time.Second

	dir := t.TempDir()
	s := testkit.ServerIn(t, dir)
	bin := filepath.Join(dir, "zester-master")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/zester-io/zester/cmd/zester-master").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l := mustFreeAddr(t)
	cfg := filepath.Join(dir, "master.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("id: m1\nhttp: %s\nnats:\n  url: %s\nlog_level: warn\n", l, s.ClientURL())), 0o600)
	m := exec.Command(bin, "--config", cfg)
	var mlog bytes.Buffer
	m.Stdout, m.Stderr = &mlog, &mlog
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Process.Kill(); m.Wait() })
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + l + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("master not ready:\n%s", mlog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu := func() time.Duration { return procCPU(t, m.Process.Pid) }
	beats := func() float64 { return metric(t, l, "zester_master_beats_total") }

	// Baseline: the master with no fleet.
	c0, t0 := cpu(), time.Now()
	time.Sleep(window) // measuring idle CPU over a fixed window: nothing to wait on
	idle := float64(cpu()-c0) / float64(time.Since(t0))

	f, err := simfleet.NewFleet(simfleet.FleetConfig{Peels: peels, Conns: simfleet.DefaultConns(peels), Partitions: 64, URLs: []string{s.ClientURL()}, BeatInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.Connect(context.Background(), 32); err != nil {
		t.Fatal(err)
	}
	// Skip the first round (every peel beats once at connect), then measure
	// the steady state over three intervals.
	time.Sleep(interval + time.Second)
	c1, b1, s1, t1 := cpu(), beats(), f.Beats.Load(), time.Now()
	time.Sleep(window)
	el := time.Since(t1)
	busy := float64(cpu()-c1) / float64(el)
	rate := (beats() - b1) / el.Seconds()
	sent := float64(f.Beats.Load()-s1) / el.Seconds()
	st := f.Stats()
	perBeat := float64(st.OutBytes) / float64(max(f.Beats.Load(), 1))

	// Every peel is online in `zester peels`, answered by the master.
	var out, errb bytes.Buffer
	q := time.Now()
	code := cli.Main([]string{"--nats", s.ClientURL(), "peels", "--online", "--json"}, &out, &errb)
	took := time.Since(q)
	var rows []wire.PeelSummary
	if code != 0 || json.Unmarshal(out.Bytes(), &rows) != nil || len(rows) != peels {
		t.Fatalf("peels --online: exit %d, %d rows, want %d\n%s", code, len(rows), peels, errb.String())
	}
	// Rounds last 0.8–1.0 interval: on average a peel beats every 0.9.
	expected := float64(peels) / (0.9 * interval.Seconds())
	t.Logf("PRESENCE COST: %d peels over %d connections, beat interval %s: fleet sent %.0f beats/s, master heard %.0f beats/s (expected about %.0f); %.0f bytes per beat on the wire from the fleet",
		peels, f.Conns(), interval, sent, rate, expected, perBeat)
	t.Logf("PRESENCE COST: master CPU %.1f%% of one core while beating vs %.1f%% idle (%.1f µs per beat over idle); `zester peels --online` of %d peels took %s",
		busy*100, idle*100, (busy-idle)*1e6/rate, peels, took.Round(time.Millisecond))
	if rate < 0.9*expected {
		t.Errorf("master heard %.0f beats/s, want about %.0f", rate, expected)
	}
}

func mustFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the ")" of the command name: utime is 14th, stime 15th
	// of the whole line, so 12th and 13th after it.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stt) * time.Second / 100 // USER_HZ
}

// metric reads one counter from a master's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
