package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// settingsHang bounds every wait of these tests (a hang guard: they wait on
// state).
const settingsHang = 60 * time.Second

// The plaintext of the test secret: it must never be found in the store,
// a cache file or a masked return.
const settingsSecret = "pw-PLAINTEXT-4711"

// settingsFixture is a settings tree on disk with a masters' curve key in
// a pki_dir, and simulated peels (their facts written to the facts bucket
// with a curve key each, as a peel does).
type settingsFixture struct {
	dir, pkiDir string
	token       string
	js          jetstream.JetStream
	kvFacts     jetstream.KeyValue
	curves      map[string]nkeys.KeyPair
}

// settingsFiles is the tree: targets by id, fact and glob; a merge with
// !append; a setting lookup; a secret; a fact in a template.
func settingsFiles(token string) map[string]string {
	return map[string]string{
		"top.zy":      "'*': [common]\n'web*': [web]\n'G@role:db': [db]\n",
		"common.zy":   "domain: example.com\npkgs: [vim]\n",
		"web/init.zy": fmt.Sprintf("role: web\nsite: \"{{ .id }}.{{ setting \"domain\" }}\"\npkgs: !append [nginx]\ndb:\n  password: {{ secret %q }}\n", token),
		"db.zy":       "role: db\nsize: {{ .facts.size }}\n",
	}
}

func newSettingsFixture(t *testing.T, js jetstream.JetStream, pkiDir string) *settingsFixture {
	t.Helper()
	f := &settingsFixture{dir: t.TempDir(), pkiDir: pkiDir, js: js, curves: map[string]nkeys.KeyPair{}}
	if f.pkiDir == "" {
		f.pkiDir = t.TempDir()
		if _, err := pki.CreateCurveSeed(filepath.Join(f.pkiDir, pki.FileMasterCurve)); err != nil {
			t.Fatal(err)
		}
	}
	kp, err := pki.LoadMasterCurve(f.pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if f.token, err = settings.Seal(pub, []byte(settingsSecret)); err != nil {
		t.Fatal(err)
	}
	for p, s := range settingsFiles(f.token) {
		f.write(t, p, s)
	}
	return f
}

func (f *settingsFixture) write(t *testing.T, p, s string) {
	t.Helper()
	p = filepath.Join(f.dir, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// simPeel writes the facts of a simulated peel, with a curve key.
func (f *settingsFixture) simPeel(t *testing.T, id string, facts map[string]any) {
	t.Helper()
	kp, ok := f.curves[id]
	if !ok {
		kp, _ = nkeys.CreateCurveKeys()
		f.curves[id] = kp
	}
	pub, _ := kp.PublicKey()
	doc := map[string]any{"id": id, "curve": pub}
	for k, v := range facts {
		doc[k] = v
	}
	b, _ := json.Marshal(doc)
	if f.kvFacts == nil {
		var err error
		if f.kvFacts, err = f.js.KeyValue(context.Background(), names.BucketFacts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.kvFacts.Put(context.Background(), names.FactsKey(id), factcodec.Encode(b)); err != nil {
		t.Fatal(err)
	}
}

// simFleet writes n web peels (web0…) and n db peels (db0…, size i).
func (f *settingsFixture) simFleet(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		f.simPeel(t, fmt.Sprintf("web%d", i), map[string]any{"role": "web"})
		f.simPeel(t, fmt.Sprintf("db%d", i), map[string]any{"role": "db", "size": i})
	}
}

// entry reads a peel's entry of bucket (nil when there is none).
func (f *settingsFixture) entry(t *testing.T, bucket, id string) jetstream.KeyValueEntry {
	t.Helper()
	kv, err := f.js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// rendered is what the peel id would render from its two entries, with
// facts: the peel's half, done here with the simulated peel's key. Between
// the two writes of one change the entries may not fit (a new template's
// secret not sealed yet): that is nil, as before the first render.
func (f *settingsFixture) rendered(t *testing.T, id string, facts map[string]any) (*settings.Result, *settings.Bundle) {
	t.Helper()
	be := f.entry(t, names.BucketSettingsFiles, id)
	if be == nil {
		return nil, nil
	}
	var b settings.Bundle
	if err := json.Unmarshal(be.Value(), &b); err != nil {
		t.Fatal(err)
	}
	var vals *settings.Values
	if se := f.entry(t, names.BucketSecrets, id); se != nil {
		var err error
		if vals, err = settings.OpenValues(f.curves[id], id, se.Value()); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := settings.LoadBundle(&b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Compile(id, facts, settings.Options{Secret: settings.RefOpener(vals)})
	if err != nil {
		t.Logf("%s does not render (yet): %v", id, err)
		return nil, &b
	}
	return res, &b
}

// lastSeq is the last sequence of a bucket's stream: how many writes it
// has seen.
func lastSeq(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	return testkit.StreamInfo(t, js, names.KVStream(bucket)).State.LastSeq
}

func startSettingsMaster(t *testing.T, url string, f *settingsFixture) *mastertest.Handle {
	t.Helper()
	cfg := mastertest.Config("m1", url)
	cfg.SettingsDir, cfg.PKIDir = f.dir, f.pkiDir
	return mastertest.Start(t, cfg)
}

// startSettings is a single server, a settings fixture and its master.
func startSettings(t *testing.T) (*topology.Server, jetstream.JetStream, *settingsFixture) {
	t.Helper()
	srv := testkit.Server(t)
	js := testkit.JetStream(t, srv.ClientURL())
	f := newSettingsFixture(t, js, "")
	startSettingsMaster(t, srv.ClientURL(), f)
	return srv, js, f
}

func settingOf(res *settings.Result, key string) any {
	if res == nil {
		return nil
	}
	v, _ := res.Get(key)
	if s, ok := v.(interface{ Reveal() string }); ok {
		return s.Reveal()
	}
	return v
}

// Through the master: each peel gets the files its targets select, merged
// in order, with its facts and its own sealed secret; a real peel renders
// the same locally and serves settings.get (masked); I@ selects peels by
// what the master rendered.
func TestSettings_MasterRendersPerPeel(t *testing.T) {
	srv, _, f := startSettings(t)
	url := srv.ClientURL()
	f.simPeel(t, "web1", map[string]any{"role": "web"})
	f.simPeel(t, "db1", map[string]any{"role": "db", "size": 3})
	f.simPeel(t, "db2", map[string]any{"role": "db", "size": 5})
	real := peeltest.Start(t, peeltest.Config(t, "web3", url))

	var web1 *settings.Result
	testkit.Eventually(t, "web1 rendered", settingsHang, func() bool {
		web1, _ = f.rendered(t, "web1", map[string]any{"role": "web"})
		return web1 != nil
	})
	if got := strings.Join(web1.Files, ","); got != "common,web" {
		t.Errorf("web1 files %s, want common,web", got)
	}
	if settingOf(web1, "site") != "web1.example.com" || settingOf(web1, "db:password") != settingsSecret {
		t.Errorf("web1 settings %v", web1.Masked())
	}
	if p, _ := json.Marshal(settingOf(web1, "pkgs")); string(p) != `["vim","nginx"]` {
		t.Errorf("web1 pkgs %s: want the !append merge", p)
	}
	testkit.Eventually(t, "db2 rendered", settingsHang, func() bool {
		r, _ := f.rendered(t, "db2", map[string]any{"role": "db", "size": 5})
		return r != nil && fmt.Sprint(settingOf(r, "size")) == "5"
	})
	db1, _ := f.rendered(t, "db1", map[string]any{"role": "db", "size": 3})
	if strings.Join(db1.Files, ",") != "common,db" || settingOf(db1, "role") != "db" {
		t.Errorf("db1: %v %v", db1.Files, db1.Masked())
	}
	// A db peel has no secret: its entry (if any) holds no value, and web1's
	// sealed entry does not open with db1's key.
	if se := f.entry(t, names.BucketSecrets, "web1"); se == nil {
		t.Fatal("web1 has no secrets entry")
	} else if _, err := settings.OpenValues(f.curves["db1"], "web1", se.Value()); !errors.Is(err, settings.ErrWrongKey) {
		t.Errorf("web1's values opened with db1's key: %v", err)
	}

	// The real peel renders locally and serves settings.get, masked.
	testkit.Eventually(t, "web3 renders", settingsHang, func() bool { return real.Settings()["site"] == "web3.example.com" })
	if real.Settings()["db"].(map[string]any)["password"] != "<secret>" {
		t.Errorf("web3 Settings() not masked: %v", real.Settings())
	}
	code, out, errOut := clitest.Zester(t, url, "run", "--json", "web3", "settings.get", "key=db:password")
	if code != 0 || !strings.Contains(out, `\u003csecret\u003e`) && !strings.Contains(out, "<secret>") || strings.Contains(out, settingsSecret) {
		t.Fatalf("settings.get: %d %s %s", code, out, errOut)
	}
	code, out, _ = clitest.Zester(t, url, "run", "--json", "web3", "settings.get", "key=db:password", "reveal=true")
	if code != 1 || !strings.Contains(out, "forbidden") || strings.Contains(out, settingsSecret) {
		t.Fatalf("reveal in insecure mode: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "run", "--json", "web3", "settings.items")
	if code != 0 || !strings.Contains(out, "web3.example.com") || strings.Contains(out, settingsSecret) {
		t.Fatalf("settings.items: %d %s", code, out)
	}
	// I@ on the master's renders: web3 answers; web1 is expected (it has
	// no process) and the db peels are not targeted.
	code, out, _ = clitest.Zester(t, url, "run", "--json", "-I", "role:web", "test.ping")
	if !strings.Contains(out, `"web3"`) || !strings.Contains(out, "web1") || strings.Contains(out, "db1") {
		t.Fatalf("run -I role:web: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "run", "--json", "-C", "I@size:3 or web3", "test.ping")
	if !strings.Contains(out, "db1") || strings.Contains(out, "db2") || !strings.Contains(out, `"web3"`) {
		t.Fatalf("run -C 'I@size:3 or web3': %d %s", code, out)
	}
	// A basket map in the settings: the peel publishes it.
	f.write(t, "common.zy", settingsFiles(f.token)["common.zy"]+"basket:\n  alive: test.ping\n")
	testkit.Eventually(t, "web3 publishes its settings' basket entry", settingsHang, func() bool {
		kv, err := f.js.KeyValue(context.Background(), names.BucketBasket)
		if err != nil {
			return false
		}
		_, err = kv.Get(context.Background(), names.BasketKey("web3", "alive"))
		return err == nil
	})
}

// A peel's fact change re-renders that peel, and only it, at once; a
// settings-file change re-renders exactly the peels that use the file;
// a refresh after that writes nothing.
func TestSettings_ChangesRenderExactlyTheAffectedPeels(t *testing.T) {
	srv, js, f := startSettings(t)
	url := srv.ClientURL()
	const n = 10
	f.simFleet(t, n)
	hashOf := func(id string) string {
		e := f.entry(t, names.BucketSettingsFiles, id)
		if e == nil {
			return ""
		}
		var b settings.Bundle
		json.Unmarshal(e.Value(), &b)
		return b.Settings
	}
	testkit.Eventually(t, "every peel rendered", settingsHang, func() bool {
		for i := range n {
			if hashOf(fmt.Sprintf("web%d", i)) == "" || hashOf(fmt.Sprintf("db%d", i)) == "" || f.entry(t, names.BucketSecrets, fmt.Sprintf("web%d", i)) == nil {
				return false
			}
		}
		return true
	})
	files0, secrets0 := lastSeq(t, js, names.BucketSettingsFiles), lastSeq(t, js, names.BucketSecrets)

	// One peel's facts change.
	before := hashOf("db3")
	start := time.Now()
	f.simPeel(t, "db3", map[string]any{"role": "db", "size": 33})
	took := testkit.Eventually(t, "db3 re-rendered", settingsHang, func() bool { return hashOf("db3") != before })
	t.Logf("SETTINGS: a fact change re-rendered its peel in %s", time.Since(start).Round(time.Millisecond))
	if took > time.Second {
		t.Logf("SETTINGS: slower than a second on this loaded machine: %s", took)
	}
	if r, _ := f.rendered(t, "db3", map[string]any{"size": 33}); fmt.Sprint(settingOf(r, "size")) != "33" {
		t.Fatalf("db3 size %v", settingOf(r, "size"))
	}
	if d := lastSeq(t, js, names.BucketSettingsFiles) - files0; d != 1 {
		t.Fatalf("a fact change of one peel wrote %d settings-files entries, want 1", d)
	}
	if d := lastSeq(t, js, names.BucketSecrets) - secrets0; d != 0 {
		t.Fatalf("a fact change of a peel without secrets wrote %d secrets entries", d)
	}

	// A file that only the db peels use.
	files1, secrets1 := lastSeq(t, js, names.BucketSettingsFiles), lastSeq(t, js, names.BucketSecrets)
	old := map[string]string{}
	for i := range n {
		old[fmt.Sprintf("db%d", i)] = hashOf(fmt.Sprintf("db%d", i))
		old[fmt.Sprintf("web%d", i)] = hashOf(fmt.Sprintf("web%d", i))
	}
	f.write(t, "db.zy", "role: db\nsize: {{ .facts.size }}\nengine: postgres\n")
	testkit.Eventually(t, "the db peels re-rendered", settingsHang, func() bool {
		for i := range n {
			if hashOf(fmt.Sprintf("db%d", i)) == old[fmt.Sprintf("db%d", i)] {
				return false
			}
		}
		return true
	})
	if d := lastSeq(t, js, names.BucketSettingsFiles) - files1; d != n {
		t.Fatalf("a change of db.zy wrote %d settings-files entries, want %d (the db peels)", d, n)
	}
	for i := range n {
		if id := fmt.Sprintf("web%d", i); hashOf(id) != old[id] {
			t.Fatalf("%s changed with db.zy", id)
		}
	}
	// A refresh renders every peel again and writes nothing: all current.
	code, out, _ := clitest.Zester(t, url, "settings", "refresh")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d peels, %d rendered, 0 written, 0 failed", 2*n, 2*n)) {
		t.Fatalf("refresh: %d %s", code, out)
	}
	// A new secret: the web peels' secrets entries are sealed again (and
	// their templates hold the new token's reference).
	kp, _ := pki.LoadMasterCurve(f.pkiDir)
	pub, _ := kp.PublicKey()
	tok, _ := settings.Seal(pub, []byte("pw-2"))
	secrets2 := lastSeq(t, js, names.BucketSecrets)
	f.write(t, "web/init.zy", settingsFiles(tok)["web/init.zy"])
	testkit.Eventually(t, "web secrets re-sealed", settingsHang, func() bool {
		r, _ := f.rendered(t, "web0", nil)
		return settingOf(r, "db:password") == "pw-2"
	})
	testkit.Eventually(t, "every web peel re-sealed", settingsHang, func() bool { return lastSeq(t, js, names.BucketSecrets)-secrets2 == n })
	if d := lastSeq(t, js, names.BucketSecrets) - secrets1; d != n {
		t.Fatalf("secrets writes %d, want %d", d, n)
	}
}

// A template that does not parse names file, line and column in an event
// and in refresh, and every peel keeps its last good render; a render that
// fails for one peel (a missing fact) fails that peel alone.
func TestSettings_BrokenTemplateKeepsLastGoodRender(t *testing.T) {
	srv, js, f := startSettings(t)
	url := srv.ClientURL()
	f.simPeel(t, "web1", map[string]any{})
	f.simPeel(t, "db1", map[string]any{"role": "db", "size": 1})
	testkit.Eventually(t, "rendered", settingsHang, func() bool {
		return f.entry(t, names.BucketSettingsFiles, "web1") != nil && f.entry(t, names.BucketSettingsFiles, "db1") != nil
	})
	events, err := js.OrderedConsumer(context.Background(), names.StreamJobEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.SettingsEventSubject(">")}})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent := func(want string) wire.Event {
		t.Helper()
		deadline := time.Now().Add(settingsHang)
		for time.Now().Before(deadline) {
			m, err := events.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			var ev wire.Event
			json.Unmarshal(m.Data(), &ev)
			if strings.Contains(ev.Detail, want) {
				return ev
			}
		}
		t.Fatalf("no settings event with %q", want)
		return wire.Event{}
	}
	seq := lastSeq(t, js, names.BucketSettingsFiles)
	f.write(t, "common.zy", "domain: example.com\npkgs: [vim]\nbad: {{ .id | nosuch }}\n")
	ev := nextEvent("common.zy:3:15")
	if ev.Kind != "settings.error" || !strings.Contains(ev.Detail, "last good render kept for every peel") {
		t.Fatalf("event %+v", ev)
	}
	code, out, _ := clitest.Zester(t, url, "settings", "refresh")
	if code != 1 || !strings.Contains(out, "common.zy:3:15: function \"nosuch\" not defined") || !strings.Contains(out, "tree does not load") {
		t.Fatalf("refresh with a broken tree: %d %s", code, out)
	}
	if d := lastSeq(t, js, names.BucketSettingsFiles) - seq; d != 0 {
		t.Fatalf("a broken tree wrote %d entries", d)
	}
	// Fixed, but a db peel without the fact db.zy needs: it fails alone.
	f.write(t, "common.zy", "domain: example.org\npkgs: [vim]\n")
	f.simPeel(t, "db2", map[string]any{"role": "db"})
	ev = nextEvent("db.zy:2:")
	if ev.Peel != "db2" || !strings.Contains(ev.Detail, "size") {
		t.Fatalf("event %+v", ev)
	}
	testkit.Eventually(t, "web1 on the fixed tree", settingsHang, func() bool {
		r, _ := f.rendered(t, "web1", nil)
		return settingOf(r, "site") == "web1.example.org"
	})
	if f.entry(t, names.BucketSettingsFiles, "db2") != nil {
		t.Fatal("db2's failed render was published")
	}
}

// With the trust layer's permissions on a real server: a peel reads its
// own two entries and not another's, and could not open another's anyway;
// an admin's job may reveal a secret, an operator's may not; and after the
// whole run no plaintext secret is anywhere in the JetStream store.
func TestSettings_Secure_PeelsReadOnlyTheirOwn(t *testing.T) {
	s := mastertest.StartSecure(t)
	admin := pkitest.Connect(t, s.URL, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds()))
	f := newSettingsFixture(t, admin.JS, s.Dir)
	cfg := s.Config("m1")
	cfg.SettingsDir = f.dir
	mastertest.Start(t, cfg)
	const idA, idB = "web1.example.com", "web2.example.com"
	cA, cB := peeltest.SecureConfig(t, s.Secure, idA), peeltest.SecureConfig(t, s.Secure, idB)
	pA, pB := peeltest.Start(t, cA), peeltest.Start(t, cB)
	for _, p := range []*peeltest.Handle{pA, pB} {
		testkit.Eventually(t, p.ID()+" renders", settingsHang, func() bool { return p.Settings()["site"] == p.ID()+".example.com" })
	}
	// Peel A, with its own credentials.
	a := pkitest.Connect(t, s.URL, names.PeelInboxPrefix(idA), nats.UserCredentials(cA.NATS.Creds))
	ctx := pkitest.Ctx(t)
	if _, _, err := peelproto.GetKV(ctx, a.Conn, names.BucketSettingsFiles, names.SettingsFilesKey(idA)); err != nil {
		t.Fatalf("A reads its settings-files entry: %v", err)
	}
	if _, _, err := peelproto.GetKV(ctx, a.Conn, names.BucketSecrets, names.SecretsKey(idA)); err != nil {
		t.Fatalf("A reads its secrets entry: %v", err)
	}
	a.ExpectDenied(t, names.JSDirectGetKey(names.BucketSecrets, names.SecretsKey(idB)), func(ctx context.Context) {
		peelproto.GetKV(ctx, a.Conn, names.BucketSecrets, names.SecretsKey(idB))
	})
	a.ExpectDenied(t, names.JSDirectGetKey(names.BucketSettingsFiles, names.SettingsFilesKey(idB)), func(ctx context.Context) {
		peelproto.GetKV(ctx, a.Conn, names.BucketSettingsFiles, names.SettingsFilesKey(idB))
	})
	a.ExpectDenied(t, names.JSDirectGetKey(names.BucketSettingsFiles, "*"), func(ctx context.Context) {
		peelproto.GetKV(ctx, a.Conn, names.BucketSettingsFiles, "*")
	})
	// The crypto: B's entry, read by an admin, does not open with A's key.
	bEntry := f.entry(t, names.BucketSecrets, idB)
	seedA, err := os.ReadFile(filepath.Join(cA.DataDir, "peel.xk"))
	if err != nil {
		t.Fatal(err)
	}
	kpA, err := nkeys.FromCurveSeed(bytes.TrimSpace(seedA))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settings.OpenValues(kpA, idB, bEntry.Value()); !errors.Is(err, settings.ErrWrongKey) {
		t.Fatalf("B's values open with A's key: %v", err)
	}
	// Reveal: an admin's job may, an operator's may not.
	op := s.UserCreds(t, pki.UserSpec{Name: "ops", Role: pki.RoleOperator, Expiry: time.Hour})
	code, out, _ := clitest.Zester(t, s.URL, "--creds", op, "run", "--json", idA, "settings.get", "key=db:password", "reveal=true")
	if code != 1 || !strings.Contains(out, "forbidden") || strings.Contains(out, settingsSecret) {
		t.Fatalf("operator reveal: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, s.URL, "--creds", op, "run", "--json", idA, "settings.get", "key=db:password")
	if code != 0 || strings.Contains(out, settingsSecret) {
		t.Fatalf("operator get: %d %s", code, out)
	}
	// The store after the run: no plaintext in any file, and the scan sees
	// the stored data (a setting's text is there). (Before the admin's
	// reveal below, whose return holds the plaintext by request.)
	found, sawData := scanStore(t, s.Server.Options().StoreDir, settingsSecret, f.token, "example.com")
	if len(found) > 0 {
		t.Fatalf("plaintext or a master token in the store: %v", found)
	}
	if !sawData {
		t.Fatal("the scan did not see the stored settings (example.com): it proves nothing")
	}
	// Nor in the peels' caches, which are 0600.
	for _, c := range []string{cA.DataDir, cB.DataDir} {
		b, err := os.ReadFile(filepath.Join(c, "settings.json"))
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(filepath.Join(c, "settings.json")); st.Mode().Perm() != 0o600 {
			t.Errorf("cache mode %v", st.Mode())
		}
		if bytes.Contains(b, []byte(settingsSecret)) || !bytes.Contains(b, []byte("example.com")) {
			t.Errorf("cache %s holds the plaintext, or not the settings", c)
		}
	}
	code, out, _ = clitest.Zester(t, s.URL, "--creds", s.AdminCreds(), "run", "--json", idA, "settings.get", "key=db:password", "reveal=true")
	if code != 0 || !strings.Contains(out, settingsSecret) {
		t.Fatalf("admin reveal: %d %s", code, out)
	}
}

// scanStore reads every file under dir and reports which of the secrets
// appear in one, and whether marker does (the scan sees data).
func scanStore(t *testing.T, dir string, secrets ...string) (found []string, sawMarker bool) {
	t.Helper()
	marker := secrets[len(secrets)-1]
	secrets = secrets[:len(secrets)-1]
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				found = append(found, p)
			}
		}
		sawMarker = sawMarker || bytes.Contains(b, []byte(marker))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, sawMarker
}

// The seed's rebuild: the store is wiped under running peels; the
// restarted master bootstraps it and, as the peels' facts come back, puts
// every settings-files and secrets entry back, without an operator. The
// peels kept their settings throughout (their cache), and render again.
func TestSettings_Rebuild_EntriesBackWithoutAnOperator(t *testing.T) {
	dir := t.TempDir()
	srv := testkit.ServerIn(t, dir)
	url := srv.ClientURL()
	js := testkit.JetStream(t, url)
	f := newSettingsFixture(t, js, "")
	h := startSettingsMaster(t, url, f)
	peels := []*peeltest.Handle{peeltest.Start(t, peeltest.Config(t, "web1", url)), peeltest.Start(t, peeltest.Config(t, "web2", url))}
	for _, p := range peels {
		testkit.Eventually(t, p.ID()+" renders", settingsHang, func() bool { return p.Settings()["site"] != nil })
	}
	srv.Shutdown()
	if err := os.RemoveAll(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Exited():
	case <-time.After(settingsHang):
		t.Fatal("master did not notice the wiped store")
	}
	for _, p := range peels {
		if p.Settings()["site"] != p.ID()+".example.com" {
			t.Fatalf("%s lost its settings with the store", p.ID())
		}
	}
	startSettingsMaster(t, url, f)
	js2 := testkit.JetStream(t, url)
	f.js = js2
	took := testkit.Eventually(t, "entries back", settingsHang, func() bool {
		for _, p := range peels {
			if f.entry(t, names.BucketSettingsFiles, p.ID()) == nil || f.entry(t, names.BucketSecrets, p.ID()) == nil {
				return false
			}
		}
		return true
	})
	t.Logf("REBUILD: settings-files and secrets back %s after the master restarted", took.Round(time.Millisecond))
	code, out, _ := clitest.Zester(t, url, "run", "--json", "web2", "settings.get", "key=site")
	if code != 0 || !strings.Contains(out, "web2.example.com") {
		t.Fatalf("settings.get after the rebuild: %d %s", code, out)
	}
}

// A peel restarted while NATS is away renders from its cache: a peel on
// the minority side of a split still has its settings.
func TestSettings_PeelCache_RendersWithoutNATS(t *testing.T) {
	srv, _, _ := startSettings(t)
	cfg := peeltest.Config(t, "web1", srv.ClientURL())
	p := peeltest.Start(t, cfg)
	testkit.Eventually(t, "web1 renders", settingsHang, func() bool { return p.Settings()["site"] == "web1.example.com" })
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	p2 := peeltest.Launch(t, cfg)
	testkit.Eventually(t, "web1 renders from its cache", settingsHang, func() bool { return p2.Settings()["site"] == "web1.example.com" })
	if p2.Ready() {
		t.Fatal("the peel is ready without NATS: the settings did not come from the cache")
	}
}

// Two masters share the fleet: each renders only the peels it owns (a file
// change writes each affected entry once, not once per master), a master
// that gains partitions finds their entries current, and when one leaves
// the other renders its peels.
func TestSettings_TwoMasters_EachRendersItsShare(t *testing.T) {
	srv, js, f := startSettings(t)
	url := srv.ClientURL()
	const n = 10
	f.simFleet(t, n)
	all := func() bool {
		for i := range n {
			if f.entry(t, names.BucketSecrets, fmt.Sprintf("db%d", i)) == nil || f.entry(t, names.BucketSecrets, fmt.Sprintf("web%d", i)) == nil {
				return false
			}
		}
		return true
	}
	testkit.Eventually(t, "every peel rendered", settingsHang, all)
	cfg := mastertest.Config("m2", url)
	cfg.SettingsDir, cfg.PKIDir = f.dir, f.pkiDir
	m2 := mastertest.Start(t, cfg)
	testkit.Eventually(t, "m2 owns a share", settingsHang, func() bool { return len(m2.Owned()) > 0 && len(m2.Owned()) < m2.Partitions() })
	files0 := lastSeq(t, js, names.BucketSettingsFiles)
	code, out, _ := clitest.Zester(t, url, "settings", "refresh")
	if code != 0 || !strings.Contains(out, "m1: ") || !strings.Contains(out, "m2: ") || strings.Count(out, " 0 written") != 2 {
		t.Fatalf("refresh with two masters: %d %s", code, out)
	}
	if d := lastSeq(t, js, names.BucketSettingsFiles) - files0; d != 0 {
		t.Fatalf("a master that gained partitions rewrote %d current entries", d)
	}
	f.write(t, "db.zy", "role: db\nsize: {{ .facts.size }}\nengine: postgres\n")
	testkit.Eventually(t, "the db peels re-rendered", settingsHang, func() bool { return lastSeq(t, js, names.BucketSettingsFiles)-files0 >= n })
	code, out, _ = clitest.Zester(t, url, "settings", "refresh")
	if d := lastSeq(t, js, names.BucketSettingsFiles) - files0; code != 0 || d != n {
		t.Fatalf("a change of db.zy with two masters wrote %d entries, want %d: %s", d, n, out)
	}
	// m2 leaves: m1 renders its peels again on their next fact change.
	var moved string
	for i := range n {
		id := fmt.Sprintf("db%d", i)
		if slices.Contains(m2.Owned(), shard.Partition(id, m2.Partitions())) {
			moved = id
		}
	}
	if moved == "" {
		t.Skip("no db peel in m2's partitions with this hash")
	}
	if err := m2.Stop(); err != nil {
		t.Fatal(err)
	}
	f.simPeel(t, moved, map[string]any{"role": "db", "size": 99})
	testkit.Eventually(t, moved+" rendered by m1", settingsHang, func() bool {
		r, _ := f.rendered(t, moved, map[string]any{"size": 99})
		return fmt.Sprint(settingOf(r, "size")) == "99"
	})
}

// A whole bucket purged behind the masters' back (no per-key markers): the
// entries are written again.
func TestSettings_PurgedBucket_EntriesWrittenAgain(t *testing.T) {
	_, js, f := startSettings(t)
	f.simPeel(t, "web1", map[string]any{"role": "web"})
	f.simPeel(t, "db1", map[string]any{"role": "db", "size": 1})
	testkit.Eventually(t, "rendered", settingsHang, func() bool {
		return f.entry(t, names.BucketSecrets, "web1") != nil && f.entry(t, names.BucketSettingsFiles, "db1") != nil
	})
	for _, b := range []string{names.BucketSecrets, names.BucketSettingsFiles} {
		st, err := js.Stream(context.Background(), names.KVStream(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	took := testkit.Eventually(t, "entries back", settingsHang, func() bool {
		return f.entry(t, names.BucketSecrets, "web1") != nil && f.entry(t, names.BucketSettingsFiles, "db1") != nil && f.entry(t, names.BucketSettingsFiles, "web1") != nil
	})
	t.Logf("SETTINGS: purged buckets written again after %s", took.Round(time.Millisecond))
	if r, _ := f.rendered(t, "web1", nil); settingOf(r, "db:password") != settingsSecret {
		t.Fatalf("web1 after the purge: %v", r)
	}
}

// A master restart finds the entries current from their input-hash headers
// and compiles no peel; a file changed while it was down is rendered for
// exactly the peels that apply it (known from the entries' file lists);
// I@ still sees the peels it did not compile.
func TestSettings_Restart_RendersOnlyWhatChanged(t *testing.T) {
	srv := testkit.Server(t)
	url := srv.ClientURL()
	js := testkit.JetStream(t, url)
	f := newSettingsFixture(t, js, "")
	const n = 5
	cfg := mastertest.Config("m1", url)
	cfg.SettingsDir, cfg.PKIDir = f.dir, f.pkiDir
	set := metrics.NewSet()
	h := mastertest.StartWith(t, cfg, master.Options{Metrics: set})
	f.simFleet(t, n)
	counter := func(s *metrics.Set, name string) uint64 { return s.GetOrCreateCounter(name).Get() }
	testkit.Eventually(t, "every peel rendered", settingsHang, func() bool {
		return counter(set, "zester_master_settings_writes_total") >= 3*n // 2n files, n web secrets
	})
	testkit.Eventually(t, "every write acknowledged and seen", settingsHang, func() bool {
		for i := range n {
			if f.entry(t, names.BucketSettingsFiles, fmt.Sprintf("db%d", i)) == nil || f.entry(t, names.BucketSecrets, fmt.Sprintf("web%d", i)) == nil {
				return false
			}
		}
		return true
	})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	files0, secrets0 := lastSeq(t, js, names.BucketSettingsFiles), lastSeq(t, js, names.BucketSecrets)
	f.write(t, "db.zy", "role: db\nsize: {{ .facts.size }}\nengine: postgres\n")

	set = metrics.NewSet()
	mastertest.StartWith(t, cfg, master.Options{Metrics: set})
	testkit.Eventually(t, "the db peels rendered, the web peels found current", settingsHang, func() bool {
		return counter(set, "zester_master_settings_renders_total")+counter(set, "zester_master_settings_current_total") >= 2*n
	})
	testkit.Eventually(t, "the db peels written", settingsHang, func() bool { return lastSeq(t, js, names.BucketSettingsFiles)-files0 >= n })
	if r, c := counter(set, "zester_master_settings_renders_total"), counter(set, "zester_master_settings_current_total"); r != n || c != n {
		t.Fatalf("after a restart with db.zy changed: %d rendered, %d found current; want %d and %d", r, c, n, n)
	}
	if d := lastSeq(t, js, names.BucketSettingsFiles) - files0; d != n {
		t.Fatalf("%d settings-files entries written, want %d (the db peels)", d, n)
	}
	if d := lastSeq(t, js, names.BucketSecrets) - secrets0; d != 0 {
		t.Fatalf("%d secrets entries written, want none", d)
	}
	// I@ on a peel this master did not compile: compiled for the match.
	code, out, _ := clitest.Zester(t, url, "run", "--json", "-I", "role:web", "test.ping")
	if !strings.Contains(out, "web0") || strings.Contains(out, "db0") {
		t.Fatalf("run -I role:web after a restart: %d %s", code, out)
	}
}
