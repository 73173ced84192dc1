package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/topology"
)

// freeRun finds n consecutive free loopback ports.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	base, err := topology.FreePortRun(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// The operator procedure of docs/backup-recovery.md on a real cluster: a lab
// cluster from `zester topology gen --kind cluster --lab` runs as three
// nats-server processes, a master creates R3 buckets on it, and the
// documented commands work: `nats server report jetstream` with the system
// user, `nats server check stream`, and `zester check --replicas 3`. A node
// killed with -9 makes `zester check` fail naming the replica; once the node
// is back, it passes again.
func TestBinaries_LabCluster_OperatorChecks(t *testing.T) {
	dir := t.TempDir()
	base := freeRun(t, 12)
	conf := filepath.Join(dir, "nats")
	code, out := run(t, "zester", "topology", "gen", "--kind", "cluster", "--lab", "--out", conf, "--store-dir", filepath.Join(dir, "store"),
		"--port", fmt.Sprint(base), "--monitor", fmt.Sprint(base+3), "--cluster-port", fmt.Sprint(base+6), "--leaf-port", fmt.Sprint(base+9))
	if code != 0 {
		t.Fatalf("topology gen: %d %s", code, out)
	}
	password, err := os.ReadFile(filepath.Join(conf, "sys-password"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*proc, 3)
	startNode := func(i int) {
		nodes[i] = start(t, "nats-server", "-c", filepath.Join(conf, fmt.Sprintf("n%d.conf", i+1)))
	}
	for i := range nodes {
		startNode(i)
	}
	var urls []string
	for i := 0; i < 3; i++ {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", base+i))
	}
	url := strings.Join(urls, ",")
	mhttp := freePort(t)
	mcfg := filepath.Join(dir, "master.yaml")
	os.WriteFile(mcfg, []byte(fmt.Sprintf("id: m1\nhttp: 127.0.0.1:%d\ninsecure: true\nnats:\n  url: %s\n  replicas: 3\n", mhttp, url)), 0o600)
	start(t, "zester-master", "--config", mcfg)
	waitReadyFor(t, fmt.Sprintf("127.0.0.1:%d", mhttp), 120*time.Second)

	check := func() (int, string) { return run(t, "zester", "--nats", url, "check", "--replicas", "3") }
	testkit.Eventually(t, "zester check passes on the healthy cluster", 90*time.Second, func() bool { code, out = check(); return code == 0 })
	if !strings.Contains(out, "all 14 checks passed") || !strings.Contains(out, "R3, leader zester-n") || !strings.Contains(out, "3/3 current") {
		t.Errorf("zester check:\n%s", out)
	}

	// The seed's verification, spelled as natscli 0.5.0 takes it.
	sys := []string{"--server", urls[1], "--user", "sys", "--password", strings.TrimSpace(string(password))}
	code, out = run(t, "nats", append(sys, "server", "report", "jetstream")...)
	if code != 0 || !strings.Contains(out, "zester-n1") || !strings.Contains(out, "zester-n2") || !strings.Contains(out, "zester-n3") {
		t.Errorf("nats server report jetstream with the system user: %d\n%s", code, out)
	}
	if code, out = run(t, "nats", "--server", urls[1], "server", "report", "jetstream"); code == 0 {
		t.Errorf("nats server report jetstream without the system user worked:\n%s", out)
	}
	code, out = run(t, "nats", "--server", urls[1], "server", "check", "stream", "--stream", "KV_facts", "--peer-expect", "3")
	if code != 0 || !strings.HasPrefix(out, "OK KV_facts") {
		t.Errorf("nats server check stream: %d\n%s", code, out)
	}

	// kill -9 of one node.
	nodes[2].cmd.Process.Kill()
	nodes[2].cmd.Wait()
	testkit.Eventually(t, "zester check names the dead node's replicas", 90*time.Second, func() bool {
		code, out = check()
		if code != 1 || !regexp.MustCompile(`bucket facts +FAIL +.*replica zester-n3 (offline|not current)`).MatchString(out) {
			t.Logf("zester check, exit %d:\n%s", code, out)
			return false
		}
		return true
	})
	t.Logf("zester check with n3 killed:\n%s", out)
	startNode(2)
	testkit.Eventually(t, "zester check passes with n3 back", 120*time.Second, func() bool { code, out = check(); return code == 0 })
}

// waitReadyFor is waitReady with its own hang guard (a master on a cluster
// that is still forming takes longer than one on its embedded server).
func waitReadyFor(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	testkit.Eventually(t, addr+"/readyz", limit, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// A store left by root (the quick start run as root, then the service as
// its own user) is refused at start with the directory, its owner, the
// user and the fix named, instead of nats-server's "storage directory is
// not writable".
func TestBinaries_StoreNotWritable_NamesDir(t *testing.T) {
	dir, err := os.MkdirTemp("", "zester-e2e-store")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	store := filepath.Join(dir, "nats")
	if err := os.MkdirAll(filepath.Join(store, "jetstream"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "master.yaml")
	// insecure: the store's check is the point, not the PKI (which nobody
	// could create in this directory either).
	os.WriteFile(cfg, []byte(fmt.Sprintf("id: m1\nhttp: \"\"\ninsecure: true\nnats:\n  embedded:\n    listen: 127.0.0.1:%d\n    monitor: \"\"\n    store_dir: %s\n", freePort(t), store)), 0o644)
	cmd := exec.Command(filepath.Join(bin, "zester-master"), "--config", cfg)
	if os.Geteuid() == 0 {
		// As root, access checks pass: run the master as nobody, as the
		// service would run as zester.
		for _, p := range []string{dir, bin} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		os.Chmod(store, 0o500)
		t.Cleanup(func() { os.Chmod(store, 0o750) })
	}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("master on a store it cannot write: %v\n%s", err, out)
	}
	for _, want := range []string{"store dir " + store + ": " + store + " is owned by ", "with mode d", ", not writable by ", "chown -R"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error lacks %q:\n%s", want, out)
		}
	}
}

// --check without a configuration file says the defaults are used.
func TestBinaries_CheckWithoutConfig_SaysDefaults(t *testing.T) {
	for _, daemon := range []string{"zester-master", "zester-peel"} {
		path := "/etc/zester/" + strings.TrimPrefix(daemon, "zester-") + ".yaml"
		if _, err := os.Stat(path); err == nil {
			t.Skipf("%s exists on this machine", path)
		}
		code, out := run(t, daemon, "--check")
		if code != 0 || !strings.Contains(out, "no configuration file at "+path+": the defaults are used") {
			t.Errorf("%s --check: %d %s", daemon, code, out)
		}
	}
}

// demo runs scripts/demo.sh's first part on the given ports.
func demo(t *testing.T, base int) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/demo.sh")
	cmd.Env = append(os.Environ(), "ZESTER_DEMO_SKIP_LOADGEN=1",
		fmt.Sprintf("ZESTER_DEMO_PORT=%d", base), fmt.Sprintf("ZESTER_DEMO_MONITOR_PORT=%d", base+1), fmt.Sprintf("ZESTER_DEMO_HTTP_PORT=%d", base+2))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The quick start's demo runs its own master and says so; with one of its
// ports taken (another master's) it stops before starting anything and
// names the port, instead of talking to the other master.
func TestDemoScript_OwnMasterOrClearStop(t *testing.T) {
	base := freeRun(t, 5)
	code, out := demo(t, base)
	if code != 0 || !strings.Contains(out, "all 14 checks passed") || !strings.Contains(out, "web1.example.com: true") {
		t.Fatalf("demo: exit %d\n%s", code, out)
	}
	if m := regexp.MustCompile(`logs were in (\S+) \(removed on exit\)`).FindStringSubmatch(out); m == nil {
		t.Errorf("demo does not say where its logs were:\n%s", out)
	} else if _, err := os.Stat(m[1]); err == nil {
		t.Errorf("%s still there after a successful run", m[1])
	}

	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+2)) // the master's /readyz port
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out = demo(t, base)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("port %d on 127.0.0.1 is already in use", base+2)) || strings.Contains(out, "starting zester-master") {
		t.Fatalf("demo with its port taken: exit %d\n%s", code, out)
	}
}

// What docs/backup-recovery.md says of the nats CLI (natscli 0.5.0), checked
// against the CLI we ship: `10GB` is 10 GiB in master.yaml and in `nats
// stream edit --max-bytes`, so the two agree and a master start does not
// undo the operator's edit; `-f` skips the prompt of a plain stream but not
// the extra "Really operate on the KV stream?" question, which without a
// terminal fails.
func TestBinaries_NatsCLI_DocumentedBehaviour(t *testing.T) {
	bm := writeMaster(t, "m1", false, "retention:\n  job_events_max_bytes: 10GB\n")
	pkiDir, url, cfg := bm.pkiDir, bm.url, bm.cfg
	start(t, "zester-master", "--config", cfg)
	waitReady(t, bm.http)
	// The documented commands, with the admin's credentials of the PKI the
	// master made (a nats context holding them makes them the same words).
	admin := filepath.Join(pkiDir, "admin.creds")
	maxBytes := func() string {
		code, out := run(t, "nats", "--server", url, "--creds", admin, "stream", "info", "job-events", "--json")
		if code != 0 {
			t.Fatalf("nats stream info: %d %s", code, out)
		}
		return regexp.MustCompile(`"max_bytes":\s*(-?\d+)`).FindStringSubmatch(out)[1]
	}
	if got := maxBytes(); got != "10737418240" {
		t.Errorf("master.yaml 10GB set max_bytes %s, want 10737418240 (10 GiB)", got)
	}
	code, out := run(t, "nats", "--server", url, "--creds", admin, "stream", "edit", "job-events", "--max-bytes", "20GB", "-f")
	if code != 0 || maxBytes() != "21474836480" {
		t.Errorf("nats stream edit --max-bytes 20GB -f: %d, max_bytes %s\n%s", code, maxBytes(), out)
	}
	code, out = run(t, "nats", "--server", url, "--creds", admin, "stream", "purge", "KV_job-returns", "--keep", "0", "-f")
	if code == 0 || !strings.Contains(out, "Really operate on the KV stream?") && !strings.Contains(out, "cannot ask for confirmation without a terminal") {
		t.Errorf("nats stream purge KV_job-returns -f without a terminal: %d\n%s\n(docs/backup-recovery.md says it fails; update the docs)", code, out)
	}
	code, out = run(t, "nats", "--server", url, "--creds", admin, "stream", "edit", "KV_jobs", "--max-age", "14d", "-f")
	if code == 0 || !strings.Contains(out, "cannot ask for confirmation without a terminal") {
		t.Errorf("nats stream edit KV_jobs -f without a terminal: %d\n%s\n(docs/backup-recovery.md says it fails; update the docs)", code, out)
	}
	if code, out = run(t, "nats", "--server", url, "--creds", admin, "stream", "purge", "job-events", "--keep", "0", "-f"); code != 0 {
		t.Errorf("nats stream purge job-events -f: %d\n%s", code, out)
	}
}
