package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
)

// enrollEnv is a PKI, a real server in operator mode, and a master with the
// masters' credentials serving enrollment.
type enrollEnv struct {
	*operatorMode
	url, admin, enrollCreds string
	m                       *mastertest.Handle
	met                     *metrics.Set
}

func startEnrollEnv(t *testing.T, tune func(*master.Config)) *enrollEnv {
	t.Helper()
	om := startOperatorMode(t)
	e := &enrollEnv{operatorMode: om, url: om.srv.ClientURL(), admin: filepath.Join(om.dir, pki.FileAdminCreds),
		enrollCreds: filepath.Join(om.dir, pki.FileEnrollCreds), met: metrics.NewSet()}
	cfg := mastertest.Config("m1", e.url)
	cfg.NATS.Creds = om.p.MasterCreds
	if tune != nil {
		tune(&cfg)
	}
	e.m = mastertest.StartWith(t, cfg, master.Options{PKI: om.p, Metrics: e.met})
	return e
}

// cli runs zester with the admin's credentials.
func (e *enrollEnv) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, append([]string{"--nats", e.url, "--creds", e.admin}, args...)...)
}

func (e *enrollEnv) peelConfig(t *testing.T, id string) peel.Config {
	cfg := peeltest.Config(t, id, e.url)
	cfg.EnrollCreds = e.enrollCreds
	return cfg
}

// record reads a peel's enrollment record (nil: none).
func (e *enrollEnv) record(t *testing.T, id string) *enroll.Record {
	t.Helper()
	ent, err := kvOf(t, e.master, names.BucketEnrollments).Get(pkitest.Ctx(t), names.EnrollRecordKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("record %s: %v", id, err)
	}
	var r enroll.Record
	if err := r.Decode(id, ent.Value()); err != nil {
		t.Fatal(err)
	}
	return &r
}

// waitState waits until the record of id is in state.
func (e *enrollEnv) waitState(t *testing.T, id string, state enroll.State) *enroll.Record {
	t.Helper()
	deadline := time.Now().Add(pkitest.HangGuard)
	for {
		r := e.record(t, id)
		if r != nil && r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("record of %s is %+v, not %s, after %s", id, r, state, pkitest.HangGuard)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event waits for the last enrollment event of kind for id.
func (e *enrollEnv) event(t *testing.T, id, kind string) enroll.Event {
	t.Helper()
	ctx := pkitest.Ctx(t)
	st, err := e.master.JS.Stream(ctx, names.StreamJobEvents)
	if err != nil {
		t.Fatal(err)
	}
	subj := names.EnrollEventSubject(id, kind)
	if id == "" {
		subj = names.EnrollTokenEventSubject(kind)
	}
	for {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err == nil {
			var ev enroll.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			return ev
		}
		if ctx.Err() != nil {
			t.Fatalf("no %s event for %q: %v", kind, id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peelConns lists the server's open connections of peel id's process.
func (e *enrollEnv) peelConns(t *testing.T, id string) []*server.ConnInfo {
	t.Helper()
	cz, err := e.srv.NATS().Connz(&server.ConnzOptions{Username: true, State: server.ConnOpen, Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var out []*server.ConnInfo
	for _, c := range cz.Conns {
		if c.Name == "zester-peel "+id {
			out = append(out, c)
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestEnroll_ManualAcceptThroughCLI: a new peel makes its keys, asks with
// the bootstrap credential and waits; `zester enroll accept` lets it in; it
// then runs with its own credentials (PeelPermissions, its own key) and
// answers test.ping through the master. The decision is an audit event that
// names the admin as authenticated by its signature.
func TestEnroll_ManualAcceptThroughCLI(t *testing.T) {
	e := startEnrollEnv(t, nil)
	const id = "web1.example.com"
	cfg := e.peelConfig(t, id)
	h := peeltest.Launch(t, cfg)

	rec := e.waitState(t, id, enroll.StatePending)
	for _, f := range []string{"peel.nk", "peel.xk"} {
		st, err := os.Stat(filepath.Join(cfg.DataDir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st.Mode())
		}
	}
	kp, err := nkeys.FromSeed([]byte(readFile(t, filepath.Join(cfg.DataDir, "peel.nk"))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	curve, _ := nkeys.FromCurveSeed([]byte(readFile(t, filepath.Join(cfg.DataDir, "peel.xk"))))
	curvePub, _ := curve.PublicKey()
	if rec.NKey != pub || rec.Curve != curvePub {
		t.Fatalf("record keys %s %s, want the peel's %s %s", rec.NKey, rec.Curve, pub, curvePub)
	}
	if rec.Facts["os"] == nil {
		t.Errorf("record has no claimed os facts: %v", rec.Facts)
	}
	if h.Ready() || len(e.peelConns(t, id)) != 0 {
		t.Fatal("a pending peel runs")
	}
	if ev := e.event(t, id, enroll.EvRequested); ev.NKey != pub || ev.To != enroll.StatePending {
		t.Fatalf("requested event %+v", ev)
	}

	out, errOut, code := e.cli(t, "enroll", "list", "--json")
	var recs []enroll.Record
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 || recs[0].ID != id || recs[0].State != enroll.StatePending {
		t.Fatalf("enroll list: exit %d %s %s", code, out, errOut)
	}
	// Without --yes and no answer on stdin, nothing happens.
	stdin = strings.NewReader("")
	t.Cleanup(func() { stdin = os.Stdin })
	if _, errOut, code := e.cli(t, "enroll", "accept", "web1.*"); code != ExitError || !strings.Contains(errOut, "not confirmed") || !strings.Contains(errOut, id) {
		t.Fatalf("accept without confirmation: exit %d %s", code, errOut)
	}
	if r := e.record(t, id); r.State != enroll.StatePending {
		t.Fatalf("unconfirmed accept changed the record: %s", r.State)
	}
	stdin = strings.NewReader("y\n")
	out, errOut, code = e.cli(t, "enroll", "accept", "web1.*")
	if code != 0 || !strings.Contains(out, id+": pending → accepted") || !strings.Contains(errOut, "decided by admin (U") {
		t.Fatalf("accept: exit %d\n%s%s", code, out, errOut)
	}
	h.WaitReady(t, 60*time.Second)

	rec = e.waitState(t, id, enroll.StateAccepted)
	if !rec.Verified || !strings.HasPrefix(rec.DecidedBy, "admin (U") || rec.Via != enroll.ViaManual {
		t.Fatalf("accepted record: %+v", rec)
	}
	ev := e.event(t, id, enroll.EvAccepted)
	if !ev.Verified || !strings.HasPrefix(ev.By, "admin (U") || ev.From != enroll.StatePending || ev.To != enroll.StateAccepted {
		t.Fatalf("accepted event: %+v", ev)
	}
	// Its own credentials: a JWT for its key, with PeelPermissions.
	tok := readFile(t, filepath.Join(cfg.DataDir, "peel.jwt"))
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pki.PeelPermissions(pki.PeelSpec{ID: id, Partitions: 64})
	if uc.Subject != pub || uc.Name != id || pki.FormatPermissions(uc.Permissions) != pki.FormatPermissions(want) {
		t.Fatalf("peel JWT: subject %s name %s permissions\n%s", uc.Subject, uc.Name, pki.FormatPermissions(uc.Permissions))
	}
	if d := time.Until(time.Unix(uc.Expires, 0)); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("peel JWT expires in %s, want 30 days", d)
	}
	conns := e.peelConns(t, id)
	if len(conns) != 1 || conns[0].AuthorizedUser != pub {
		t.Fatalf("peel connections %+v, want one as %s", conns, pub)
	}
	out, errOut, code = e.cli(t, "run", id, "test.ping")
	if code != 0 || !strings.Contains(out, id) {
		t.Fatalf("test.ping through the master: exit %d\n%s%s", code, out, errOut)
	}
}
