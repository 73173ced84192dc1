package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/topology"
)

// testConfig is the configuration of the daemon under test: its file holds
// what Run does ("ok", "fail", "hang"); "bad" fails to load.
type testConfig struct{ mode string }

func testCommand(extra *string) Command[testConfig] {
	return Command[testConfig]{
		Name:          "zester-test",
		DefaultConfig: "/nonexistent/zester-test.yaml",
		Version:       "v1.2.3",
		Flags:         func(fs *flag.FlagSet) { fs.StringVar(extra, "extra", "", "a daemon's own flag") },
		Load: func(path string, explicit bool) (testConfig, error) {
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) && !explicit {
				return testConfig{mode: "ok"}, nil
			}
			if err != nil {
				return testConfig{}, err
			}
			if m := strings.TrimSpace(string(b)); m != "bad" {
				return testConfig{mode: m}, nil
			}
			return testConfig{}, errors.New("config key mode: bad")
		},
		New: func(cfg testConfig) (Daemon, error) {
			if cfg.mode == "unbuildable" {
				return Daemon{}, errors.New("cannot build")
			}
			return Daemon{Run: func(ctx context.Context) error {
				switch cfg.mode {
				case "fail":
					return errors.New("boom")
				case "hang":
					select {}
				}
				<-ctx.Done()
				return nil
			}}, nil
		},
	}
}

func TestRun_ExitCodes(t *testing.T) {
	dir := t.TempDir()
	file := func(mode string) string {
		p := filepath.Join(dir, mode+".yaml")
		if err := os.WriteFile(p, []byte(mode), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"version", []string{"--version"}, ExitOK, "zester-test v1.2.3"},
		{"check default missing", []string{"--check"}, ExitOK, "the defaults are used, and they are valid"},
		{"check explicit", []string{"-t", "--config", file("ok")}, ExitOK, "configuration " + file("ok") + " is valid"},
		{"check bad", []string{"--check", "--config", file("bad")}, ExitUsage, "zester-test: config key mode: bad"},
		{"explicit missing", []string{"--config", filepath.Join(dir, "none.yaml")}, ExitUsage, "no such file"},
		{"unknown flag", []string{"--nope"}, ExitUsage, "flag provided but not defined: -nope"},
		{"daemon flag", []string{"--extra", "x", "--config", file("fail")}, ExitFailed, "zester-test: boom"},
		{"unbuildable", []string{"--config", file("unbuildable")}, ExitUsage, "zester-test: cannot build"},
		{"stopped by signal", []string{"--config", file("ok")}, ExitOK, ""},
		{"stop outlasts grace", []string{"--config", file("hang")}, ExitFailed, "shutdown took too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra string
			var errb bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the stop signal has come: a daemon that runs stops at once
			code := run(ctx, testCommand(&extra), tc.args, &errb, 100*time.Millisecond)
			if code != tc.code || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), tc.code, tc.stderr)
			}
			if tc.name == "daemon flag" && extra != "x" {
				t.Fatalf("--extra not parsed into the daemon's flag: %q", extra)
			}
		})
	}
}

// TestCloser_Drain_WaitsForClosed: Drain returns once the connection has
// closed (the closed callback), with what was published before it flushed.
func TestCloser_Drain_WaitsForClosed(t *testing.T) {
	srv, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", NoJetStream: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got, err := sub.SubscribeSync("drain.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	c := NewCloser()
	nc, err := nats.Connect(srv.ClientURL(), c.Option())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("drain.test", []byte("last words")); err != nil {
		t.Fatal(err)
	}
	c.Drain(nc, 30*time.Second)
	if !nc.IsClosed() {
		t.Fatal("Drain returned with the connection open")
	}
	select {
	case <-c.Closed():
	default:
		t.Fatal("Drain returned before the closed callback")
	}
	if m, err := got.NextMsg(30 * time.Second); err != nil || string(m.Data) != "last words" {
		t.Fatalf("message published before the drain: %v %v", m, err)
	}
}

// Defaults keeps what the caller gave and fills in the rest: a logger at
// the configured level, a metrics set.
func TestDefaults(t *testing.T) {
	log, set := Defaults(nil, nil, "debug")
	if log == nil || set == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatalf("Defaults(nil, nil, debug) = %v, %v", log, set)
	}
	own, ownSet := slog.New(slog.DiscardHandler), metrics.NewSet()
	if log, set := Defaults(own, ownSet, "debug"); log != own || set != ownSet {
		t.Errorf("Defaults replaced the caller's logger or metrics")
	}
}
