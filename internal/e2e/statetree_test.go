package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
)

// writeTree writes files (slash path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	statetreetest.Write(t, dir, files)
}

// manifestOf reads the bucket's current manifest (empty while there is
// none), as a peel does: the version key, then that version's manifest.
func manifestOf(nc *nats.Conn) statetree.Manifest {
	var m statetree.Manifest
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeVersionKey)
	if err != nil {
		return m
	}
	if b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeManifestKey(string(v))); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// testInbox is the reply prefix of the test's own connection, whose reads
// getCounter leaves out.
const testInbox = "_INBOX.statetree-test"

// getCounter records the direct gets of the state-tree bucket by key
// (but the test's own): a core subscriber sees each request as the
// server does.
type getCounter struct {
	mu   sync.Mutex
	keys []string
}

func countGets(t *testing.T, nc *nats.Conn) *getCounter {
	t.Helper()
	c := &getCounter{}
	prefix := names.JSDirectGetKey(names.BucketStateTree, "")
	sub, err := nc.Subscribe(prefix+">", func(m *nats.Msg) {
		if strings.HasPrefix(m.Reply, testInbox) {
			return // the test's own reads
		}
		c.mu.Lock()
		c.keys = append(c.keys, strings.TrimPrefix(m.Subject, prefix))
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

func (c *getCounter) reset() { c.mu.Lock(); c.keys = nil; c.mu.Unlock() }
func (c *getCounter) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.keys...)
}

// A peel without a local tree runs state.apply from the master's
// states_dir; a changed file reaches its next run, and that run gets the
// manifest and that file's content only; a corrupt or missing content
// fails the run, naming the path, and no state runs.
func TestStateTree_PeelAppliesMastersTree(t *testing.T) {
	// m1 without a states_dir, m2 with one: the tree is m2's.
	_, _, url := basketSetup(t)
	out := t.TempDir()
	motd, banner := filepath.Join(out, "motd"), filepath.Join(out, "banner")
	states := t.TempDir()
	writeTree(t, states, map[string]string{
		"top.sls":           "base:\n  '*':\n    - web\n    - common.banner\n",
		"web.sls":           fmt.Sprintf("motd:\n  file.managed:\n    - name: %s\n    - contents: v1\n", motd),
		"common/banner.sls": fmt.Sprintf("banner:\n  file.managed:\n    - name: %s\n    - contents: hello\n", banner),
		".git/HEAD":         "ref: refs/heads/main\n",
	})
	mcfg := mastertest.Config("m2", url)
	mcfg.StatesDir = states
	mastertest.Start(t, mcfg)

	nc, err := nats.Connect(url, nats.CustomInboxPrefix(testInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitUntil(t, "the first manifest", func() bool { return len(manifestOf(nc).Files) == 3 })
	if _, ok := manifestOf(nc).Files[".git/HEAD"]; ok {
		t.Fatal("the manifest carries .git")
	}
	gets := countGets(t, nc)

	pcfg := peeltest.Config(t, "web1", url)
	pcfg.StatesDir = filepath.Join(t.TempDir(), "absent")
	peeltest.Start(t, pcfg).WaitReady(t, 60*time.Second)

	apply := func() (int, string) {
		code, o, e := zesterCLI(url, "run", "--timeout", "60s", "web1", "state.apply")
		return code, o + e
	}
	if code, o := apply(); code != 0 || !strings.Contains(o, "Succeeded: 2 (changed=2)") {
		t.Fatalf("first apply: exit %d\n%s", code, o)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v1\n" {
		t.Fatalf("motd is %q, want v1", b)
	}
	if got := gets.get(); len(got) != 5 { // the version, the manifest and three contents
		t.Fatalf("first run: gets %v, want the version, the manifest and 3 contents", got)
	}
	m1 := manifestOf(nc)
	if b, _ := os.ReadFile(filepath.Join(pcfg.DataDir, "state-tree", "version")); strings.TrimSpace(string(b)) != m1.Version {
		t.Fatalf("recorded version %q, want %s", b, m1.Version)
	}
	tree := filepath.Join(pcfg.DataDir, "state-tree", "trees", m1.Version)
	for p, want := range map[string]os.FileMode{tree: 0o555, filepath.Join(tree, "common"): 0o555, filepath.Join(tree, "web.sls"): 0o444} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Fatalf("materialised %s: %v, want mode %o (read-only)", p, err, want)
		}
	}

	// One file changes on the master.
	writeTree(t, states, map[string]string{"web.sls": fmt.Sprintf("motd:\n  file.managed:\n    - name: %s\n    - contents: v2\n", motd)})
	waitUntil(t, "the changed manifest", func() bool { return manifestOf(nc).Version != m1.Version })
	m2 := manifestOf(nc)
	gets.reset()
	if code, o := apply(); code != 0 || !strings.Contains(o, "Succeeded: 2 (changed=1)") {
		t.Fatalf("second apply: exit %d\n%s", code, o)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v2\n" {
		t.Fatalf("motd is %q after the change, want v2", b)
	}
	want := []string{names.StateTreeVersionKey, names.StateTreeManifestKey(m2.Version), names.StateTreeFileKey(m2.Files["web.sls"].Digest)}
	if got := gets.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second run gets %v, want %v (the manifest and the changed file only)", got, want)
	}

	// A content the bucket holds wrong, then not at all: the run fails
	// naming the file, and no state runs (motd keeps v2).
	js, _ := jetstream.New(nc)
	writeTree(t, states, map[string]string{"web.sls": fmt.Sprintf("motd:\n  file.managed:\n    - name: %s\n    - contents: v3\n", motd)})
	waitUntil(t, "the third manifest", func() bool { return manifestOf(nc).Version != m2.Version })
	key := names.StateTreeFileKey(manifestOf(nc).Files["web.sls"].Digest)
	if _, err := peelproto.PutKV(context.Background(), js, names.BucketStateTree, key, []byte("tampered")); err != nil {
		t.Fatal(err)
	}
	if code, o := apply(); code == 0 || !strings.Contains(o, "web.sls") || !strings.Contains(o, "corrupt") {
		t.Fatalf("corrupt content: exit %d\n%s", code, o)
	}
	kv, err := js.KeyValue(context.Background(), names.BucketStateTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if code, o := apply(); code == 0 || !strings.Contains(o, "web.sls") || !strings.Contains(o, "missing") {
		t.Fatalf("missing content: exit %d\n%s", code, o)
	}
	if b, _ := os.ReadFile(motd); string(b) != "v2\n" {
		t.Fatalf("motd is %q after failed fetches, want v2 (nothing ran)", b)
	}
}

// A peel's credentials read the state tree (its pack too) but cannot
// write it.
func TestStateTree_PeelReadsNotWrites(t *testing.T) {
	s := mastertest.StartSecure(t)
	states := t.TempDir()
	writeTree(t, states, map[string]string{"top.sls": "base:\n  '*': [web]\n", "web.sls": "a:\n  test.nop: []\n"})
	mcfg := s.Config("m1")
	mcfg.StatesDir = states
	mastertest.Start(t, mcfg)

	creds := s.PeelCreds(t, "web1")
	denied := make(chan string, 16)
	nc, err := nats.Connect(s.URL, nats.UserCredentials(creds), nats.CustomInboxPrefix(pki.CredsInboxPrefix(creds)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case denied <- err.Error():
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitUntil(t, "the manifest, read with a peel's credentials", func() bool { return len(manifestOf(nc).Files) == 2 })
	m := manifestOf(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeFileKey(m.Files["web.sls"].Digest)); err != nil || !strings.Contains(string(b), "test.nop") {
		t.Fatalf("peel reads web.sls: %q, %v", b, err)
	}
	if b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreePackKey(m.Version)); err != nil || m.Pack == nil || int64(len(b)) != m.Pack.Size {
		t.Fatalf("peel reads the pack: %d B, %v (manifest: %+v)", len(b), err, m.Pack)
	}
	js, _ := jetstream.New(nc)
	for _, key := range []string{names.StateTreeVersionKey, names.StateTreeManifestKey(m.Version), names.StateTreeFileKey(m.Files["web.sls"].Digest), names.StateTreePackKey(m.Version)} {
		// The server drops a denied publish: no ack comes, so the put
		// ends with its context (a short one, a refusal is the outcome).
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := peelproto.PutKV(pctx, js, names.BucketStateTree, key, []byte("evil"))
		pcancel()
		if err == nil {
			t.Errorf("a peel wrote state-tree %s", key)
		}
		select {
		case msg := <-denied:
			if !strings.Contains(msg, names.KVSubjectPrefix(names.BucketStateTree)+key) {
				t.Errorf("permission violation %q, want one for %s", msg, key)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the server reported no permission violation for state-tree %s", key)
		}
	}
	if got := manifestOf(nc); got.Version != m.Version {
		t.Fatalf("the manifest changed under a peel's write: %s → %s", m.Version, got.Version)
	}
}

// The bytes a peel moves for the tree of a 50-state highstate (50 sls of
// one file.managed each, ~2 KB apiece, and top.sls): the first run, a run
// after one file changed, and a run with no change. It prints the figures
// of docs/states.md and checks their shape: a run after a change moves
// the version, the manifest and the changed file, an unchanged run the
// version only, and the first run the version, the manifest and the pack.
func TestStateTree_Bytes50States(t *testing.T) {
	_, _, url := basketSetup(t) // a server and a master, which creates the bucket
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	states := t.TempDir()
	files := statetreetest.Highstate(50, "/etc")
	writeTree(t, states, files)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := &statetree.Publisher{NC: nc, JS: js, Dir: states}
	waitUntil(t, "the bucket", func() bool { _, err := js.KeyValue(ctx, names.BucketStateTree); return err == nil })
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	_, first, err := statetree.Fetch(ctx, nc, cache)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, states, map[string]string{"svc07.sls": strings.Replace(files["svc07.sls"], "v1", "v2", 1)})
	st, err := pub.Publish(ctx)
	if err != nil || st.Written != 1 || !st.Manifest {
		t.Fatalf("republish after one change: %+v, %v (want one content and the manifest written)", st, err)
	}
	_, next, err := statetree.Fetch(ctx, nc, cache)
	if err != nil {
		t.Fatal(err)
	}
	_, same, err := statetree.Fetch(ctx, nc, cache)
	if err != nil {
		t.Fatal(err)
	}
	if first.Gets != 3 || !first.Pack || next.Gets != 3 || next.Pack || same.Gets != 1 {
		t.Fatalf("gets: first %d (want 3: version, manifest, pack), after one change %d (want 3: no pack), unchanged %d (want 1)", first.Gets, next.Gets, same.Gets)
	}
	const fleet = 100_000
	t.Logf("50-state tree, %d files: first run %d gets %d B; after one change %d gets %d B; unchanged %d gets %d B", first.Files, first.Gets, first.Bytes, next.Gets, next.Bytes, same.Gets, same.Bytes)
	t.Logf("computed for %d peels: first %.1f MB, after one change %.1f MB, unchanged %.1f MB", fleet, float64(first.Bytes)*fleet/1e6, float64(next.Bytes)*fleet/1e6, float64(same.Bytes)*fleet/1e6)
}
