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

// A real peel process stopped with SIGSTOP while its command runs, and
// continued after the job's deadline: the command had exited meanwhile, so
// the peel must not report it killed. Its return is the command's real
// result, marked late, and `zester job show` lists the peel once, as late.
func TestBinaries_PeelPausedPastDeadline_ReturnIsLateNotKilled(t *testing.T) {
	bm := writeMaster(t, "master-1", false, "")
	dir, pkiDir, url := bm.dir, bm.pkiDir, bm.url
	start(t, "zester-master", "--config", bm.cfg)
	waitReady(t, bm.http)
	port := freePort(t)
	pcfg := filepath.Join(dir, "late1.yaml")
	os.WriteFile(pcfg, []byte(fmt.Sprintf("id: late1\nhttp: 127.0.0.1:%d\nnats:\n  url: %s\n  creds: %s\ndata_dir: %s\nfacts_interval: 1m\n", port, url, peelCreds(t, pkiDir, "late1"), filepath.Join(dir, "late1"))), 0o600)
	peel := start(t, "zester-peel", "--config", pcfg)
	waitReady(t, fmt.Sprintf("127.0.0.1:%d", port))
	t.Cleanup(func() { peel.cmd.Process.Signal(syscall.SIGCONT) })

	marks := filepath.Join(dir, "marks")
	os.Mkdir(marks, 0o755)
	started, finished := filepath.Join(marks, "started"), filepath.Join(marks, "finished")
	script := fmt.Sprintf("touch %s; sleep 1; echo finished; touch %s", started, finished)
	code, out := run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "run", "--async", "-t", "4s", "-L", "late1", "cmd.run", script)
	jid := strings.TrimSpace(out)
	if code != 0 || len(jid) != 22 {
		t.Fatalf("submit: %d %q", code, out)
	}
	waitFile := func(p string) {
		t.Helper()
		testkit.Eventually(t, p+" written", 30*time.Second, func() bool {
			_, err := os.Stat(p)
			return err == nil
		})
	}
	waitFile(started)
	if err := peel.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The command goes on in its own process group and exits while the
	// peel is stopped; the masters time the job out at its deadline.
	waitFile(finished)
	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "job", "wait", jid)
	if code != 2 || !strings.Contains(out, "did not answer: late1") {
		t.Fatalf("job wait while the peel is stopped: exit %d\n%s", code, out)
	}
	if err := peel.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	var ret struct {
		Success bool `json:"success"`
		Late    bool `json:"late"`
		Error   *struct {
			Code string `json:"code"`
		} `json:"error"`
		Result struct {
			Stdout   string `json:"stdout"`
			Retcode  int    `json:"retcode"`
			TimedOut bool   `json:"timed_out"`
			Note     string `json:"note"`
		} `json:"result"`
	}
	testkit.Until(t, 60*time.Second, func() error {
		code, out = run(t, "nats", "--server", url, "--creds", filepath.Join(pkiDir, "admin.creds"), "kv", "get", "job-returns", jid+".late1", "--raw")
		if code != 0 || json.Unmarshal([]byte(out), &ret) != nil {
			return fmt.Errorf("no return stored after SIGCONT: %d %s", code, out)
		}
		return nil
	})
	if !ret.Success || !ret.Late || ret.Error != nil || ret.Result.Retcode != 0 || ret.Result.TimedOut || ret.Result.Stdout != "finished\n" || ret.Result.Note != "" {
		t.Fatalf("stored return is not the command's real result marked late: %+v", ret)
	}
	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "job", "show", jid)
	if code != 2 || !strings.Contains(out, "late1 (late): retcode 0\n    finished\n") || !strings.Contains(out, "late (answered after the deadline): late1") ||
		strings.Contains(out, "did not answer") || strings.Contains(out, "failed:") || strings.Contains(out, "killed") {
		t.Fatalf("job show: exit %d\n%s", code, out)
	}
	code, out = run(t, "zester", "--nats", url, "--pki-dir", pkiDir, "job", "show", "--out", "json", jid)
	var sum struct {
		Summary struct {
			Late, Failed, Missing []string
		} `json:"summary"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if json.Unmarshal([]byte(lines[len(lines)-1]), &sum) != nil || strings.Join(sum.Summary.Late, ",") != "late1" || len(sum.Summary.Failed)+len(sum.Summary.Missing) != 0 {
		t.Fatalf("job show --out json: exit %d\n%s", code, out)
	}
}
