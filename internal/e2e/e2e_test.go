// Package e2e holds the end-to-end tests. Most drive the real binaries:
// zester-master with its embedded nats-server, zester-peel processes, the
// zester CLI and the stock nats CLI, all on loopback. The tests that need a
// master and a real peel together in process are here too (inprocess_test.go
// and the files that use it), so that neither daemon's tests import the other.
package e2e

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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/syncio"
	"github.com/zester-io/zester/internal/testbin"
	"github.com/zester-io/zester/internal/testkit"
)

var bin string

// defaultPKIDir is master.yaml's default pki_dir.
const defaultPKIDir = "/etc/zester/pki"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zester-e2e-bin")
	if err != nil {
		panic(err)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/zester-io/zester/cmd/zester", "github.com/zester-io/zester/cmd/zester-master", "github.com/zester-io/zester/cmd/zester-peel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	// The nats CLI and nats-server change only with go.mod: testbin builds
	// them once for every test binary.
	for name, pkg := range map[string]string{"nats": testbin.NATSCLI, "nats-server": testbin.NATSServer} {
		path, err := testbin.Path(pkg)
		if err == nil {
			err = os.Symlink(path, filepath.Join(dir, name))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "build binaries:", err)
			os.Exit(1)
		}
	}
	// Every master here names its own pki_dir: a test that left it to the
	// default would create the PKI in /etc/zester/pki of the machine.
	_, before := os.Stat(defaultPKIDir)
	code := m.Run()
	os.RemoveAll(dir)
	if _, after := os.Stat(defaultPKIDir); before != nil && after == nil {
		fmt.Fprintf(os.Stderr, "a test created %s (a master config without pki_dir)\n", defaultPKIDir)
		code = 1
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	cmd *exec.Cmd
	out *syncio.Buffer
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(filepath.Join(bin, name), args...), out: &syncio.Buffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func run(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	out, err := c.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%s: %v", name, err)
	}
	return 0, string(out)
}

// peelCreds pre-provisions a peel in the PKI directory and returns its
// credentials file.
func peelCreds(t *testing.T, pkiDir, id string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), id+".creds")
	if code, text := run(t, "zester", "pki", "peel", "add", id, "--dir", pkiDir, "--out", out); code != 0 {
		t.Fatalf("zester pki peel add %s: %d %s", id, code, text)
	}
	return out
}

func waitReady(t *testing.T, addr string) { t.Helper(); waitReadyFor(t, addr, 30*time.Second) }

// binMaster is a master.yaml for a zester-master process: its embedded
// server on free loopback ports, its store, states, settings and PKI under a
// temporary directory (never the machine's /etc/zester).
type binMaster struct {
	dir, cfg, pkiDir string
	url              string // the embedded server's client URL
	http             string // host:port of /readyz and /metrics
	monitor          int    // the monitoring port (0: none)
}

// writeMaster writes the master.yaml of a master with id; withMonitor opens
// the monitoring port; extra is YAML appended (more top-level keys).
func writeMaster(t *testing.T, id string, withMonitor bool, extra string) *binMaster {
	t.Helper()
	dir := t.TempDir()
	client, mhttp := freePort(t), freePort(t)
	m := &binMaster{dir: dir, cfg: filepath.Join(dir, "master.yaml"), pkiDir: filepath.Join(dir, "pki"),
		url: fmt.Sprintf("nats://127.0.0.1:%d", client), http: fmt.Sprintf("127.0.0.1:%d", mhttp)}
	monitor := `""`
	if withMonitor {
		m.monitor = freePort(t)
		monitor = fmt.Sprintf("127.0.0.1:%d", m.monitor)
	}
	yaml := fmt.Sprintf("id: %s\nhttp: %s\nnats:\n  embedded:\n    listen: 127.0.0.1:%d\n    monitor: %s\n    store_dir: %s\nstates_dir: %s\nsettings_dir: %s\npki_dir: %s\n",
		id, m.http, client, monitor, filepath.Join(dir, "nats"), filepath.Join(dir, "states"), filepath.Join(dir, "settings"), m.pkiDir)
	if err := os.WriteFile(m.cfg, []byte(yaml+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// The default path end to end: a master with an empty pki_dir creates the
// PKI, serves nobody without credentials, the peels connect with credentials
// from `zester pki peel add`, and the CLI finds the admin's credentials in
// the PKI directory and runs jobs.
func TestBinaries_MasterEmbeddedTwoPeelsPing(t *testing.T) {
	bm := writeMaster(t, "master-1", true, "")
	dir, pkiDir, url, mcfg := bm.dir, bm.pkiDir, bm.url, bm.cfg
	if code, out := run(t, "zester-master", "--config", mcfg, "--check"); code != 0 {
		t.Fatalf("--check: %d %s", code, out)
	}
	m := start(t, "zester-master", "--config", mcfg)
	waitReady(t, bm.http)

	// Secure by default: the first start made the PKI and said where the
	// admin's credentials are; nobody without credentials gets in.
	admin := filepath.Join(pkiDir, "admin.creds")
	if st, err := os.Stat(admin); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.creds: %v", err)
	}
	if !strings.Contains(m.out.String(), admin) {
		t.Errorf("the master's log does not name %s:\n%s", admin, m.out.String())
	}
	if code, out := run(t, "nats", "--server", url, "kv", "ls"); code == 0 || !strings.Contains(strings.ToLower(out), "authorization violation") {
		t.Fatalf("nats kv ls without credentials: exit %d\n%s", code, out)
	}
	if code, out := run(t, "zester", "--nats", url, "--pki-dir", t.TempDir(), "run", "*", "test.ping"); code != 3 || !strings.Contains(out, "wants Zester credentials") {
		t.Fatalf("zester run without credentials: exit %d\n%s", code, out)
	}

	// The monitoring port answers /jsz, as the seed's recovery check expects.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", bm.monitor))
	if err != nil {
		t.Fatal(err)
	}
	var jsz struct {
		Streams int `json:"streams"`
	}
	json.NewDecoder(resp.Body).Decode(&jsz)
	resp.Body.Close()
	if jsz.Streams != 11 {
		t.Errorf("/jsz streams = %d, want 11 (ten buckets and job-events)", jsz.Streams)
	}

	var peelHTTP []string
	for _, id := range []string{"web1.example.com", "db1"} {
		port := freePort(t)
		cfg := filepath.Join(dir, id+".yaml")
		creds := peelCreds(t, pkiDir, id)
		os.WriteFile(cfg, []byte(fmt.Sprintf("id: %s\nhttp: 127.0.0.1:%d\nnats:\n  url: %s\n  creds: %s\ndata_dir: %s\nfacts_interval: 1m\n", id, port, url, creds, filepath.Join(dir, id))), 0o600)
		start(t, "zester-peel", "--config", cfg)
		peelHTTP = append(peelHTTP, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, a := range peelHTTP {
		waitReady(t, a)
	}

	code, out := run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "run", "*", "test.ping")
	if code != 0 || !strings.Contains(out, "web1.example.com: true") || !strings.Contains(out, "db1: true") {
		t.Fatalf("zester run: exit %d\n%s", code, out)
	}
	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "run", "db1", "cmd.run", "echo hello from $(hostname)")
	if code != 0 || !strings.Contains(out, "hello from") {
		t.Fatalf("cmd.run: exit %d\n%s", code, out)
	}

	// The stock nats CLI sees the seed's buckets, with the admin's
	// credentials.
	code, out = run(t, "nats", "--server", url, "--creds", admin, "kv", "ls")
	if code != 0 {
		t.Fatalf("nats kv ls: %d %s", code, out)
	}
	for _, b := range []string{"facts", "settings-files", "secrets", "basket", "jobs", "job-returns", "master-heartbeat", "enrollments", "enroll-challenges"} {
		if !strings.Contains(out, b) {
			t.Errorf("nats kv ls lacks %s:\n%s", b, out)
		}
	}
	code, out = run(t, "nats", "--server", url, "--creds", admin, "kv", "info", "facts")
	if code != 0 || !strings.Contains(out, "History Kept: 5") || !strings.Contains(out, "Storage: File") {
		t.Errorf("nats kv info facts: %d %s", code, out)
	}
	code, out = run(t, "nats", "--server", url, "--creds", admin, "kv", "info", "enroll-challenges")
	if code != 0 || !strings.Contains(out, "Storage: Memory") || !strings.Contains(out, "Maximum Age: 5m0s") {
		t.Errorf("nats kv info enroll-challenges: %d %s", code, out)
	}
	code, out = run(t, "nats", "--server", url, "--creds", admin, "micro", "ls")
	if code != 0 || !strings.Contains(out, "zester-master") {
		t.Errorf("nats micro ls: %d %s", code, out)
	}
	// Metrics.
	resp, err = http.Get("http://" + bm.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	mb.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(mb.String(), "zester_master_jobs_finished_total 2") {
		t.Errorf("metrics lack finished jobs:\n%s", mb.String())
	}

	// SIGTERM: a clean stop.
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("master exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("master did not stop on SIGTERM")
	}
}

func TestBinaries_BadConfigNamesKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "master.yaml")
	os.WriteFile(cfg, []byte("id: m1\nnats:\n  embeded:\n    listen: 127.0.0.1:4222\n"), 0o600)
	code, out := run(t, "zester-master", "--config", cfg)
	if code != 2 || !strings.Contains(out, "embeded") {
		t.Fatalf("exit %d, output %s", code, out)
	}
	os.WriteFile(cfg, []byte("id: p1\nfacts_interval: soon\n"), 0o600)
	code, out = run(t, "zester-peel", "--config", cfg)
	if code != 2 || !strings.Contains(out, "facts_interval") {
		t.Fatalf("peel: exit %d, output %s", code, out)
	}
}

// --nats-only serves the embedded store without a master (for restores).
func TestBinaries_NatsOnly(t *testing.T) {
	dir := t.TempDir()
	client := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", client)
	cfg := filepath.Join(dir, "master.yaml")
	pkiDir := filepath.Join(dir, "pki")
	os.WriteFile(cfg, []byte(fmt.Sprintf("id: m1\npki_dir: %s\nnats:\n  embedded:\n    listen: 127.0.0.1:%d\n    monitor: \"\"\n    store_dir: %s\n", pkiDir, client, filepath.Join(dir, "nats"))), 0o600)
	p := start(t, "zester-master", "--config", cfg, "--nats-only")
	admin := filepath.Join(pkiDir, "admin.creds")
	var code int
	var out string
	testkit.Until(t, 20*time.Second, func() error {
		if code, out = run(t, "nats", "--server", url, "--creds", admin, "account", "info"); code != 0 {
			return fmt.Errorf("nats account info: %d %s", code, out)
		}
		return nil
	})
	if !strings.Contains(out, "JetStream") {
		t.Fatalf("nats account info: %s", out)
	}
	// No master: no buckets were created, and no master answers.
	if code, out = run(t, "nats", "--server", url, "account", "info"); code == 0 {
		t.Fatalf("--nats-only serves clients without credentials:\n%s", out)
	}
	if code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "run", "*", "test.ping"); code != 3 || !strings.Contains(out, "no master") {
		t.Fatalf("run without master: %d %s", code, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}
