package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Generated operator-mode configs, with TLS, as real processes: a hub from
// `zester topology gen --kind single --pki-dir --tls-dir`, a leaf node from
// `--kind leaf` dialling it with the generated link credentials, a master
// on the hub, a peel behind the leaf, and the CLI: the job runs, the peel's
// return crosses the leaf link, and no client without credentials gets into
// either server.
func TestBinaries_GeneratedOperatorModeLeafWithTLS(t *testing.T) {
	dir := t.TempDir()
	pkiDir, tlsDir := filepath.Join(dir, "pki"), filepath.Join(dir, "tls")
	if code, out := run(t, "zester", "pki", "init", "--dir", pkiDir); code != 0 {
		t.Fatalf("pki init: %d %s", code, out)
	}
	if code, out := run(t, "zester", "tls", "init", "--hosts", "127.0.0.1,localhost", "--dir", tlsDir); code != 0 {
		t.Fatalf("tls init: %d %s", code, out)
	}
	base := freeRun(t, 4)
	hubPort, hubLeaf, leafPort := base, base+1, base+2
	hubOut, leafOut := filepath.Join(dir, "hub"), filepath.Join(dir, "leaf")
	code, out := run(t, "zester", "topology", "gen", "--kind", "single", "--pki-dir", pkiDir, "--tls-dir", tlsDir,
		"--host", "127.0.0.1", "--port", fmt.Sprint(hubPort), "--monitor", "-1", "--leaf-port", fmt.Sprint(hubLeaf),
		"--store-dir", filepath.Join(dir, "hub-store"), "--out", hubOut)
	if code != 0 {
		t.Fatalf("topology gen hub: %d %s", code, out)
	}
	// The leaf config of a second run, dialling the hub's leaf port; the
	// link credentials are where the config says (a lab on one host).
	code, out = run(t, "zester", "topology", "gen", "--kind", "leaf", "--pki-dir", pkiDir, "--tls-dir", tlsDir,
		"--host", "127.0.0.1", "--port", fmt.Sprint(leafPort), "--monitor", "-1", "--leaf-port", fmt.Sprint(base+3),
		"--leaf-remotes", fmt.Sprintf("nats-leaf://127.0.0.1:%d", hubLeaf), "--leaf-creds", filepath.Join(dir, "leaf", "leaf.creds"),
		"--store-dir", filepath.Join(dir, "leaf-store"), "--out", leafOut)
	if code != 0 {
		t.Fatalf("topology gen leaf: %d %s", code, out)
	}
	conf, _ := os.ReadFile(filepath.Join(hubOut, "server.conf"))
	for _, want := range []string{"operator:", "resolver: MEMORY", "resolver_preload", "tls {", "cert_file"} {
		if !strings.Contains(string(conf), want) {
			t.Fatalf("hub config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(string(conf), "password") {
		t.Fatalf("operator-mode config with a password:\n%s", conf)
	}
	if st, err := os.Stat(filepath.Join(leafOut, "leaf.creds")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("leaf.creds: %v", err)
	}
	for _, f := range []string{filepath.Join(hubOut, "server.conf"), filepath.Join(leafOut, "leaf-1.conf")} {
		if code, out := run(t, "nats-server", "-t", "-c", f); code != 0 {
			t.Fatalf("nats-server -t -c %s: %d %s", f, code, out)
		}
	}
	start(t, "nats-server", "-c", filepath.Join(hubOut, "server.conf"))
	start(t, "nats-server", "-c", filepath.Join(leafOut, "leaf-1.conf"))
	hubURL, leafURL := fmt.Sprintf("tls://127.0.0.1:%d", hubPort), fmt.Sprintf("tls://127.0.0.1:%d", leafPort)
	ca := filepath.Join(tlsDir, "ca.pem")

	mhttp, phttp := freePort(t), freePort(t)
	mcfg := filepath.Join(dir, "master.yaml")
	os.WriteFile(mcfg, []byte(fmt.Sprintf("id: m1\nhttp: 127.0.0.1:%d\npki_dir: %s\ntls:\n  dir: %s\n  ca: ca.pem\nnats:\n  url: %s\n", mhttp, pkiDir, tlsDir, hubURL)), 0o600)
	start(t, "zester-master", "--config", mcfg)
	waitReadyFor(t, fmt.Sprintf("127.0.0.1:%d", mhttp), 90*time.Second)
	pcfg := filepath.Join(dir, "peel.yaml")
	os.WriteFile(pcfg, []byte(fmt.Sprintf("id: site-a.web1\nhttp: 127.0.0.1:%d\nnats:\n  url: %s\n  creds: %s\ntls:\n  dir: %s\n  ca: ca.pem\ndata_dir: %s\n",
		phttp, leafURL, peelCreds(t, pkiDir, "site-a.web1"), tlsDir, filepath.Join(dir, "peel"))), 0o600)
	start(t, "zester-peel", "--config", pcfg)
	waitReadyFor(t, fmt.Sprintf("127.0.0.1:%d", phttp), 90*time.Second)

	// Its first beat may have gone out before the leaf link was up: wait
	// until the masters heard one.
	t.Setenv("ZESTER_TLS_CA", ca)
	waitState(t, hubURL, pkiDir, "site-a.web1", "online")
	code, out = run(t, "zester", "--nats", hubURL, "--pki-dir", pkiDir, "run", "*", "test.ping")
	if code != 0 || !strings.Contains(out, "site-a.web1: true") {
		t.Fatalf("zester run through the hub to a peel behind the leaf: exit %d\n%s", code, out)
	}
	for _, url := range []string{hubURL, leafURL} {
		if code, out := run(t, "nats", "--server", url, "--tlsca", ca, "kv", "ls"); code == 0 || !strings.Contains(strings.ToLower(out), "authorization violation") {
			t.Errorf("nats kv ls at %s without credentials: exit %d\n%s", url, code, out)
		}
	}
	if code, out := run(t, "nats", "--server", hubURL, "--tlsca", ca, "--creds", filepath.Join(pkiDir, "sys.creds"), "server", "list"); code != 0 || !strings.Contains(out, "zester") {
		t.Errorf("nats server list with sys.creds: exit %d\n%s", code, out)
	}
}
