package loadgen

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPerPeelRefusedAboveFileLimit(t *testing.T) {
	c := DefaultConfig()
	c.Peels, c.Mode = 15_000, ModePerPeel
	err := c.checkFiles(20_000)
	if err == nil {
		t.Fatal("15,000 connections with the server in-process fit 20,000 files?")
	}
	for _, want := range []string{"15000 connections", "RLIMIT_NOFILE", "at most 9700 connections", "--mode multiplexed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	c.NATS = "nats://127.0.0.1:4222"
	if err := c.checkFiles(20_000); err != nil {
		t.Errorf("external server, 15,000 connections: %v", err)
	}
	if lim := noFileLimit(); lim > 0 && lim < 400_000 {
		var out, errb bytes.Buffer
		peels := strconv.FormatUint(lim, 10) // 2 files a connection: never fits
		if code := Main([]string{"--mode", "perpeel", "--peels", peels}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "RLIMIT_NOFILE") {
			t.Fatalf("Main: code %d, stderr %q", code, errb.String())
		}
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "masterkill") {
		t.Fatalf("--help: code %d", code)
	}
	for _, args := range [][]string{{"--scenarios", "ping,nope"}, {"--latency", "soon"}, {"--topology", "mesh"}, {"--beat-interval", "10ms"}, {"extra"}} {
		errb.Reset()
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("%v: code %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.StoreDir = t.TempDir()
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteTable(&b)
	t.Log(b.String())
	return rep
}

func TestPingAllReturns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peels = 3000
	cfg.Scenarios = []string{ScPing}
	cfg.FailRate = 0.01
	rep := run(t, cfg)
	sc := rep.Find(ScPing)
	if sc == nil || sc.Ping == nil {
		t.Fatal("no ping result")
	}
	p := sc.Ping
	if sc.Status != StatusOK || !p.Verified {
		t.Fatalf("ping: %s %v", sc.Status, p.Problems)
	}
	if p.Returned != cfg.Peels || p.Expected != cfg.Peels || p.StoredKeys != cfg.Peels || p.Lost != 0 || p.Duplicates != 0 {
		t.Fatalf("ping: %+v", p)
	}
	if p.FailedSent == 0 || int64(p.Failed) != p.FailedSent {
		t.Fatalf("failed returns: sent %d, job counts %d", p.FailedSent, p.Failed)
	}
	if b := rep.Find(ScBaseline); b == nil || b.Baseline == nil || b.Baseline.PingEquivTime <= 0 || p.Ratio <= 0 {
		t.Fatal("no baseline or ratio")
	}
}

func TestPerPeelPing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peels, cfg.Mode = 300, ModePerPeel
	cfg.Scenarios = []string{ScPing}
	rep := run(t, cfg)
	if rep.Setup.Conns != 300 {
		t.Fatalf("conns %d", rep.Setup.Conns)
	}
	if sc := rep.Find(ScPing); sc.Status != StatusOK || sc.Ping.StoredKeys != 300 {
		t.Fatalf("ping: %s %v", sc.Status, sc.Notes)
	}
}

func TestMasterKill(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peels = 3000
	cfg.Scenarios = []string{ScMasterkill}
	rep := run(t, cfg)
	sc := rep.Find(ScMasterkill)
	if sc == nil || sc.Failover == nil || sc.Failover.Ping == nil {
		t.Fatalf("no masterkill result: %+v", sc)
	}
	fo := sc.Failover
	if sc.Status != StatusOK {
		t.Fatalf("masterkill: %s %v", sc.Status, sc.Notes)
	}
	if fo.Masters != 3 || fo.Victim == "" {
		t.Fatalf("masterkill with %d masters, victim %q", fo.Masters, fo.Victim)
	}
	if fo.Failover <= 0 || fo.Failover >= 5 {
		t.Fatalf("failover took %s", fo.Failover)
	}
	if p := fo.Ping; p.Lost != 0 || p.Duplicates != 0 || p.StoredKeys != cfg.Peels || p.Status != "done" {
		t.Fatalf("job after the kill: %+v", p)
	}
}

// TestHeavy100k is the target run: ZESTER_HEAVY=1 go test -run Heavy -v ./loadgen/
func TestHeavy100k(t *testing.T) {
	if os.Getenv("ZESTER_HEAVY") == "" {
		t.Skip("set ZESTER_HEAVY=1 for the 100,000-peel run")
	}
	cfg := DefaultConfig()
	cfg.Peels = 100_000
	cfg.Scenarios = []string{ScFactstorm, ScPing, ScMasterkill, ScReconnect}
	rep := run(t, cfg)
	for _, tg := range rep.Targets {
		t.Logf("target %-45s goal %-28s measured %-40s met %v", tg.What, tg.Goal, tg.Measured, tg.Met)
	}
	if rep.Failed {
		t.Fatal("a scenario failed")
	}
}

// BenchmarkPing100k pings 100,000 simulated peels (one fleet, b.N pings).
func BenchmarkPing100k(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Peels = 100_000
	cfg.Scenarios = []string{ScPing}
	cfg.StoreDir = b.TempDir()
	var total time.Duration
	for range b.N {
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		sc := rep.Find(ScPing)
		if sc.Status != StatusOK {
			b.Fatalf("ping: %v", sc.Notes)
		}
		total += sc.Ping.Time.D()
		b.ReportMetric(float64(sc.Ping.Ratio), "x-baseline")
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/ping")
}

// A secure run: operator mode, signed dispatches verified by every
// simulated connection, every return stored, nothing refused.
func TestSecurePing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peels = 3000
	cfg.Secure = true
	cfg.Scenarios = []string{ScPing}
	rep := run(t, cfg)
	sc := rep.Find(ScPing)
	if sc == nil || sc.Status != StatusOK || sc.Ping.StoredKeys != cfg.Peels || sc.Ping.Lost != 0 {
		t.Fatalf("ping: %+v", sc)
	}
	if !rep.Setup.Secure || rep.Fleet.Verified == 0 || rep.Fleet.Refused != 0 {
		t.Fatalf("signatures: verified %d refused %d", rep.Fleet.Verified, rep.Fleet.Refused)
	}
}

// With --server-process the server is a nats-server child: one connection
// per peel costs this process one open file (the limit check agrees), a
// ping is answered by every peel, and after the child restarts every peel
// is back with its facts stored again.
func TestServerProcess_PerPeelPingAndReconnect(t *testing.T) {
	c := DefaultConfig()
	c.Peels, c.Mode, c.ServerProcess = 15_000, ModePerPeel, true
	if err := c.checkFiles(20_000); err != nil {
		t.Fatalf("15,000 connections to a server in a child process do not fit 20,000 files: %v", err)
	}
	c.Topology = "cluster"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--server-process") {
		t.Fatalf("--server-process with a cluster: %v", err)
	}

	cfg := DefaultConfig()
	cfg.Peels, cfg.Mode, cfg.ServerProcess = 300, ModePerPeel, true
	cfg.Scenarios = []string{ScPing, ScReconnect}
	rep := run(t, cfg)
	if !rep.Setup.ServerProcess || rep.Process.ServerPeakRSS == 0 {
		t.Fatalf("setup %+v, server RSS %d: want the server in a child", rep.Setup, rep.Process.ServerPeakRSS)
	}
	if rep.Fleet.OpenFiles >= 2*cfg.Peels {
		t.Fatalf("%d open files for %d connections: the server's ends are in this process", rep.Fleet.OpenFiles, cfg.Peels)
	}
	if sc := rep.Find(ScPing); sc.Status != StatusOK || sc.Ping.StoredKeys != cfg.Peels || sc.Ping.Lost != 0 || sc.Ping.Duplicates != 0 {
		t.Fatalf("ping: %s %+v %v", sc.Status, sc.Ping, sc.Notes)
	}
	sc := rep.Find(ScReconnect)
	if sc.Status != StatusOK || sc.Reconnect.PeelsMoved != cfg.Peels || sc.Reconnect.FactsRepublished <= 0 {
		t.Fatalf("reconnect: %s %+v %v", sc.Status, sc.Reconnect, sc.Notes)
	}
}

func TestTakeoverGrace_ScalesWithPeels(t *testing.T) {
	def := 2 * time.Second
	for _, c := range []struct {
		peels int
		want  time.Duration
	}{{100, def}, {100_000, def}, {500_000, 10 * time.Second}, {1_000_000, 20 * time.Second}, {5_000_000, 30 * time.Second}} {
		if got := takeoverGrace(c.peels, def); got != c.want {
			t.Errorf("takeoverGrace(%d) = %s, want %s", c.peels, got, c.want)
		}
	}
}
