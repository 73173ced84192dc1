package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backup"
	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testbin"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// natsHome is the nats CLI's home (no contexts of the machine's user).
var natsHome string

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "zester-backup-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natsHome = filepath.Join(tmp, "home")
	_ = os.MkdirAll(natsHome, 0o700)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// skipNATSCLI is the environment variable that runs these tests without the
// nats CLI compatibility checks. Without it a nats CLI that does not build
// fails the tests: a check that silently skips proves nothing in CI.
const skipNATSCLI = "ZESTER_SKIP_NATSCLI"

// natsCLIBin is the nats CLI of go.mod (built once per version by testbin);
// "" only when skipNATSCLI=1 asks to do without it.
func natsCLIBin(t *testing.T) string {
	t.Helper()
	if os.Getenv(skipNATSCLI) == "1" {
		return ""
	}
	bin, err := testbin.Path(testbin.NATSCLI)
	if err != nil {
		t.Fatalf("nats CLI: %v\n(%s=1 runs without the nats CLI compatibility checks)", err, skipNATSCLI)
	}
	return bin
}

func needNATS(t *testing.T) {
	t.Helper()
	if natsCLIBin(t) == "" {
		t.Skipf("%s=1: nats CLI compatibility check skipped", skipNATSCLI)
	}
}

// natsCLI runs the real nats CLI against url.
func natsCLI(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(natsCLIBin(t), append([]string{"--no-context", "-s", url}, args...)...)
	cmd.Env = []string{"HOME=" + natsHome, "XDG_CONFIG_HOME=" + natsHome, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// zester runs the CLI in-process.
func zester(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(append([]string{"--nats", url}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// withStdin makes os.Stdin read text for the duration of f.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	old := os.Stdin
	os.Stdin = in
	defer func() { os.Stdin = old }()
	f()
}

// store is one NATS server with its store directory.
type store struct {
	owner *testing.T // stops the server at its end
	dir   string
	srv   *topology.Server
	nc    *nats.Conn
	js    jetstream.JetStream
}

func startStore(t *testing.T, dir string) *store { return startStoreFor(t, t, dir) }

func startStoreFor(t, owner *testing.T, dir string) *store {
	t.Helper()
	srv, err := topology.Single(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := &store{owner: owner, dir: dir, srv: srv, nc: nc, js: js}
	owner.Cleanup(s.stop)
	return s
}

func (s *store) url() string { return s.srv.ClientURL() }

func (s *store) stop() {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	s.srv.Shutdown()
}

// wipe shuts the server down, removes its store and starts a fresh one on
// the same directory.
func (s *store) wipe(t *testing.T) *store {
	t.Helper()
	s.stop()
	if err := os.RemoveAll(filepath.Join(s.dir, "nats")); err != nil {
		t.Fatal(err)
	}
	return startStoreFor(t, s.owner, s.dir)
}

// bootstrap runs a master until it is ready (buckets created) and stops it.
func (s *store) bootstrap(t *testing.T, id string) {
	t.Helper()
	h := mastertest.Start(t, mastertest.Config(id, s.url()))
	if err := h.Stop(); err != nil {
		t.Fatalf("master %s: %v", id, err)
	}
}

var seedBuckets = []string{
	names.BucketFacts, names.BucketSettingsFiles, names.BucketSecrets, names.BucketBasket,
	names.BucketJobs, names.BucketJobReturns, names.BucketEnrollments,
}

// seed puts a few keys into every bucket of the backup, one of them with
// history and one deleted, and a few job events.
func (s *store) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, b := range seedBuckets {
		kv, err := s.js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
		keys := []string{"web1.example.com", "db2", "gone"}
		if b == names.BucketJobReturns {
			keys = []string{names.ReturnKey("j1", "web1.example.com"), names.ReturnKey("j1", "db2"), "j2.gone"}
		}
		for i, k := range keys {
			if _, err := kv.Put(ctx, k, fmt.Appendf(nil, `{"bucket":%q,"key":%q,"v":%d}`, b, k, i)); err != nil {
				t.Fatal(err)
			}
		}
		for r := range 3 { // history on the first key
			if _, err := kv.Put(ctx, keys[0], fmt.Appendf(nil, `{"bucket":%q,"rev":%d}`, b, r)); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.Delete(ctx, keys[2]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		subj := names.JobEventSubject(fmt.Sprintf("j%d", i%2+1), []string{"created", "dispatched", "done"}[i%3])
		msg := &nats.Msg{Subject: subj, Data: fmt.Appendf(nil, `{"n":%d}`, i), Header: nats.Header{"Zester-Test": []string{"1"}}}
		if _, err := s.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// kvEntry is one revision of a key.
type kvEntry struct {
	Rev   uint64
	Op    string
	Value string
}

// rawMsg is one stored message.
type rawMsg struct {
	Seq     uint64
	Subject string
	Data    string
	Header  string
	Time    int64
}

// snapshot is everything a test compares: every key's history (revision,
// operation, value) of every bucket, and every raw message of every backed
// up stream with its sequence, subject, headers and time.
type snapshot struct {
	KV   map[string]map[string][]kvEntry
	Msgs map[string][]rawMsg
}

func (s *store) dump(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	d := snapshot{KV: map[string]map[string][]kvEntry{}, Msgs: map[string][]rawMsg{}}
	for _, b := range seedBuckets {
		kv, err := s.js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
		d.KV[b] = map[string][]kvEntry{}
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		// Deleted keys are not listed; their history is in the raw dump.
		for _, k := range keys {
			hist, err := kv.History(ctx, k)
			if err != nil {
				t.Fatalf("%s/%s: %v", b, k, err)
			}
			for _, e := range hist {
				d.KV[b][k] = append(d.KV[b][k], kvEntry{e.Revision(), e.Operation().String(), string(e.Value())})
			}
		}
	}
	for _, name := range backup.DefaultStreams {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		state := st.CachedInfo().State
		for seq := state.FirstSeq; seq <= state.LastSeq && state.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s seq %d: %v", name, seq, err)
			}
			var hk []string
			for k, v := range m.Header {
				hk = append(hk, k+"="+strings.Join(v, ","))
			}
			sort.Strings(hk)
			d.Msgs[name] = append(d.Msgs[name], rawMsg{m.Sequence, m.Subject, string(m.Data), strings.Join(hk, ";"), m.Time.UnixNano()})
		}
	}
	return d
}

func sameSnapshot(t *testing.T, what string, want, got snapshot) {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return
	}
	for b, keys := range want.KV {
		if !reflect.DeepEqual(keys, got.KV[b]) {
			t.Errorf("%s: bucket %s differs:\nwant %+v\ngot  %+v", what, b, keys, got.KV[b])
		}
	}
	for s, msgs := range want.Msgs {
		if !reflect.DeepEqual(msgs, got.Msgs[s]) {
			t.Errorf("%s: stream %s differs:\nwant %+v\ngot  %+v", what, s, msgs, got.Msgs[s])
		}
	}
	if len(want.KV) != len(got.KV) || len(want.Msgs) != len(got.Msgs) {
		t.Errorf("%s: different sets of buckets or streams", what)
	}
}

func (d snapshot) countKeys() int {
	n := 0
	for _, keys := range d.KV {
		n += len(keys)
	}
	return n
}

// TestBackupRestore is the end-to-end path of the seed's procedures, with
// both tools: zester backup and the seed's script on the same data, restored
// by the other tool and by zester after a wiped store was re-bootstrapped by
// a master, compared key by key, revision by revision, message by message.
func TestBackupRestore(t *testing.T) {
	root := t.TempDir()
	s := startStore(t, filepath.Join(root, "server"))
	// Seeded without a live master: a master would act on the jobs written
	// here and the data would change under the test.
	s.bootstrap(t, "m1")
	s.seed(t)
	want := s.dump(t)
	if want.countKeys() < 2*len(seedBuckets) || len(want.Msgs[names.StreamJobEvents]) != 5 {
		t.Fatalf("seed data missing: %d keys, %d events", want.countKeys(), len(want.Msgs[names.StreamJobEvents]))
	}

	zdir := filepath.Join(root, "zester", "20260210-120000")
	code, out, errOut := zester(t, s.url(), "backup", "--dir", zdir)
	if code != 0 {
		t.Fatalf("zester backup: exit %d\n%s%s", code, out, errOut)
	}
	// Piped progress: plain lines, no terminal control sequences.
	if !strings.Contains(errOut, "backup KV_facts: started") || strings.Contains(errOut, "\r") {
		t.Errorf("progress lines on a pipe:\n%q", errOut)
	}
	m, err := backup.ReadManifest(zdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Streams) != len(backup.DefaultStreams) || len(m.Failed) != 0 {
		t.Fatalf("manifest: %d streams, failed %v", len(m.Streams), m.Failed)
	}
	for _, e := range m.Streams {
		if want := len(wantMsgs(want, e.Name)); e.Messages != uint64(want) {
			t.Errorf("manifest %s: %d messages, the stream holds %d", e.Name, e.Messages, want)
		}
		if e.Dir != e.Name || len(e.Files) != 2 || e.Files[0].Name != backup.MetaFile || e.Files[0].SHA256 == "" {
			t.Errorf("manifest %s: dir %q files %+v", e.Name, e.Dir, e.Files)
		}
		if e.Archive != backup.FormatNATSARC1 || e.Files[1].Name != backup.DataFile {
			t.Errorf("manifest %s: archive %s in %s; a 2.15 server sends NATSARC1 and nats stream backup names it %s", e.Name, e.Archive, e.Files[1].Name, backup.DataFile)
		}
	}
	if code, out, errOut := zester(t, s.url(), "backup", "verify", zdir); code != 0 {
		t.Fatalf("zester backup verify: exit %d\n%s%s", code, out, errOut)
	}

	// The seed's script, verbatim, on the same data.
	sdir := filepath.Join(root, "seed")
	if natsCLIBin(t) != "" {
		for _, b := range []struct{ stream, dir string }{
			{"KV_facts", "facts"}, {"KV_settings-files", "settings-files"}, {"KV_secrets", "secrets"},
			{"KV_basket", "basket"}, {"KV_jobs", "jobs"}, {"KV_job-returns", "job-returns"},
			{"KV_enrollments", "enrollments"}, {"job-events", "job-events"},
		} {
			if out, err := natsCLI(t, s.url(), "stream", "backup", b.stream, filepath.Join(sdir, b.dir)); err != nil {
				t.Fatalf("nats stream backup %s: %v\n%s", b.stream, err, out)
			}
		}
		_ = os.WriteFile(filepath.Join(sdir, "master.yaml"), []byte("id: m1\n"), 0o600) // the script copies it too
		if code, out, errOut := zester(t, s.url(), "backup", "verify", sdir); code != 0 {
			t.Fatalf("zester backup verify of the seed script's backup: exit %d\n%s%s", code, out, errOut)
		}
		// nats validates zester's backup as its own.
		if out, err := natsCLI(t, s.url(), "backup", "validate", filepath.Join(zdir, "KV_facts")); err != nil {
			t.Errorf("nats backup validate of a zester backup: %v\n%s", err, out)
		}
	}
	t.Run("nats stream restore of a zester backup", func(t *testing.T) {
		needNATS(t)
		// The procedure of docs/backup-recovery.md with the nats CLI alone:
		// a master re-created the (empty) buckets, so each stream is removed
		// first, then restored from its directory.
		s = s.wipe(t)
		s.bootstrap(t, "m0")
		// natscli 0.5 takes the directory only (the stream's name is in
		// backup.json); the seed's `nats stream restore KV_facts DIR` form is
		// refused, as the docs say.
		if out, err := natsCLI(t, s.url(), "stream", "restore", "KV_facts", filepath.Join(zdir, "KV_facts")); err == nil || !strings.Contains(out, "unexpected argument") {
			t.Errorf("the seed's two-argument nats stream restore: %v\n%s\n(docs/backup-recovery.md says natscli rejects it; update the docs)", err, out)
		}
		for _, name := range backup.DefaultStreams {
			if out, err := natsCLI(t, s.url(), "stream", "rm", "-f", name); err != nil {
				t.Fatalf("nats stream rm %s: %v\n%s", name, err, out)
			}
			if out, err := natsCLI(t, s.url(), "stream", "restore", filepath.Join(zdir, name), "--no-progress"); err != nil {
				t.Fatalf("nats stream restore %s: %v\n%s", name, err, out)
			}
		}
		sameSnapshot(t, "nats stream restore of zester backup", want, s.dump(t))
	})

	t.Run("zester restore after a wipe and bootstrap", func(t *testing.T) {
		s = s.wipe(t)
		m2 := mastertest.Start(t, mastertest.Config("m2", s.url()))
		// A live master: refused, nothing changes.
		code, out, errOut := zester(t, s.url(), "restore", zdir, "--yes")
		if code == 0 || !strings.Contains(errOut, "masters are live: m2") {
			t.Fatalf("restore with a live master: exit %d\n%s%s", code, out, errOut)
		}
		if err := m2.Stop(); err != nil {
			t.Fatal(err)
		}
		empty := s.dump(t)
		if empty.countKeys() != 0 {
			t.Fatalf("bootstrapped store holds keys: %+v", empty.KV)
		}
		// The bootstrapped (empty) streams exist: without --yes it asks, and
		// no answer means no.
		withStdin(t, "", func() {
			code, out, errOut = zester(t, s.url(), "restore", zdir)
		})
		if code == 0 || !strings.Contains(errOut, "will be DELETED") || !strings.Contains(errOut, "pass --yes") {
			t.Fatalf("restore without an answer: exit %d\n%s%s", code, out, errOut)
		}
		withStdin(t, "n\n", func() {
			code, out, errOut = zester(t, s.url(), "restore", zdir)
		})
		if code == 0 || !strings.Contains(errOut, "aborted") {
			t.Fatalf("restore answered no: exit %d\n%s%s", code, out, errOut)
		}
		sameSnapshot(t, "after declined restore", empty, s.dump(t))
		withStdin(t, "y\n", func() {
			code, out, errOut = zester(t, s.url(), "restore", zdir, "--json")
		})
		if code != 0 {
			t.Fatalf("zester restore: exit %d\n%s%s", code, out, errOut)
		}
		var res struct {
			Streams []backup.RestoreResult `json:"streams"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Streams) != len(backup.DefaultStreams) {
			t.Fatalf("restore --json: %v\n%s", err, out)
		}
		for _, r := range res.Streams {
			if !r.OK() || !r.Replaced || r.Restored != r.Expected || r.LastSeq != r.ExpectedLastSeq {
				t.Errorf("restore result %+v", r)
			}
		}
		sameSnapshot(t, "zester restore of zester backup", want, s.dump(t))
		// With --force a restore goes ahead while a master is live. (The
		// master acts on the test's made-up jobs, so only basket is compared.)
		m3 := mastertest.Start(t, mastertest.Config("m3", s.url()))
		code, out, errOut = zester(t, s.url(), "restore", zdir, "--streams", "basket", "--force", "--yes")
		if code != 0 || !strings.Contains(errOut, "WARNING: restoring while masters are live") {
			t.Fatalf("restore --force: exit %d\n%s%s", code, out, errOut)
		}
		if err := m3.Stop(); err != nil {
			t.Fatal(err)
		}
		if got := s.dump(t); !reflect.DeepEqual(got.KV[names.BucketBasket], want.KV[names.BucketBasket]) {
			t.Errorf("basket after restore --force: %+v", got.KV[names.BucketBasket])
		}
	})

	t.Run("zester restore of the seed script's backup", func(t *testing.T) {
		needNATS(t)
		// The streams exist (restored above, with the same data): replaced.
		code, out, errOut := zester(t, s.url(), "restore", sdir, "--yes")
		if code != 0 {
			t.Fatalf("zester restore %s: exit %d\n%s%s", sdir, code, out, errOut)
		}
		sameSnapshot(t, "zester restore of seed backup", want, s.dump(t))
		// And into a wiped, bootstrapped store.
		s = s.wipe(t)
		s.bootstrap(t, "m4")
		if code, out, errOut := zester(t, s.url(), "restore", sdir, "--yes"); code != 0 {
			t.Fatalf("zester restore %s: exit %d\n%s%s", sdir, code, out, errOut)
		}
		sameSnapshot(t, "zester restore of seed backup after wipe", want, s.dump(t))
	})

	t.Run("bad backups are refused and the store is untouched", func(t *testing.T) {
		before := s.dump(t)
		// rewrite changes the bytes of the file at p in place.
		rewrite := func(p string, change func(b []byte)) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			change(b)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Each case damages file (relative to the backup) of its own copy
		// of the backup.
		cases := []struct {
			name, dir, file, want string
			damage                func(path string)
		}{
			{name: "truncated archive", file: filepath.Join("KV_facts", backup.DataFile), want: "truncated", damage: func(p string) {
				st, _ := os.Stat(p)
				if err := os.Truncate(p, st.Size()/2); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "checksum mismatch", file: filepath.Join("KV_jobs", backup.MetaFile), want: "checksum mismatch", damage: func(p string) {
				// Same size, still valid JSON, different bytes.
				rewrite(p, func(b []byte) { b[bytes.Index(b, []byte("\n  "))+1] = '\t' })
			}},
			{name: "corrupt archive", file: filepath.Join("job-events", backup.DataFile), want: "corrupt", damage: func(p string) {
				rewrite(p, func(b []byte) { b[len(b)/2] ^= 0xff })
			}},
			{name: "missing file", file: filepath.Join("KV_secrets", backup.DataFile), want: "missing", damage: func(p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}},
		}
		for i := range cases {
			c := &cases[i]
			c.dir = filepath.Join(root, fmt.Sprintf("bad-%d", i))
			copyDir(t, zdir, c.dir)
			c.damage(filepath.Join(c.dir, c.file))
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				file := filepath.Join(c.dir, c.file)
				code, out, errOut := zester(t, s.url(), "backup", "verify", c.dir)
				if code == 0 || !strings.Contains(errOut, file) || !strings.Contains(errOut, c.want) {
					t.Errorf("verify: exit %d, want an error naming %s and %q:\n%s%s", code, file, c.want, out, errOut)
				}
				code, out, errOut = zester(t, s.url(), "restore", c.dir, "--yes", "--force")
				if code == 0 || !strings.Contains(errOut, file) || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "nothing was restored") {
					t.Errorf("restore: exit %d, want an error naming %s and %q:\n%s%s", code, file, c.want, out, errOut)
				}
				sameSnapshot(t, "store after a refused restore", before, s.dump(t))
			})
		}
		// Another stream of a damaged backup can still be restored on its own.
		d := cases[0].dir // its facts archive is truncated
		if code, out, errOut := zester(t, s.url(), "restore", d, "--streams", "enrollments", "--yes"); code != 0 {
			t.Errorf("restore of a good stream of a damaged backup: exit %d\n%s%s", code, out, errOut)
		}
		sameSnapshot(t, "after restoring one good stream", before, s.dump(t))
	})
}

func wantMsgs(d snapshot, stream string) []rawMsg { return d.Msgs[stream] }

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackup_StreamsAndJSON(t *testing.T) {
	s := startStore(t, t.TempDir())
	s.bootstrap(t, "m1")
	s.seed(t)
	dir := filepath.Join(t.TempDir(), "b")
	code, out, errOut := zester(t, s.url(), "backup", "--dir", dir, "--streams", "facts,job-events", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var m struct {
		Dir string `json:"dir"`
		backup.Manifest
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if m.Dir != dir || len(m.Streams) != 2 || m.Streams[0].Name != "KV_facts" || m.Streams[1].Name != "job-events" || m.ZesterVersion == "" {
		t.Fatalf("summary %+v", m)
	}
	if m.Streams[1].Messages != 5 || m.Streams[1].Subjects != 5 || m.Streams[0].LastSeq != 7 {
		t.Errorf("counts %+v", m.Streams)
	}
	for _, f := range []string{backup.ManifestFile, "KV_facts/" + backup.MetaFile, "KV_facts/" + backup.DataFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode())
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "KV_facts")); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("KV_facts/: mode %v, want 0700", st.Mode())
	}
	// The same directory again is refused.
	if code, _, errOut := zester(t, s.url(), "backup", "--dir", dir, "--streams", "facts"); code == 0 || !strings.Contains(errOut, "already holds a backup") {
		t.Errorf("second backup into the same directory: exit %d %s", code, errOut)
	}
	// A stream that does not exist fails the backup but the others are kept.
	dir2 := filepath.Join(t.TempDir(), "b2")
	code, _, errOut = zester(t, s.url(), "backup", "--dir", dir2, "--streams", "facts,nope")
	if code == 0 || !strings.Contains(errOut, "nope") {
		t.Errorf("backup of a missing stream: exit %d %s", code, errOut)
	}
	if code, _, errOut := zester(t, s.url(), "backup", "verify", dir2); code == 0 || !strings.Contains(errOut, "stream nope was not backed up") {
		t.Errorf("verify of a partial backup: exit %d %s", code, errOut)
	}
	if code, _, errOut := zester(t, s.url(), "backup", "verify", dir2, "--streams", "facts"); code != 0 {
		t.Errorf("verify of the good stream of a partial backup: exit %d %s", code, errOut)
	}
}

func TestPurge(t *testing.T) {
	s := startStore(t, t.TempDir())
	h := mastertest.Start(t, mastertest.Config("m1", s.url()))
	ctx := context.Background()
	url := s.url()
	returns, _ := s.js.KeyValue(ctx, names.BucketJobReturns)
	put := func(keys ...string) {
		for _, k := range keys {
			if _, err := returns.Put(ctx, k, []byte(`{"ok":true}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(stream string) uint64 {
		st, err := s.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Msgs
	}

	t.Run("job-returns older than", func(t *testing.T) {
		put("j1.web1", "j1.web2")
		// Two batches 2 s apart by the store's own clock. --older-than is
		// computed right before each command to cut halfway between them,
		// so however slow the machine is, the first batch is a second past
		// the cut and the second a second short of it.
		time.Sleep(2 * time.Second)
		put("j2.web1", "j2.web2", "j2.web3")
		created := func(k string) time.Time {
			e, err := returns.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			return e.Created()
		}
		mid := created("j1.web2").Add(created("j2.web1").Sub(created("j1.web2")) / 2)
		olderThan := func() string { return fmt.Sprintf("%dms", time.Since(mid).Milliseconds()) }
		var code int
		var out, errOut string
		withStdin(t, "no\n", func() { code, out, errOut = zester(t, url, "purge", "job-returns", "--older-than", olderThan()) })
		if code == 0 || !strings.Contains(errOut, "2 of 5 job returns") || count("KV_job-returns") != 5 {
			t.Fatalf("declined purge: exit %d\n%s%s", code, out, errOut)
		}
		withStdin(t, "y\n", func() { code, out, errOut = zester(t, url, "purge", "job-returns", "--older-than", olderThan()) })
		if code != 0 || !strings.Contains(out, "purged 2 messages from KV_job-returns") {
			t.Fatalf("purge: exit %d\n%s%s", code, out, errOut)
		}
		for _, k := range []string{"j1.web1", "j1.web2"} {
			if _, err := returns.Get(ctx, k); !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Errorf("%s after purge: %v", k, err)
			}
		}
		for _, k := range []string{"j2.web1", "j2.web2", "j2.web3"} {
			if _, err := returns.Get(ctx, k); err != nil {
				t.Errorf("%s after purge: %v", k, err)
			}
		}
		// Nothing that old is left.
		code, out, _ = zester(t, url, "purge", "job-returns", "--older-than", "1h", "--yes")
		if code != 0 || !strings.Contains(out, "nothing to purge") {
			t.Errorf("second purge: exit %d %s", code, out)
		}
	})

	t.Run("job-returns all", func(t *testing.T) {
		if code, _, errOut := zester(t, url, "purge", "job-returns", "--yes"); code == 0 || !strings.Contains(errOut, "--older-than") {
			t.Errorf("without --older-than or --all: exit %d %s", code, errOut)
		}
		code, out, errOut := zester(t, url, "purge", "job-returns", "--all", "--yes")
		if code != 0 || !strings.Contains(errOut, "all 3 job returns") || count("KV_job-returns") != 0 {
			t.Fatalf("purge --all: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("job-events keep", func(t *testing.T) {
		for i := range 10 {
			if _, err := s.js.Publish(ctx, names.JobEventSubject(fmt.Sprintf("j%d", i), "created"), fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		n := count("job-events")
		code, out, errOut := zester(t, url, "purge", "job-events", "--keep", "3", "--yes")
		if code != 0 || !strings.Contains(errOut, fmt.Sprintf("%d of %d job events, keeping the newest 3", n-3, n)) || count("job-events") != 3 {
			t.Fatalf("purge --keep 3: exit %d\n%s%s", code, out, errOut)
		}
		st, _ := s.js.Stream(ctx, "job-events")
		last, err := st.GetLastMsgForSubject(ctx, names.JobEventSubject("j9", "created"))
		if err != nil || string(last.Data) != "9" {
			t.Errorf("newest event after purge: %v", err)
		}
		if natsCLIBin(t) != "" { // the seed's command works on Zester's stream
			if out, err := natsCLI(t, url, "stream", "purge", "job-events", "--keep", "1", "-f"); err != nil || count("job-events") != 1 {
				t.Errorf("nats stream purge job-events --keep 1: %v\n%s", err, out)
			}
		}
	})

	t.Run("facts of a peel", func(t *testing.T) {
		const id = "web1.example.com"
		p := peeltest.Start(t, peeltest.Config(t, id, url))
		facts, _ := s.js.KeyValue(ctx, names.BucketFacts)
		e, err := facts.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := zester(t, url, "purge", "facts", "nope.example.com", "--yes"); code == 0 || !strings.Contains(errOut, "no facts for peel nope.example.com") {
			t.Errorf("unknown peel: exit %d %s", code, errOut)
		}
		w, err := facts.Watch(ctx, id, jetstream.UpdatesOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		code, out, errOut := zester(t, url, "purge", "facts", id, "--yes")
		if code != 0 || !strings.Contains(errOut, "the facts of peel "+id+" (revision ") {
			t.Fatalf("purge facts: exit %d\n%s%s", code, out, errOut)
		}
		// A delete marker, then the running peel republishes at once.
		var ops []jetstream.KeyValueOp
		timeout := time.After(10 * time.Second)
		for len(ops) < 2 || ops[len(ops)-1] != jetstream.KeyValuePut {
			select {
			case e := <-w.Updates():
				if e != nil {
					ops = append(ops, e.Operation())
				}
			case <-timeout:
				t.Fatalf("peel did not republish its facts; saw %v", ops)
			}
		}
		if !slices.Contains(ops, jetstream.KeyValueDelete) {
			t.Errorf("no delete marker: %v", ops)
		}
		if e2, err := facts.Get(ctx, id); err != nil || e2.Revision() <= e.Revision() {
			t.Errorf("facts after republish: %v", err)
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		if natsCLIBin(t) != "" { // the seed's `nats kv del facts <peel-id>`
			if out, err := natsCLI(t, url, "kv", "del", names.BucketFacts, id, "-f"); err != nil {
				t.Errorf("nats kv del: %v\n%s", err, out)
			}
			if _, err := facts.Get(ctx, id); !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Errorf("after nats kv del: %v", err)
			}
		}
	})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}
