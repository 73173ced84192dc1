package master_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
)

// apiFixture: a secure master, two secure peels, the admin's connection (it
// may publish anything, so it can deliver requests signed by others: the
// master's own checks are what is tested, not the NATS permissions).
type apiFixture struct {
	s     *mastertest.Secure
	admin *pkitest.Conn
	js    jetstream.JetStream
}

func startAPIFixture(t *testing.T, peels ...string) *apiFixture {
	t.Helper()
	s := mastertest.StartSecure(t)
	mastertest.Start(t, s.Config("m1"))
	for _, id := range peels {
		peeltest.Start(t, peeltest.SecureConfig(t, s.Secure, id))
	}
	admin := pkitest.Connect(t, s.URL, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds()))
	return &apiFixture{s: s, admin: admin, js: admin.JS}
}

func (f *apiFixture) signer(t *testing.T, spec pki.UserSpec) *sig.Signer {
	t.Helper()
	s, err := sig.LoadSigner(f.s.UserCreds(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call sends a job.run request signed by s (unsigned when s is nil) and
// returns the answer's error code ("" on success) and the job id.
func (f *apiFixture) call(t *testing.T, s *sig.Signer, r wire.RunRequest) (code, detail, jid string) {
	t.Helper()
	b, _ := json.Marshal(r)
	m := &nats.Msg{Subject: names.APISubject("job.run"), Data: b}
	if s != nil {
		if err := s.Sign(sig.API, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return f.send(t, m)
}

func (f *apiFixture) send(t *testing.T, m *nats.Msg) (code, detail, jid string) {
	t.Helper()
	resp, err := f.admin.RequestMsg(m, pkitest.HangGuard)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Header.Get(micro.ErrorCodeHeader); c != "" {
		return c, resp.Header.Get(micro.ErrorHeader), ""
	}
	var rr wire.RunResponse
	json.Unmarshal(resp.Data, &rr)
	return "", "", rr.JID
}

func (f *apiFixture) job(t *testing.T, jid string) wire.Job {
	t.Helper()
	kv, err := f.js.KeyValue(pkitest.Ctx(t), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(pkitest.HangGuard)
	for {
		if e, err := kv.Get(pkitest.Ctx(t), names.JobKey(jid)); err == nil {
			var j wire.Job
			if json.Unmarshal(e.Value(), &j) == nil && wire.Final(j.Status) {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not final", jid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var ping = wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)}

// The master runs a job only for a caller whose signature and role it
// verified, within the caller's limits, and records that caller.
func TestSecureAPI_RolesLimitsAndIdentity(t *testing.T) {
	f := startAPIFixture(t, "web1.example.com", "db1")
	operator := f.signer(t, pki.UserSpec{Name: "alice", Role: pki.RoleOperator})
	limited := f.signer(t, pki.UserSpec{Name: "bob", Role: pki.RoleOperator, Targets: []string{"web*"}, Functions: []string{"test.*"}})
	readonly := f.signer(t, pki.UserSpec{Name: "carol", Role: pki.RoleReadonly})
	cases := []struct {
		name     string
		s        *sig.Signer
		req      wire.RunRequest
		code     string
		detail   string
		expected int
		who      string
	}{
		{"operator runs everywhere", operator, ping, "", "", 2, "alice"},
		{"unsigned refused", nil, ping, "401", "unsigned", 0, ""},
		{"readonly refused by the master", readonly, ping, "403", "role readonly", 0, ""},
		{"function outside the limit", limited, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "cmd.run", Args: json.RawMessage(`["id"]`)}, "403", "may run only test.*", 0, ""},
		{"target narrowed to the limit", limited, ping, "", "", 1, "bob"},
		{"a typed requester is not an identity", operator, wire.RunRequest{Target: ping.Target, Function: ping.Function, Requester: "root@elsewhere"}, "", "", 2, "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, detail, jid := f.call(t, tc.s, tc.req)
			if code != tc.code || !strings.Contains(detail, tc.detail) {
				t.Fatalf("code %q detail %q, want %q containing %q", code, detail, tc.code, tc.detail)
			}
			if code != "" {
				return
			}
			j := f.job(t, jid)
			if j.Status != wire.StatusDone || j.Expected != tc.expected || j.Returned != tc.expected {
				t.Fatalf("job %+v, want %d expected and returned", j, tc.expected)
			}
			if j.Requester != tc.who || j.RequesterKey != tc.s.Key() || j.Claimed != "" {
				t.Fatalf("requester %q key %q claimed %q, want %s %s", j.Requester, j.RequesterKey, j.Claimed, tc.who, tc.s.Key())
			}
			if tc.who == "bob" && (j.AskedTarget == nil || j.AskedTarget.Expr != "*" || !strings.Contains(j.Target.Expr, "web*")) {
				t.Fatalf("limited job target %+v asked %+v", j.Target, j.AskedTarget)
			}
		})
	}
	// The created event names the verified caller.
	cons, err := f.js.OrderedConsumer(pkitest.Ctx(t), names.StreamJobEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"zester.events.job.*.created"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(pkitest.HangGuard))
	if err != nil {
		t.Fatal(err)
	}
	var ev wire.Event
	json.Unmarshal(m.Data(), &ev)
	if !strings.Contains(ev.Detail, "requester=alice role=operator key="+operator.Key()) {
		t.Fatalf("created event: %s", ev.Detail)
	}
}

// A signed request is good once, inside its time window, while its
// credentials are not revoked.
func TestSecureAPI_ReplayStaleAndRevoked(t *testing.T) {
	f := startAPIFixture(t)
	dave := f.signer(t, pki.UserSpec{Name: "dave", Role: pki.RoleOperator})
	b, _ := json.Marshal(wire.RunRequest{Target: wire.Target{Expr: "nobody"}, Function: "test.ping"})
	m := &nats.Msg{Subject: names.APISubject("job.run"), Data: b}
	dave.Sign(sig.API, m, time.Now())
	if code, detail, _ := f.send(t, m); code != "" {
		t.Fatalf("first use: %s %s", code, detail)
	}
	again := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if code, detail, _ := f.send(t, again); code != "401" || !strings.Contains(detail, "replayed") {
		t.Fatalf("replay: %q %q", code, detail)
	}
	old := &nats.Msg{Subject: m.Subject, Data: m.Data}
	dave.Sign(sig.API, old, time.Now().Add(-10*time.Minute))
	if code, detail, _ := f.send(t, old); code != "401" || !strings.Contains(detail, "window") {
		t.Fatalf("stale: %q %q", code, detail)
	}
	// A revocation written to account.jwt by another process (another
	// master, an operator's tool) is taken by the master within a second.
	if _, err := f.s.PKI.Revoke(dave.Key()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(pkitest.HangGuard)
	for {
		fresh := &nats.Msg{Subject: m.Subject, Data: m.Data}
		dave.Sign(sig.API, fresh, time.Now())
		code, detail, _ := f.send(t, fresh)
		if code == "401" && strings.Contains(detail, "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked user: %q %q", code, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The master answers only inboxes: a peel that names another peel's facts
// key as the reply of an info request does not get the master to write
// there.
func TestSecureAPI_ReplyMustBeAnInbox(t *testing.T) {
	f := startAPIFixture(t, "web1.example.com", "db1")
	kv, err := f.js.KeyValue(pkitest.Ctx(t), names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	before, err := kv.Get(pkitest.Ctx(t), names.FactsKey("db1"))
	if err != nil {
		t.Fatal(err)
	}
	creds := f.s.PeelCreds(t, "mallory")
	c := pkitest.Connect(t, f.s.URL, pki.CredsInboxPrefix(creds), nats.UserCredentials(creds))
	if err := c.PublishRequest(names.APISubject("info"), names.KVSubjectPrefix(names.BucketFacts)+"db1", nil); err != nil {
		t.Fatal(err)
	}
	// The same connection's next request is answered, so the first was
	// handled (one subscription, in order) and not answered.
	if _, err := c.Request(names.APISubject("info"), nil); err != nil {
		t.Fatal(err)
	}
	after, err := kv.Get(pkitest.Ctx(t), names.FactsKey("db1"))
	if err != nil || after.Revision() != before.Revision() {
		t.Fatalf("facts of db1: revision %d, was %d (%v)", after.Revision(), before.Revision(), err)
	}
}

// An embedded master with an empty pki_dir creates the PKI, logs where the
// admin's credentials are, and serves no unauthenticated client; its own
// peels connect with credentials from it.
func TestSecure_EmbeddedCreatesPKIAndRefusesAnonymous(t *testing.T) {
	dir := t.TempDir()
	cfg := master.DefaultConfig()
	cfg.ID, cfg.HTTP = "m1", ""
	cfg.PKIDir = filepath.Join(dir, "pki")
	cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.Monitor = "127.0.0.1:-1", ""
	cfg.NATS.Embedded.StoreDir = filepath.Join(dir, "nats")
	h := mastertest.Start(t, cfg)
	if _, err := os.Stat(filepath.Join(cfg.PKIDir, pki.FileAdminCreds)); err != nil {
		t.Fatalf("admin.creds: %v", err)
	}
	url := h.Embedded().ClientURL()
	if _, err := pkitest.Dial(url, ""); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("anonymous client: %v", err)
	}
	s := &mastertest.Secure{Secure: &testkit.Secure{Dir: cfg.PKIDir, URL: url}}
	if s.PKI, _ = pki.Load(cfg.PKIDir); s.PKI == nil {
		t.Fatal("pki.Load")
	}
	peeltest.Start(t, peeltest.SecureConfig(t, s.Secure, "web1"))
	admin := pkitest.Connect(t, url, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds()))
	f := &apiFixture{s: s, admin: admin, js: admin.JS}
	signer, err := sig.LoadSigner(s.AdminCreds())
	if err != nil {
		t.Fatal(err)
	}
	_, _, jid := f.call(t, signer, ping)
	if j := f.job(t, jid); j.Status != wire.StatusDone || j.Returned != 1 {
		t.Fatalf("job: %+v", j)
	}
	// A second start loads the same PKI (the admin's credentials still work).
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	mastertest.Start(t, cfg)
}

// TLS from the tls: block: the embedded server serves TLS with a client
// certificate required, a peel with the CA and its client certificate
// connects and runs a job, a client that does not trust the CA or has no
// certificate is refused.
func TestSecure_TLS_EmbeddedServerAndPeel(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if _, err := pki.InitTLS(tlsDir, []string{"127.0.0.1", "localhost"}, 0); err != nil {
		t.Fatal(err)
	}
	cfg := master.DefaultConfig()
	cfg.ID, cfg.HTTP = "m1", ""
	cfg.PKIDir = filepath.Join(dir, "pki")
	cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.Monitor = "127.0.0.1:-1", ""
	cfg.NATS.Embedded.StoreDir = filepath.Join(dir, "nats")
	cfg.TLS.Dir, cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key = tlsDir, pki.FileCA, pki.FileServerCert, pki.FileServerKey
	cfg.TLS.VerifyClients = true
	h := mastertest.Start(t, cfg)
	url := h.Embedded().ClientURL()
	s := &mastertest.Secure{Secure: &testkit.Secure{Dir: cfg.PKIDir, URL: url}}
	var err error
	if s.PKI, err = pki.Load(cfg.PKIDir); err != nil {
		t.Fatal(err)
	}
	pc := peeltest.SecureConfig(t, s.Secure, "web1")
	pc.TLS.Dir, pc.TLS.CA, pc.TLS.Cert, pc.TLS.Key = tlsDir, pki.FileCA, pki.FileClientCert, pki.FileClientKey
	peeltest.Start(t, pc)

	admin := nats.UserCredentials(s.AdminCreds())
	if _, err := pkitest.Dial(url, "", admin); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client that does not trust the CA: %v", err)
	}
	if _, err := pkitest.Dial(url, "", admin, nats.RootCAs(filepath.Join(tlsDir, pki.FileCA))); err == nil {
		t.Fatal("client without a certificate connected to a server that verifies clients")
	}
	c := pkitest.Connect(t, url, pki.CredsInboxPrefix(s.AdminCreds()), admin, nats.RootCAs(filepath.Join(tlsDir, pki.FileCA)),
		nats.ClientCert(filepath.Join(tlsDir, pki.FileClientCert), filepath.Join(tlsDir, pki.FileClientKey)))
	if !c.TLSRequired() {
		t.Fatal("connection without TLS")
	}
	f := &apiFixture{s: s, admin: c, js: c.JS}
	signer, err := sig.LoadSigner(s.AdminCreds())
	if err != nil {
		t.Fatal(err)
	}
	_, _, jid := f.call(t, signer, ping)
	if j := f.job(t, jid); j.Status != wire.StatusDone || j.Returned != 1 {
		t.Fatalf("job over TLS: %+v", j)
	}
}

// A return is its key's: a peel that stores, under its own key, a return
// whose body names another peel gets a failure counted, never a success
// for anyone, and the refusal is an event.
func TestSecure_ReturnNamingAnotherPeelRefused(t *testing.T) {
	f := startAPIFixture(t)
	const id = "mallory"
	cfg := peeltest.SecureConfig(t, f.s.Secure, id)
	peeltest.Start(t, cfg)
	// A second connection with the peel's own credentials (the peel is
	// compromised): it may write only its own keys.
	c := pkitest.Connect(t, f.s.URL, pki.CredsInboxPrefix(cfg.NATS.Creds), nats.UserCredentials(cfg.NATS.Creds))
	signer, err := sig.LoadSigner(f.s.AdminCreds())
	if err != nil {
		t.Fatal(err)
	}
	_, _, jid := f.call(t, signer, wire.RunRequest{Target: wire.Target{Expr: id}, Function: "test.sleep", Args: json.RawMessage(`{"seconds":2}`), Timeout: wire.Duration(30 * time.Second)})
	forged, _ := json.Marshal(wire.Return{JID: jid, Peel: "web1.example.com", Function: "test.sleep", Success: true})
	m := &nats.Msg{Subject: names.ReturnSubjectPrefix + names.ReturnKey(jid, id), Data: forged, Header: nats.Header{}}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	m.Header.Set(wire.HeaderOK, "1")
	if _, err := c.JS.PublishMsg(pkitest.Ctx(t), m); err != nil {
		t.Fatalf("store the forged return under its own key: %v", err)
	}
	j := f.job(t, jid)
	if j.Returned != 1 || j.Failed != 1 {
		t.Fatalf("job %+v: want the forged return counted as a failure", j)
	}
	cons, err := f.js.OrderedConsumer(pkitest.Ctx(t), names.StreamJobEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.JobEventSubject(jid, "return-refused")}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := cons.Next(jetstream.FetchMaxWait(pkitest.HangGuard))
	if err != nil || !strings.Contains(string(ev.Data()), `names peel \"web1.example.com\"`) {
		t.Fatalf("return-refused event: %v %s", err, ev.Data())
	}
}
