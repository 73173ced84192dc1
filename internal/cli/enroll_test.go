package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/facts"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
)

// enrollEnv is a PKI, a real server in operator mode, and a master with the
// masters' credentials serving enrollment.
type enrollEnv struct {
	*operatorMode
	url, admin, enrollCreds string
	m                       *mastertest.Handle
	met                     *metrics.Set
}

// autoAcceptWeb is the policy most enrollment tests run with: peels named
// web* are accepted without a decision.
func autoAcceptWeb(c *master.Config) { c.Enroll.AutoAccept = []string{"web*"} }

func startEnrollEnv(t *testing.T, tune func(*master.Config)) *enrollEnv {
	t.Helper()
	om := startOperatorMode(t)
	e := &enrollEnv{operatorMode: om, url: om.srv.ClientURL(), admin: filepath.Join(om.dir, pki.FileAdminCreds),
		enrollCreds: filepath.Join(om.dir, pki.FileEnrollCreds), met: metrics.NewSet()}
	// The secure start-up path: the master loads the PKI from pki_dir and
	// connects with its master.creds.
	cfg := mastertest.Config("m1", e.url)
	cfg.Insecure, cfg.PKIDir = false, om.dir
	if tune != nil {
		tune(&cfg)
	}
	e.m = mastertest.StartWith(t, cfg, master.Options{Metrics: e.met})
	return e
}

// revokedAt reads the revocation of key from account.jwt in dir, as a
// master wrote it.
func revokedAt(t *testing.T, dir, key string) int64 {
	t.Helper()
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p.RevokedAt(key)
}

// adminMsg is an enrollment decision request signed with the admin's
// credentials, as the CLI sends it.
func (e *enrollEnv) adminMsg(t *testing.T, op string, req enroll.AdminRequest, at time.Time) *nats.Msg {
	t.Helper()
	s, err := sig.LoadSigner(e.admin)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	m := &nats.Msg{Subject: names.EnrollAdminSubject(op), Data: body}
	if err := s.Sign(sig.API, m, at); err != nil {
		t.Fatal(err)
	}
	return m
}

// adminCall sends an admin request on conn and decodes the answer.
func adminCall(t *testing.T, conn *pkitest.Conn, m *nats.Msg) enroll.AdminReply {
	t.Helper()
	resp, err := conn.RequestMsg(m, pkitest.HangGuard)
	if err != nil {
		t.Fatal(err)
	}
	var rep enroll.AdminReply
	if err := json.Unmarshal(resp.Data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// cli runs zester with the admin's credentials.
func (e *enrollEnv) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, append([]string{"--nats", e.url, "--creds", e.admin}, args...)...)
}

// peelConfig is a secure peel (it runs only dispatches the masters signed)
// that enrolls with the bootstrap credential.
func (e *enrollEnv) peelConfig(t *testing.T, id string) peel.Config {
	cfg := peeltest.Config(t, id, e.url)
	cfg.Insecure = false
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
	var r *enroll.Record
	testkit.Until(t, pkitest.HangGuard, func() error {
		if r = e.record(t, id); r == nil || r.State != state {
			return fmt.Errorf("record of %s is %+v, not %s", id, r, state)
		}
		return nil
	})
	return r
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
	var ev enroll.Event
	testkit.Until(t, pkitest.HangGuard, func() error {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return fmt.Errorf("no %s event for %q: %w", kind, id, err)
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	return ev
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
	if code != 0 || !strings.Contains(out, id+": pending → accepted") || !strings.Contains(errOut, "decided by admin role=admin key=U") {
		t.Fatalf("accept: exit %d\n%s%s", code, out, errOut)
	}
	h.WaitReady(t, 60*time.Second)

	rec = e.waitState(t, id, enroll.StateAccepted)
	if !rec.Verified || !strings.HasPrefix(rec.DecidedBy, "admin role=admin key=U") || rec.Via != enroll.ViaManual {
		t.Fatalf("accepted record: %+v", rec)
	}
	ev := e.event(t, id, enroll.EvAccepted)
	if !ev.Verified || !strings.HasPrefix(ev.By, "admin role=admin key=U") || ev.From != enroll.StatePending || ev.To != enroll.StateAccepted {
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

// TestEnroll_AutoAccept: master.yaml's enroll.auto_accept admits matching
// ids and claimed facts at once; other peels wait. Tokens from `zester
// enroll token create` admit their holder: a one-time token exactly one
// peel, a reusable one several.
func TestEnroll_AutoAccept(t *testing.T) {
	f, err := facts.Collect(pkitest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	e := startEnrollEnv(t, func(c *master.Config) {
		c.Enroll.AutoAccept = []string{"web-*", "G@os:id:no-such-os", "G@os:id:" + f.OS.ID + " and L@fact-host"}
	})
	web := peeltest.Start(t, e.peelConfig(t, "web-1"))
	if rec := e.record(t, "web-1"); rec.State != enroll.StateAccepted || rec.Via != enroll.ViaPolicy("web-*") || rec.DecidedBy != "policy" {
		t.Fatalf("web-1 by policy: %+v", rec)
	}
	if ev := e.event(t, "web-1", enroll.EvAccepted); ev.By != "policy" || ev.Via != enroll.ViaPolicy("web-*") {
		t.Fatalf("web-1 event: %+v", ev)
	}
	// A fact target matches the facts the peel claims with its request.
	peeltest.Start(t, e.peelConfig(t, "fact-host"))
	if rec := e.record(t, "fact-host"); rec.State != enroll.StateAccepted || !strings.Contains(rec.Via, "G@os:id:"+f.OS.ID) {
		t.Fatalf("fact-host by a fact target: %+v", rec)
	}
	db := peeltest.Launch(t, e.peelConfig(t, "db-1"))
	e.waitState(t, "db-1", enroll.StatePending)

	// A one-time token.
	out, errOut, code := e.cli(t, "enroll", "token", "create", "--expires", "1h", "--note", "rack 7")
	secret := strings.TrimSpace(out)
	if code != 0 || enroll.CheckTokenFormat(secret) != nil || !strings.Contains(errOut, "one-time") {
		t.Fatalf("token create: exit %d %q %s", code, out, errOut)
	}
	cfg := e.peelConfig(t, "tok-1")
	cfg.EnrollToken = secret
	peeltest.Start(t, cfg)
	tokID := enroll.TokenID(enroll.HashToken(secret))
	if rec := e.record(t, "tok-1"); rec.State != enroll.StateAccepted || rec.Via != enroll.ViaToken(tokID) || rec.DecidedBy != "token" {
		t.Fatalf("tok-1 by token: %+v", rec)
	}
	// Used up: a second peel with it is refused, and says so.
	cfg2 := e.peelConfig(t, "tok-2")
	cfg2.EnrollToken = secret
	peeltest.Launch(t, cfg2)
	if ev := e.event(t, "tok-2", enroll.EvRefused); ev.Code != enroll.CodeBadToken || !strings.Contains(ev.Detail, "used already") {
		t.Fatalf("tok-2 with a used one-time token: %+v", ev)
	}
	if rec := e.record(t, "tok-2"); rec != nil {
		t.Fatalf("tok-2 has a record: %+v", rec)
	}
	// A reusable token admits several.
	out, _, code = e.cli(t, "enroll", "token", "create", "--reusable")
	reusable := strings.TrimSpace(out)
	if code != 0 {
		t.Fatal("reusable token create failed")
	}
	for _, id := range []string{"many-1", "many-2"} {
		c := e.peelConfig(t, id)
		c.EnrollToken = reusable
		peeltest.Start(t, c)
	}
	out, _, code = e.cli(t, "enroll", "token", "list", "--json")
	var toks []enroll.Token
	if code != 0 || json.Unmarshal([]byte(out), &toks) != nil || len(toks) != 2 {
		t.Fatalf("token list: %s", out)
	}
	for _, tk := range toks {
		switch {
		case tk.ID == tokID && (tk.Uses != 1 || tk.Note != "rack 7" || tk.Expires.IsZero()):
			t.Errorf("one-time token: %+v", tk)
		case tk.Reusable && tk.Uses != 2:
			t.Errorf("reusable token: %+v", tk)
		}
		if strings.Contains(out, secret) || strings.Contains(out, reusable) {
			t.Fatal("token list shows a secret")
		}
	}
	if _, _, code := e.cli(t, "enroll", "token", "delete", tokID); code != 0 {
		t.Fatal("token delete failed")
	}
	if _, errOut, code := e.cli(t, "enroll", "token", "delete", tokID); code != ExitFailed || !strings.Contains(errOut, "no such token") {
		t.Fatalf("deleting a deleted token: exit %d %s", code, errOut)
	}
	// accept --all-pending takes the waiting db-1 (and only pending ones).
	out, errOut, code = e.cli(t, "enroll", "accept", "--all-pending", "--yes")
	if code != 0 || strings.TrimSpace(out) != "db-1: pending → accepted" {
		t.Fatalf("accept --all-pending: exit %d\n%s%s", code, out, errOut)
	}
	db.WaitReady(t, 60*time.Second)
	if !web.Ready() {
		t.Fatal("web-1 stopped")
	}
}

// enrollClient speaks the enrollment protocol by hand over the bootstrap
// credential.
type enrollClient struct {
	t  *testing.T
	nc *pkitest.Conn
}

func (e *enrollEnv) client(t *testing.T) *enrollClient {
	return &enrollClient{t: t, nc: pkitest.Connect(t, e.url, names.EnrollInboxPrefix, nats.UserCredentials(e.enrollCreds))}
}

// call sends one request and returns the reply or the refusal.
func (c *enrollClient) call(req any) (*enroll.Reply, *enroll.Refusal) {
	c.t.Helper()
	b, _ := json.Marshal(req)
	m, err := c.nc.Request(names.SubjectEnroll, b)
	if err != nil {
		c.t.Fatalf("enroll request: %v", err)
	}
	var r enroll.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		c.t.Fatal(err)
	}
	return &r, r.Error
}

func (c *enrollClient) hello(id string, kp nkeys.KeyPair) *enroll.Reply {
	c.t.Helper()
	pub, _ := kp.PublicKey()
	r, ref := c.call(&enroll.Request{Op: enroll.OpHello, ID: id, NKey: pub})
	if ref != nil {
		c.t.Fatalf("hello %s: %v", id, ref)
	}
	return r
}

// proof is a prove request for id with key pub (in the claim), signed by
// signer, answering nonce.
func proof(t *testing.T, id, pub string, signer nkeys.KeyPair, nonce string) *enroll.Request {
	t.Helper()
	cpub := curvePub(t)
	req, err := enroll.SignClaim(signer, &enroll.Claim{ID: id, NKey: pub, Curve: cpub, Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func userKey(t *testing.T) (nkeys.KeyPair, string) { return testkit.NewKey(t, nkeys.CreateUser) }

// peelKeys are the keys a peel enrolls with: its user key pair, that key's
// public key and the public key of its curve key (the claim's Curve).
func peelKeys(t *testing.T) (nkeys.KeyPair, string, string) {
	t.Helper()
	k, pub := userKey(t)
	return k, pub, curvePub(t)
}

// curvePub is the public key of a new curve key pair (a claim's Curve).
func curvePub(t *testing.T) string {
	t.Helper()
	_, pub := testkit.NewKey(t, nkeys.CreateCurveKeys)
	return pub
}

func wantRefusal(t *testing.T, what string, ref *enroll.Refusal, code string, contains ...string) {
	t.Helper()
	if ref == nil || ref.Code != code {
		t.Fatalf("%s: refusal %v, want code %s", what, ref, code)
	}
	for _, s := range contains {
		if !strings.Contains(ref.Msg, s) {
			t.Errorf("%s: refusal %q does not say %q", what, ref.Msg, s)
		}
	}
}

// TestEnroll_Refusals: a replayed proof, a second enrollment of an accepted
// id with another key, a peel lying about its id (a proof for another key's
// challenge, a signature by a key that is not the claim's, an id that
// differs from the claim's, an enrolled key asking for a second id) are
// refused with a clear error; the master records the security-relevant ones.
func TestEnroll_Refusals(t *testing.T) {
	e := startEnrollEnv(t, autoAcceptWeb)
	c := e.client(t)
	ctx := pkitest.Ctx(t)
	k1, pub1, cpub1 := peelKeys(t)
	if res, err := enroll.Exchange(ctx, c.nc.Conn, k1, enroll.Claim{ID: "web1", Curve: cpub1}); err != nil || res.State != enroll.StateAccepted {
		t.Fatalf("web1 enrolls: %v %v", res, err)
	}

	// Replay: a captured proof is good once.
	ch := c.hello("web1", k1)
	captured := proof(t, "web1", pub1, k1, ch.Nonce)
	if r, ref := c.call(captured); ref != nil || r.State != enroll.StateAccepted || enroll.CheckIssued(r.JWT, "web1", pub1, time.Now()) != nil {
		t.Fatalf("first use of the proof: %+v %v", r, ref)
	}
	_, ref := c.call(captured)
	wantRefusal(t, "replayed proof", ref, enroll.CodeChallengeReplayed, "replayed")
	// An old proof after a newer hello: superseded.
	old := c.hello("web1", k1)
	c.hello("web1", k1)
	_, ref = c.call(proof(t, "web1", pub1, k1, old.Nonce))
	wantRefusal(t, "superseded proof", ref, enroll.CodeChallengeReplayed, "superseded")
	if ev := e.event(t, "web1", enroll.EvRefused); ev.Code != enroll.CodeChallengeReplayed {
		t.Fatalf("replay event: %+v", ev)
	}

	// The same id with another key: a cloned or stolen id, refused at hello
	// and at prove.
	k2, pub2 := userKey(t)
	_, ref = c.call(&enroll.Request{Op: enroll.OpHello, ID: "web1", NKey: pub2})
	wantRefusal(t, "second key for web1 (hello)", ref, enroll.CodeConflict, "cloned or stolen", pub1, pub2, "zester enroll delete web1")
	_, err := enroll.Exchange(ctx, c.nc.Conn, k2, enroll.Claim{ID: "web1", Curve: cpub1})
	var refErr *enroll.Refusal
	if !errors.As(err, &refErr) || refErr.Code != enroll.CodeConflict {
		t.Fatalf("second key for web1 (exchange): %v", err)
	}
	if ev := e.event(t, "web1", enroll.EvRefused); ev.Code != enroll.CodeConflict || ev.NKey != pub2 {
		t.Fatalf("conflict event: %+v", ev)
	}
	if rec := e.record(t, "web1"); rec.NKey != pub1 || rec.State != enroll.StateAccepted {
		t.Fatalf("web1's record after the conflict: %+v", rec)
	}

	// Lying about the id.
	k3, pub3 := userKey(t)
	ch = c.hello("web2", k2)
	_, ref = c.call(proof(t, "web2", pub2, k3, ch.Nonce)) // signed by a key that is not the claim's
	wantRefusal(t, "signature by another key", ref, enroll.CodeBadSignature, pub2)
	ch = c.hello("web3", k2)
	_, ref = c.call(proof(t, "web3", pub3, k3, ch.Nonce)) // answering another key's challenge
	wantRefusal(t, "proof for another key's challenge", ref, enroll.CodeKeyMismatch, pub2, pub3)
	ch = c.hello("web4", k3)
	lie := proof(t, "web4", pub3, k3, ch.Nonce)
	lie.ID = "web5"
	_, ref = c.call(lie)
	wantRefusal(t, "request id differs from the claim's", ref, enroll.CodeBadRequest, "web5", "web4")
	ch = c.hello("web9", k1) // web1's key asking to be web9 too
	_, ref = c.call(proof(t, "web9", pub1, k1, ch.Nonce))
	wantRefusal(t, "an enrolled key for a second id", ref, enroll.CodeKeyInUse, `"web1"`, "web9")
	for _, id := range []string{"web2", "web3", "web4", "web5", "web9"} {
		if rec := e.record(t, id); rec != nil {
			t.Errorf("%s has a record after a refused proof: %+v", id, rec)
		}
	}
	// Garbage and nonsense.
	for _, body := range []string{`{`, `{"op":"hello","id":"web*","nkey":"x"}`, `{"op":"dance","id":"a"}`, `{"op":"prove","id":"a","claim":"e30=","sig":"AA=="}`} {
		m, err := c.nc.Request(names.SubjectEnroll, []byte(body))
		var r enroll.Reply
		if err != nil || json.Unmarshal(m.Data, &r) != nil || r.Error == nil || r.Error.Code != enroll.CodeBadRequest {
			t.Errorf("request %s: %v %+v", body, err, r)
		}
	}
}

// TestEnroll_ExpiredChallenge: a proof after the challenge's time is
// refused, and the peel is told to start again.
func TestEnroll_ExpiredChallenge(t *testing.T) {
	e := startEnrollEnv(t, func(c *master.Config) { c.Enroll.ChallengeTTL = config.Dur(time.Second) })
	c := e.client(t)
	k, pub := userKey(t)
	ch := c.hello("late", k)
	req := proof(t, "late", pub, k, ch.Nonce)
	// The challenge's expiry is in the reply: wait for the clock to pass it.
	// Passing time is what this test is about, so it sleeps, to a deadline
	// the master set, not a guess.
	for !time.Now().After(ch.Expires.Add(50 * time.Millisecond)) {
		time.Sleep(time.Until(ch.Expires.Add(60 * time.Millisecond)))
	}
	_, ref := c.call(req)
	wantRefusal(t, "expired challenge", ref, enroll.CodeChallengeExpired, "expired", "hello")
	if rec := e.record(t, "late"); rec != nil {
		t.Fatalf("record after an expired challenge: %+v", rec)
	}
}

// TestEnroll_RevokeCutsOffWithin5s: `zester enroll revoke` closes the
// peel's connection within 5 s (the master pushes the re-signed account JWT
// to a server it does not embed with the system user's credentials), its
// credentials no longer connect, and the peel, trying again, is told it is
// revoked. Deleting the record lets it enroll anew.
func TestEnroll_RevokeCutsOffWithin5s(t *testing.T) {
	e := startEnrollEnv(t, autoAcceptWeb)
	cfg := e.peelConfig(t, "web1")
	h := peeltest.Start(t, cfg)
	tok := readFile(t, filepath.Join(cfg.DataDir, "peel.jwt"))
	seed := readFile(t, filepath.Join(cfg.DataDir, "peel.nk"))
	if len(e.peelConns(t, "web1")) != 1 {
		t.Fatal("web1 is not connected")
	}

	start := time.Now()
	out, errOut, code := e.cli(t, "enroll", "revoke", "web1", "--yes", "--reason", "host stolen")
	if code != 0 || !strings.Contains(out, "web1: accepted → revoked") {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errOut)
	}
	testkit.Eventually(t, "web1 cut off", pkitest.HangGuard, func() bool { return len(e.peelConns(t, "web1")) == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("web1 cut off after %s, want within 5s", d)
	}
	t.Logf("revoked peel cut off %s after the command started", time.Since(start).Round(time.Millisecond))
	if _, err := nats.Connect(e.url, nats.UserJWTAndSeed(tok, seed), nats.MaxReconnects(0)); err == nil {
		t.Fatal("the revoked credentials still connect")
	}
	rec := e.record(t, "web1")
	if rec.State != enroll.StateRevoked || rec.Reason != "host stolen" || !strings.HasPrefix(rec.DecidedBy, "admin role=admin key=U") {
		t.Fatalf("revoked record: %+v", rec)
	}
	if ev := e.event(t, "web1", enroll.EvRevoked); ev.From != enroll.StateAccepted || !ev.Verified {
		t.Fatalf("revoked event: %+v", ev)
	}
	// The peel's reconnect is refused (credsLoop acts on that auth error);
	// it asks to enroll again and is told it is revoked.
	if ev := e.event(t, "web1", enroll.EvRefused); ev.Code != enroll.CodeRevoked {
		t.Fatalf("the revoked peel's new request: %+v", ev)
	}
	if len(e.peelConns(t, "web1")) != 0 || h.Connected() {
		t.Fatal("the revoked peel reconnected")
	}
	if revokedAt(t, e.dir, rec.NKey) == 0 {
		t.Fatal("the master's account.jwt lacks the revocation")
	}

	// Deleting the record lets the same host in again (by policy here),
	// with a JWT issued after the revocation.
	if out, errOut, code := e.cli(t, "enroll", "delete", "web1", "--yes"); code != 0 || !strings.Contains(out, "web1: revoked → deleted") {
		t.Fatalf("delete: exit %d\n%s%s", code, out, errOut)
	}
	e.waitState(t, "web1", enroll.StateAccepted)
	testkit.Eventually(t, "web1 back after its record was deleted", pkitest.HangGuard, func() bool { return len(e.peelConns(t, "web1")) == 1 })
}

// TestEnroll_RenewsBeforeExpiry: with 12 s credentials the peel renews at
// two thirds of their life over its own connection, reconnects with the new
// JWT and keeps answering jobs past the first JWT's expiry.
func TestEnroll_RenewsBeforeExpiry(t *testing.T) {
	e := startEnrollEnv(t, func(c *master.Config) {
		c.Enroll.AutoAccept = []string{"web*"}
		c.Enroll.CredsExpiry = config.Dur(12 * time.Second)
	})
	cfg := e.peelConfig(t, "web1")
	peeltest.Start(t, cfg)
	path := filepath.Join(cfg.DataDir, "peel.jwt")
	first := readFile(t, path)
	uc1, _ := jwt.DecodeUserClaims(first)
	// The bounds here are the assertions: renewed before the first JWT
	// expires, reconnected with the new one before that expires.
	var next string
	testkit.Eventually(t, "the peel renews before its credentials expire", time.Until(time.Unix(uc1.Expires, 0)), func() bool {
		next = readFile(t, path)
		return next != first
	})
	uc2, _ := jwt.DecodeUserClaims(next)
	if uc2.Subject != uc1.Subject || uc2.IssuedAt < uc1.IssuedAt+7 || uc2.Expires <= uc1.Expires {
		t.Fatalf("renewed JWT: iat %d exp %d (first: iat %d exp %d)", uc2.IssuedAt, uc2.Expires, uc1.IssuedAt, uc1.Expires)
	}
	if ev := e.event(t, "web1", enroll.EvRenewed); ev.NKey != uc1.Subject {
		t.Fatalf("renewed event: %+v", ev)
	}
	// The connection carries the new JWT.
	testkit.Eventually(t, "the peel reconnects with its renewed JWT", time.Until(time.Unix(uc2.Expires, 0)), func() bool {
		conns := e.peelConns(t, "web1")
		return len(conns) == 1 && conns[0].JWT == next
	})
	// Past the first JWT's expiry (the point of the test: time passing).
	for !time.Now().After(time.Unix(uc1.Expires+1, 0)) {
		time.Sleep(time.Until(time.Unix(uc1.Expires+1, 0)) + 10*time.Millisecond)
	}
	if out, errOut, code := e.cli(t, "run", "web1", "test.ping"); code != 0 {
		t.Fatalf("test.ping after the first JWT expired: exit %d\n%s%s", code, out, errOut)
	}
}

// TestOperatorMode_SysCredsConnect: sys.creds is a working system user (the
// operator's strict signing key usage refuses users issued by an account's
// identity key; the masters push account JWT updates with it).
func TestOperatorMode_SysCredsConnect(t *testing.T) {
	om := startOperatorMode(t)
	sys := pkitest.Connect(t, om.srv.ClientURL(), "", nats.UserCredentials(filepath.Join(om.dir, pki.FileSysCreds)))
	if _, err := sys.Request("$SYS.REQ.SERVER.PING", nil); err != nil {
		t.Fatalf("system request: %v", err)
	}
}

// TestEnroll_BootstrapCredentialOnlyEnrolls: beside a master that serves
// enrollment, enroll.creds asks to enroll and can do nothing else: no
// decision, no renewal, no other peel's requests. A request whose reply
// subject is not an inbox (the server checks no reply subject) is dropped by
// the master, not answered there. An enrolled peel renews its own
// credentials and nobody else's.
func TestEnroll_BootstrapCredentialOnlyEnrolls(t *testing.T) {
	e := startEnrollEnv(t, autoAcceptWeb)
	c := e.client(t)
	ctx := pkitest.Ctx(t)
	k, pub, cpub := peelKeys(t)
	res, err := enroll.Exchange(ctx, c.nc.Conn, k, enroll.Claim{ID: "web1", Curve: cpub})
	if err != nil || res.State != enroll.StateAccepted {
		t.Fatalf("enroll: %v %v", res, err)
	}
	for _, subj := range []string{
		names.EnrollAdminSubject(enroll.AdminAccept), names.EnrollAdminSubject(enroll.AdminList), names.EnrollAdminSubject(enroll.AdminTokenCreate),
		names.EnrollRenewSubject("web1"), names.APISubject("info"), names.KVSubjectPrefix(names.BucketEnrollments) + "web1",
	} {
		c.nc.PublishDenied(t, subj)
	}
	// Others' requests carry tokens: no holder of enroll.creds reads them.
	for _, subj := range []string{names.SubjectEnroll, names.SubjectEnrollAdminAll, names.SubjectEnrollRenewAll} {
		c.nc.SubscribeDenied(t, subj)
	}

	// A reply subject that is no inbox.
	bad := e.met.GetOrCreateCounter(`zester_master_enroll_bad_reply_total`)
	hello, _ := json.Marshal(enroll.Request{Op: enroll.OpHello, ID: "web7", NKey: pub})
	victim := names.KVSubjectPrefix(names.BucketFacts) + "victim"
	if err := c.nc.PublishRequest(names.SubjectEnroll, victim, hello); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the master drops the request", pkitest.HangGuard, func() bool { return bad.Get() > 0 })
	if _, err := kvOf(t, e.master, names.BucketFacts).Get(ctx, "victim"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the master answered onto %s: %v", victim, err)
	}

	// The enrolled peel's own credentials renew its own and nobody else's.
	seed, _ := k.Seed()
	own := pkitest.Connect(t, e.url, names.PeelInboxPrefix("web1"), nats.UserJWTAndSeed(res.JWT, string(seed)))
	tok, err := enroll.Renew(ctx, own.Conn, k, "web1")
	if err != nil || enroll.CheckIssued(tok, "web1", pub, time.Now()) != nil {
		t.Fatalf("renew own: %v", err)
	}
	own.PublishDenied(t, names.EnrollRenewSubject("web2"))
	forged, _ := enroll.SignRenew(k, "web2", time.Now())
	m, err := own.Request(names.EnrollRenewSubject("web1"), forged)
	var r enroll.Reply
	if err != nil || json.Unmarshal(m.Data, &r) != nil || r.Error == nil || r.Error.Code != enroll.CodeIDMismatch {
		t.Fatalf("a renewal for web2 on web1's subject: %v %+v", err, r)
	}
}

// TestEnroll_DuplicateIDGuardUsesTheVerifiedIdentity: with per-peel
// credentials only the id's own credentials may answer on its peel inbox or
// beat as it, so a second process that passes enrollment with the id must
// hold its key: a copied data_dir, which the instance check refuses and
// names. Another enrolled peel can neither answer for it nor beat as it.
func TestEnroll_DuplicateIDGuardUsesTheVerifiedIdentity(t *testing.T) {
	e := startEnrollEnv(t, autoAcceptWeb)
	cfgA := e.peelConfig(t, "web1")
	a := peeltest.Start(t, cfgA)
	cfgB := e.peelConfig(t, "web2")
	peeltest.Start(t, cfgB)
	keyA := e.record(t, "web1").NKey

	// A copy of web1's data_dir on "another host".
	clone := cfgA
	clone.DataDir = t.TempDir()
	for _, f := range []string{"peel.nk", "peel.xk", "peel.jwt"} {
		b, err := os.ReadFile(filepath.Join(cfgA.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clone.DataDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := peel.New(clone, peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	var dup *peelproto.ErrDuplicate
	if err := p.Run(pkitest.Ctx(t)); !errors.As(err, &dup) || dup.Other.Key != keyA || dup.Other.Instance != a.Instance() || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("the copied data_dir: %v", err)
	}

	// web2's credentials cannot stand in for web1.
	b := pkitest.Connect(t, e.url, names.PeelInboxPrefix("web2"), nats.UserJWTAndSeed(
		readFile(t, filepath.Join(cfgB.DataDir, "peel.jwt")), readFile(t, filepath.Join(cfgB.DataDir, "peel.nk"))))
	b.PublishDenied(t, names.BeatSubject(shard.Partition("web1", 64), "web1"))
	b.PublishDenied(t, names.PeelInbox("web1"))
	b.SubscribeDenied(t, names.PeelInbox("web1"))
	if !a.Ready() {
		t.Fatal("web1 stopped")
	}
}

// TestEnroll_AdminRequestsAreSignedForTheirSubject: decisions are signed
// like every master API request (sig.API: subject, time, nonce, body) and
// need the admin role. A decision signed for one subject is refused on
// another (an "accept" cannot be replayed as a "reject"), so are an old
// one, a replayed one and an unsigned one; an operator user cannot even
// publish there.
func TestEnroll_AdminRequestsAreSignedForTheirSubject(t *testing.T) {
	e := startEnrollEnv(t, nil)
	c := e.client(t)
	k, pub := userKey(t)
	ch := c.hello("p1", k)
	if r, ref := c.call(proof(t, "p1", pub, k, ch.Nonce)); ref != nil || r.State != enroll.StatePending {
		t.Fatalf("p1 asks: %+v %v", r, ref)
	}
	admin := pkitest.Connect(t, e.url, names.UserInboxPrefix("admin"), nats.UserCredentials(e.admin))
	req := enroll.AdminRequest{Targets: []string{"p1"}}
	moved := e.adminMsg(t, enroll.AdminAccept, req, time.Now())
	moved.Subject = names.EnrollAdminSubject(enroll.AdminReject)
	if rep := adminCall(t, admin, moved); rep.Error == "" || len(rep.Changed) != 0 {
		t.Fatalf("an accept's signature on reject: %+v", rep)
	}
	if rep := adminCall(t, admin, e.adminMsg(t, enroll.AdminAccept, req, time.Now().Add(-10*time.Minute))); rep.Error == "" {
		t.Fatalf("an old signed request: %+v", rep)
	}
	unsigned := &nats.Msg{Subject: names.EnrollAdminSubject(enroll.AdminAccept), Data: moved.Data}
	if rep := adminCall(t, admin, unsigned); !strings.Contains(rep.Error, "unsigned") {
		t.Fatalf("an unsigned accept: %+v", rep)
	}
	if r := e.record(t, "p1"); r.State != enroll.StatePending {
		t.Fatalf("p1 after refused requests: %s", r.State)
	}
	good := e.adminMsg(t, enroll.AdminAccept, req, time.Now())
	if rep := adminCall(t, admin, good); rep.Error != "" || len(rep.Changed) != 1 || !strings.HasPrefix(rep.By, "admin role=admin key=U") {
		t.Fatalf("a signed accept: %+v", rep)
	}
	if r := e.record(t, "p1"); r.State != enroll.StateAccepted || !r.Verified {
		t.Fatalf("p1 accepted: %+v", r)
	}
	again := e.adminMsg(t, enroll.AdminDelete, enroll.AdminRequest{Targets: []string{"p1"}}, time.Now())
	adminCall(t, admin, again)
	if rep := adminCall(t, admin, again); !strings.Contains(rep.Error, "replay") {
		t.Fatalf("a replayed delete: %+v", rep)
	}
	// An operator may run jobs but not decide.
	opCreds := filepath.Join(t.TempDir(), "ops.creds")
	creds, _, err := e.p.IssueUser(pki.UserSpec{Name: "ops", Role: pki.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(opCreds, creds, 0o600)
	ops := pkitest.Connect(t, e.url, names.UserInboxPrefix("ops"), nats.UserCredentials(opCreds))
	ops.PublishDenied(t, names.EnrollAdminSubject(enroll.AdminAccept))
	if _, errOut, code := runCLI(t, "--nats", e.url, "--creds", opCreds, "enroll", "list"); code != ExitError || !strings.Contains(errOut, "needs the admin role") || !strings.Contains(errOut, "role operator") {
		t.Fatalf("enroll list as an operator: exit %d %s", code, errOut)
	}
}

// TestEnroll_RevocationReachesEveryMastersPKI: each master holds its own
// copy of the PKI directory; a revocation made through any of them is
// merged into every master's account JWT (and account.jwt file), so a later
// re-signing by any master keeps it.
func TestEnroll_RevocationReachesEveryMastersPKI(t *testing.T) {
	e := startEnrollEnv(t, autoAcceptWeb)
	dir2 := filepath.Join(t.TempDir(), "pki2")
	if err := os.CopyFS(dir2, os.DirFS(e.dir)); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir2, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Chmod(path, 0o600)
		}
		return err
	})
	cfg := mastertest.Config("m2", e.url)
	cfg.Insecure, cfg.PKIDir = false, dir2
	cfg.Enroll.AutoAccept = []string{"web*"}
	mastertest.StartWith(t, cfg, master.Options{})

	c := e.client(t)
	var keys []string
	for _, id := range []string{"web1", "web2", "web3"} {
		k, pub, cpub := peelKeys(t)
		if res, err := enroll.Exchange(pkitest.Ctx(t), c.nc.Conn, k, enroll.Claim{ID: id, Curve: cpub}); err != nil || res.State != enroll.StateAccepted {
			t.Fatalf("%s: %v %v", id, res, err)
		}
		keys = append(keys, pub)
	}
	// Three revocations, handled by whichever master the queue group picks.
	for _, id := range []string{"web1", "web2", "web3"} {
		if out, errOut, code := e.cli(t, "enroll", "revoke", id, "--yes"); code != 0 {
			t.Fatalf("revoke %s: exit %d\n%s%s", id, code, out, errOut)
		}
	}
	for _, dir := range []string{e.dir, dir2} {
		testkit.Until(t, pkitest.HangGuard, func() error {
			n := 0
			for _, k := range keys {
				if revokedAt(t, dir, k) > 0 {
					n++
				}
			}
			if n != len(keys) {
				return fmt.Errorf("%s holds %d of %d revocations", dir, n, len(keys))
			}
			return nil
		})
		file, err := os.ReadFile(filepath.Join(dir, pki.FileAccountJWT))
		if err != nil {
			t.Fatal(err)
		}
		ac, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, ok := ac.Revocations[k]; !ok {
				t.Fatalf("%s lacks the revocation of %s", filepath.Join(dir, pki.FileAccountJWT), k)
			}
		}
	}
}

// TestEnroll_ManyRecordsPagedAndChunked: a fleet's records do not fit one
// message. 700 pending peels with a kilobyte of claimed facts each are
// listed in pages, and `accept --all-pending` confirms them in chunks of
// enroll.MaxExpect.
func TestEnroll_ManyRecordsPagedAndChunked(t *testing.T) {
	e := startEnrollEnv(t, nil)
	c := e.client(t)
	const n = 700
	facts := map[string]any{"os": map[string]any{"id": "debian"}, "host": map[string]any{"note": strings.Repeat("x", 900)}}
	err := parallelT(n, 16, func(i int) error {
		k, _ := nkeys.CreateUser()
		cpub := curvePub(t)
		res, err := enroll.Exchange(pkitest.Ctx(t), c.nc.Conn, k, enroll.Claim{ID: fmt.Sprintf("many-%04d", i), Curve: cpub, Facts: facts})
		if err == nil && res.State != enroll.StatePending {
			err = fmt.Errorf("state %s", res.State)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// One answer holds one page.
	admin := pkitest.Connect(t, e.url, names.UserInboxPrefix("admin"), nats.UserCredentials(e.admin))
	page := adminCall(t, admin, e.adminMsg(t, enroll.AdminList, enroll.AdminRequest{}, time.Now()))
	if page.Error != "" || !page.More || len(page.Records) >= n || page.Last != page.Records[len(page.Records)-1].ID {
		t.Fatalf("first page: %s, more %t, %d records", page.Error, page.More, len(page.Records))
	}
	out, errOut, code := e.cli(t, "enroll", "list", "--json")
	var recs []enroll.Record
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != n {
		t.Fatalf("list: exit %d, %d records, %s", code, len(recs), errOut)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("many-%04d", i); r.ID != want {
			t.Fatalf("record %d is %s, want %s (pages out of order or overlapping)", i, r.ID, want)
		}
	}
	out, errOut, code = e.cli(t, "enroll", "accept", "-A", "-y")
	if code != 0 || strings.Count(out, "pending → accepted") != n {
		t.Fatalf("accept -A: exit %d, %d accepted\n%s", code, strings.Count(out, "pending → accepted"), errOut)
	}
	for _, id := range []string{"many-0000", "many-0499", "many-0500", "many-0699"} {
		if r := e.record(t, id); r.State != enroll.StateAccepted {
			t.Fatalf("%s: %s", id, r.State)
		}
	}
}

func parallelT(n, k int, fn func(i int) error) error {
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// TestEnroll_EmbeddedMasterQuickStart: the real start-up path of one host.
// An embedded master creates its PKI on first start; a peel with a copy of
// enroll.creds asks, `zester enroll accept` (the CLI finds admin.creds in
// the PKI directory by itself) lets it in, it answers test.ping, and a
// revocation, handed straight to the embedded server, cuts it off within
// 5 s.
func TestEnroll_EmbeddedMasterQuickStart(t *testing.T) {
	dir := t.TempDir()
	cfg := master.DefaultConfig()
	cfg.ID, cfg.HTTP = "m1", ""
	cfg.PKIDir = filepath.Join(dir, "pki")
	cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.Monitor = "127.0.0.1:-1", ""
	cfg.NATS.Embedded.StoreDir = filepath.Join(dir, "nats")
	cfg.Heartbeat, cfg.DeadAfter = config.Dur(500*time.Millisecond), config.Dur(1500*time.Millisecond)
	m := mastertest.Start(t, cfg)
	url := m.Embedded().ClientURL()
	enrollCopy := filepath.Join(t.TempDir(), "enroll.creds")
	b, err := os.ReadFile(filepath.Join(cfg.PKIDir, pki.FileEnrollCreds))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(enrollCopy, b, 0o600)

	pcfg := peeltest.Config(t, "web1", url)
	pcfg.Insecure, pcfg.EnrollCreds = false, enrollCopy
	h := peeltest.Launch(t, pcfg)
	cli := func(args ...string) (string, string, int) {
		return runCLI(t, append([]string{"--nats", url, "--pki-dir", cfg.PKIDir}, args...)...)
	}
	for {
		out, _, code := cli("enroll", "list", "--state", "pending")
		if code == 0 && strings.Contains(out, "web1") {
			break
		}
		select {
		case <-h.Exited():
			t.Fatalf("peel stopped: %v", h.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if out, errOut, code := cli("enroll", "accept", "web1", "-y"); code != 0 || !strings.Contains(out, "web1: pending → accepted") {
		t.Fatalf("accept: exit %d\n%s%s", code, out, errOut)
	}
	h.WaitReady(t, 60*time.Second)
	if out, errOut, code := cli("run", "web1", "test.ping"); code != 0 || !strings.Contains(out, "web1") {
		t.Fatalf("test.ping: exit %d\n%s%s", code, out, errOut)
	}
	start := time.Now()
	if out, errOut, code := cli("enroll", "revoke", "web1", "-y"); code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errOut)
	}
	testkit.Eventually(t, "the revoked peel cut off", pkitest.HangGuard, func() bool { return !h.Connected() })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cut off after %s, want within 5s", d)
	}
	tok := readFile(t, filepath.Join(pcfg.DataDir, "peel.jwt"))
	seed := readFile(t, filepath.Join(pcfg.DataDir, "peel.nk"))
	if _, err := nats.Connect(url, nats.UserJWTAndSeed(tok, seed), nats.MaxReconnects(0)); err == nil {
		t.Fatal("the revoked credentials still connect to the embedded server")
	}
}
