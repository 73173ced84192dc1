package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/peel/state"
)

// A state job runs the tree version current when it was created, on every
// peel, however the masters' tree changes during it: a peel away at the
// dispatch that comes back after a tree change runs the job's version;
// one whose version the bucket no longer holds refuses with
// state_tree_gone and changes nothing; a new job runs the new version.
func TestStatePin_JobRunsItsTreeVersion(t *testing.T) {
	_, url := serverAndMaster(t)
	out := t.TempDir()
	motd := filepath.Join(out, "motd")
	states := t.TempDir()
	version := func(v string) {
		writeTree(t, states, map[string]string{
			"top.sls": "base:\n  '*':\n    - web\n",
			"web.sls": "motd:\n  file.managed:\n    - name: " + motd + "\n    - contents: " + v + "\n",
		})
	}
	version("v1")
	mcfg := mastertest.Config("m2", url)
	mcfg.StatesDir = states
	mastertest.Start(t, mcfg)
	nc, js := testkit.ConnectJS(t, url)
	published := func(prev string) string {
		t.Helper()
		var v string
		waitUntil(t, "a new tree version", func() bool { v = manifestOf(nc).Version; return v != "" && v != prev })
		return v
	}
	v1 := published("")

	cfg := peeltest.Config(t, "web1", url)
	cfg.StatesDir = filepath.Join(t.TempDir(), "absent")
	p := peeltest.Start(t, cfg)
	// away: the peel is killed (no goodbye: still online), a job goes out
	// without it, the tree changes; then the peel comes back.
	away := func(change string, prev string) (jid, pinned, now string) {
		t.Helper()
		p.Kill()
		jid = submit(t, nc, wire.RunRequest{Target: wire.Target{Kind: "list", Expr: "web1"}, Function: "state.apply", Timeout: wire.Duration(30 * time.Second)})
		j := waitJobStatus(t, js, jid, func(j wire.Job) bool { return j.Status != wire.StatusPending })
		version(change)
		now = published(prev)
		return jid, j.StateTree, now
	}
	back := func(jid string) wire.Return {
		t.Helper()
		p = peeltest.Start(t, cfg)
		waitJob(t, js, jid, 60*time.Second)
		return storedReturn(t, js, jid, "web1")
	}

	jid, pinned, v2 := away("v2", v1)
	if pinned != v1 {
		t.Fatalf("job pinned to %q, want v1 %s", pinned, v1)
	}
	if r := back(jid); !r.Success {
		t.Fatalf("pinned job: %+v %s", r.Error, r.Result)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v1\n" {
		t.Fatalf("motd = %q after a job created at v1 ran after the change to v2: want v1", b)
	}

	// The job's version gone from the bucket (rebuilt): refused, nothing ran.
	jid, pinned, v3 := away("v3", v2)
	kv, err := js.KeyValue(context.Background(), names.BucketStateTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(context.Background(), names.StateTreeManifestKey(pinned)); err != nil {
		t.Fatal(err)
	}
	r := back(jid)
	if r.Success || r.Error == nil || r.Error.Code != state.CodeTreeGone {
		t.Fatalf("job pinned to a purged version: %+v", r.Error)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v1\n" {
		t.Fatalf("motd = %q: the refused job changed it", b)
	}

	// A new job runs the current version.
	r = stateApply(t, url, "web1", json.RawMessage(`[]`))
	if !r.Success {
		t.Fatalf("new job: %+v", r.Error)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v3\n" {
		t.Fatalf("motd = %q, want v3 (%s)", b, v3)
	}
}

// storedReturn reads a peel's stored return of a job.
func storedReturn(t *testing.T, js jetstream.JetStream, jid, peel string) wire.Return {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), names.ReturnKey(jid, peel))
	if err != nil {
		t.Fatalf("return of %s: %v", peel, err)
	}
	var r wire.Return
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}
