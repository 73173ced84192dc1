package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/testkit"
)

// peelStates is `zester peels --json` as id → state.
func peelStates(t *testing.T, url, pkiDir string) map[string]string {
	t.Helper()
	code, out := run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "peels", "--json")
	if code != 0 {
		t.Fatalf("zester peels --json: %d %s", code, out)
	}
	var rows []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("peels --json: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, r := range rows {
		m[r.ID] = r.State
	}
	return m
}

func waitState(t *testing.T, url, pkiDir, id, want string) time.Duration {
	t.Helper()
	return testkit.Eventually(t, id+" "+want, 30*time.Second, func() bool { return peelStates(t, url, pkiDir)[id] == want })
}

// Real processes: a second zester-peel with a running peel's id exits 1
// naming the id; a peel killed with -9 is offline after three beat
// intervals; a job then does not wait for it, lists it offline and exits 2;
// a peel stopped with SIGTERM is offline at once (its beat interval is 20 s,
// so the masters would wait 60 s before calling it offline on silence).
func TestBinaries_Presence_DuplicateKillAndStop(t *testing.T) {
	const interval = 500 * time.Millisecond
	bm := writeMaster(t, "master-1", false, fmt.Sprintf("presence:\n  offline_after: %s\n", 3*interval))
	dir, pkiDir, url := bm.dir, bm.pkiDir, bm.url
	start(t, "zester-master", "--config", bm.cfg)
	waitReady(t, bm.http)

	// The clone holds a copy of db1's credentials (a copied host).
	creds := map[string]string{}
	peelCfg := func(name, id string, interval time.Duration) string {
		port := freePort(t)
		if creds[id] == "" {
			creds[id] = peelCreds(t, pkiDir, id)
		}
		cfg := filepath.Join(dir, name+".yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("id: %s\nhttp: 127.0.0.1:%d\nnats:\n  url: %s\n  creds: %s\ndata_dir: %s\nbeat_interval: %s\n",
			id, port, url, creds[id], filepath.Join(dir, name), interval)), 0o600)
		return cfg
	}
	peels := map[string]*proc{}
	for id, iv := range map[string]time.Duration{"web1.example.com": 20 * time.Second, "db1": interval} {
		cfg := peelCfg(id, id, iv)
		peels[id] = start(t, "zester-peel", "--config", cfg)
		waitState(t, url, pkiDir, id, "online")
	}

	// A clone: same id, its own data dir and port. It must refuse.
	code, out := run(t, "zester-peel", "--config", peelCfg("clone", "db1", interval))
	if code != 1 || !strings.Contains(out, `another peel with id \"db1\" is online`) {
		t.Fatalf("second db1: exit %d, want 1 naming the id\n%s", code, out)
	}
	if st := peelStates(t, url, pkiDir)["db1"]; st != "online" {
		t.Fatalf("db1 %s after the refused clone", st)
	}

	// kill -9: no goodbye; offline after offline_after without a beat.
	killed := time.Now()
	peels["db1"].cmd.Process.Kill()
	peels["db1"].cmd.Wait()
	took := waitState(t, url, pkiDir, "db1", "offline")
	t.Logf("kill -9: db1 offline %s after the kill (beat interval %s, offline_after %s)", took, interval, 3*interval)
	if time.Since(killed) < 3*interval-interval {
		// The last beat came at most one interval before the kill: offline
		// earlier than offline_after minus that is a premature call.
		t.Fatalf("offline %s after the kill, before offline_after", time.Since(killed))
	}

	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "run", "--timeout", "60s", "*", "test.ping")
	if code != 2 || !strings.Contains(out, "web1.example.com: true") || !strings.Contains(out, "offline (not sent, not waited for): db1") {
		t.Fatalf("run with db1 offline: exit %d\n%s", code, out)
	}
	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "peels", "--offline")
	if code != 0 || !strings.Contains(out, "db1") || strings.Contains(out, "web1.example.com") {
		t.Fatalf("peels --offline: %d\n%s", code, out)
	}

	// SIGTERM: a clean stop says goodbye.
	stopped := time.Now()
	peels["web1.example.com"].cmd.Process.Signal(syscall.SIGTERM)
	took = waitState(t, url, pkiDir, "web1.example.com", "offline")
	peels["web1.example.com"].cmd.Wait()
	t.Logf("SIGTERM: web1 offline %s after the signal (%s until the process exited)", took, time.Since(stopped))
}
