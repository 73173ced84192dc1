package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
)

// secureFleet is the secure default in process: a PKI, an operator-mode
// server, a master with pki_dir, secure peels, and a connection with the
// admin's credentials. That connection has full rights: it can publish on
// the job subjects, which is what an attacker on a leaf node or a
// misconfigured grant would have, and it can deliver requests signed by
// others, so the daemons' own checks are what is tested, not the NATS
// permissions.
type secureFleet struct {
	s     *mastertest.Secure
	admin *pkitest.Conn
	js    jetstream.JetStream
	sign  *sig.Signer // the admin's key, for API requests
}

// startSecureFleet starts the server, one master and secure peels with ids.
func startSecureFleet(t *testing.T, peels ...string) *secureFleet {
	t.Helper()
	s := mastertest.StartSecure(t)
	mastertest.Start(t, s.Config("m1"))
	for _, id := range peels {
		peeltest.Start(t, peeltest.SecureConfig(t, s.Secure, id))
	}
	return adminOf(t, s, pkitest.Connect(t, s.URL, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds())))
}

// adminOf is the fleet of s seen through admin, a connection with the
// admin's credentials.
func adminOf(t *testing.T, s *mastertest.Secure, admin *pkitest.Conn) *secureFleet {
	t.Helper()
	signer, err := sig.LoadSigner(s.AdminCreds())
	if err != nil {
		t.Fatal(err)
	}
	return &secureFleet{s: s, admin: admin, js: admin.JS, sign: signer}
}

// startPeel runs a secure peel with its HTTP endpoint on (its /metrics is
// how the refusals are read).
func (f *secureFleet) startPeel(t *testing.T, cfg peel.Config) *peeltest.Handle {
	t.Helper()
	cfg.HTTP = "127.0.0.1:0"
	return peeltest.Start(t, cfg)
}

// run submits a job with a request signed by the admin's key.
func (f *secureFleet) run(t *testing.T, r wire.RunRequest) string {
	t.Helper()
	code, detail, jid := f.call(t, f.sign, r)
	if jid == "" {
		t.Fatalf("job.run: %s %s", code, detail)
	}
	return jid
}

// job waits until jid is final.
func (f *secureFleet) job(t *testing.T, jid string) wire.Job {
	t.Helper()
	return waitJob(t, f.js, jid, pkitest.HangGuard)
}

func (f *secureFleet) signer(t *testing.T, spec pki.UserSpec) *sig.Signer {
	t.Helper()
	s, err := sig.LoadSigner(f.s.UserCreds(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call sends a job.run request signed by s (unsigned when s is nil) and
// returns the answer's error code ("" on success) and the job id.
func (f *secureFleet) call(t *testing.T, s *sig.Signer, r wire.RunRequest) (code, detail, jid string) {
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

func (f *secureFleet) send(t *testing.T, m *nats.Msg) (code, detail, jid string) {
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

var ping = wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)}

// The master runs a job only for a caller whose signature and role it
// verified, within the caller's limits, and records that caller.
func TestSecureAPI_RolesLimitsAndIdentity(t *testing.T) {
	f := startSecureFleet(t, "web1.example.com", "db1")
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
	f := startSecureFleet(t)
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
	testkit.Until(t, pkitest.HangGuard, func() error {
		fresh := &nats.Msg{Subject: m.Subject, Data: m.Data}
		dave.Sign(sig.API, fresh, time.Now())
		if code, detail, _ := f.send(t, fresh); code != "401" || !strings.Contains(detail, "revoked") {
			return fmt.Errorf("revoked user: %q %q", code, detail)
		}
		return nil
	})
}

// The master answers only inboxes: a peel that names another peel's facts
// key as the reply of an info request does not get the master to write
// there.
func TestSecureAPI_ReplyMustBeAnInbox(t *testing.T) {
	f := startSecureFleet(t, "web1.example.com", "db1")
	kv, err := f.js.KeyValue(pkitest.Ctx(t), names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	// The forged reply points at the facts key of a peel nobody runs, so
	// nothing but the master's answer could create it (a running peel's
	// own republish would change a real peel's revision on its own).
	const ghost = "ghost.example.com"
	if _, err := kv.Get(pkitest.Ctx(t), names.FactsKey(ghost)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("facts of %s before: %v, want not found", ghost, err)
	}
	creds := f.s.PeelCreds(t, "mallory")
	c := pkitest.Connect(t, f.s.URL, pki.CredsInboxPrefix(creds), nats.UserCredentials(creds))
	if err := c.PublishRequest(names.APISubject(names.EndpointInfo), names.KVSubjectPrefix(names.BucketFacts)+names.FactsKey(ghost), nil); err != nil {
		t.Fatal(err)
	}
	// The same connection's next request is answered, so the first was
	// handled (one subscription, in order) and not answered.
	if _, err := c.Request(names.APISubject(names.EndpointInfo), nil); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(pkitest.Ctx(t), names.FactsKey(ghost)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("facts of %s after a request with a forged reply: %v %v, want not found (the master answered into the bucket)", ghost, e, err)
	}
}

// embeddedConfig is a secure master with its embedded server on a random
// loopback port, its store and an empty pki_dir under dir.
func embeddedConfig(dir string) master.Config {
	cfg := master.DefaultConfig()
	cfg.ID, cfg.HTTP = "m1", ""
	cfg.PKIDir = filepath.Join(dir, "pki")
	cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.Monitor = "127.0.0.1:-1", ""
	cfg.NATS.Embedded.StoreDir = filepath.Join(dir, "nats")
	return cfg
}

// An embedded master with an empty pki_dir creates the PKI, logs where the
// admin's credentials are, and serves no unauthenticated client; its own
// peels connect with credentials from it.
func TestSecure_EmbeddedCreatesPKIAndRefusesAnonymous(t *testing.T) {
	cfg := embeddedConfig(t.TempDir())
	h := mastertest.Start(t, cfg)
	if _, err := os.Stat(filepath.Join(cfg.PKIDir, pki.FileAdminCreds)); err != nil {
		t.Fatalf("admin.creds: %v", err)
	}
	url := h.Embedded().ClientURL()
	if _, err := pkitest.Dial(url, ""); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("anonymous client: %v", err)
	}
	s := &mastertest.Secure{Secure: testkit.LoadSecure(t, cfg.PKIDir, url)}
	peeltest.Start(t, peeltest.SecureConfig(t, s.Secure, "web1"))
	admin := pkitest.Connect(t, url, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds()))
	f := adminOf(t, s, admin)
	if j := f.job(t, f.run(t, ping)); j.Status != wire.StatusDone || j.Returned != 1 {
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
	cfg := embeddedConfig(dir)
	cfg.TLS.Dir, cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key = tlsDir, pki.FileCA, pki.FileServerCert, pki.FileServerKey
	cfg.TLS.VerifyClients = true
	h := mastertest.Start(t, cfg)
	url := h.Embedded().ClientURL()
	s := &mastertest.Secure{Secure: testkit.LoadSecure(t, cfg.PKIDir, url)}
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
	f := adminOf(t, s, c)
	if j := f.job(t, f.run(t, ping)); j.Status != wire.StatusDone || j.Returned != 1 {
		t.Fatalf("job over TLS: %+v", j)
	}
}

// A return is its key's: a peel that stores, under its own key, a return
// whose body names another peel gets a failure counted, never a success
// for anyone, and the refusal is an event.
func TestSecure_ReturnNamingAnotherPeelRefused(t *testing.T) {
	f := startSecureFleet(t)
	const id = "mallory"
	cfg := peeltest.SecureConfig(t, f.s.Secure, id)
	peeltest.Start(t, cfg)
	// A second connection with the peel's own credentials (the peel is
	// compromised): it may write only its own keys.
	c := pkitest.Connect(t, f.s.URL, pki.CredsInboxPrefix(cfg.NATS.Creds), nats.UserCredentials(cfg.NATS.Creds))
	jid := f.run(t, wire.RunRequest{Target: wire.Target{Expr: id}, Function: "test.sleep", Args: json.RawMessage(`{"seconds":2}`), Timeout: wire.Duration(30 * time.Second)})
	// Forge once the job's part is written, as a peel can answer only a
	// dispatch: the master tracks the part's returns from before that
	// write. (A return stored before the part exists is counted by the
	// deadline's rescan, not at once.)
	jobs, err := f.js.KeyValue(pkitest.Ctx(t), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the job's part written", pkitest.HangGuard, func() bool {
		keys, err := jobs.ListKeysFiltered(pkitest.Ctx(t), names.JobPartFilter(jid))
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n > 0
	})
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

// metric reads one sample of a peel's /metrics (0 when absent).
func metric(t *testing.T, p *peeltest.Handle, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func waitMetric(t *testing.T, p *peeltest.Handle, name string, atLeast float64) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("%s at %v", name, atLeast), pkitest.HangGuard, func() bool { return metric(t, p, name) >= atLeast })
}

func refused(reason string) string {
	return fmt.Sprintf(`zester_peel_dispatch_refused_total{reason=%q}`, reason)
}

// lineCount counts the lines of a file (0 when missing).
func lineCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// A signed job runs once. A forged dispatch (unsigned, or signed but
// altered, or by a key that is not a master's) and a replay of the real one,
// before and after the peel restarts, are refused: the command never runs
// again, each refusal is counted by reason and reported in job-events.
func TestSecure_Dispatch_SignedRunsOnce_ForgedAndReplayedRefused(t *testing.T) {
	f := startSecureFleet(t)
	const id = "web1.example.com"
	cfg := peeltest.SecureConfig(t, f.s.Secure, id)
	p := f.startPeel(t, cfg)
	part := shard.Partition(id, shard.DefaultPartitions)
	ctx := pkitest.Ctx(t)

	// Record what the master sends to the partition, and the events.
	dispatches, err := f.admin.SubscribeSync(names.JobSubject(part))
	if err != nil {
		t.Fatal(err)
	}
	f.admin.Flush()
	marker := filepath.Join(t.TempDir(), "ran")
	jid := f.run(t, wire.RunRequest{Target: wire.Target{Expr: id}, Function: "cmd.run",
		Args: json.RawMessage(fmt.Sprintf(`["echo ran >> %s"]`, marker)), Timeout: wire.Duration(60 * time.Second)})
	j := waitJob(t, f.js, jid, pkitest.HangGuard)
	if j.Status != wire.StatusDone || j.Returned != 1 || lineCount(marker) != 1 {
		t.Fatalf("signed job: %+v, marker lines %d", j, lineCount(marker))
	}
	// Who asked is the admin's verified identity, not what a client typed.
	adminKey := f.sign.Key()
	if j.Requester != "admin" || j.RequesterKey != adminKey || j.RequesterRole != "admin" || j.Claimed != "" {
		t.Fatalf("requester %q key %q role %q claimed %q", j.Requester, j.RequesterKey, j.RequesterRole, j.Claimed)
	}
	real, err := dispatches.NextMsg(pkitest.HangGuard)
	if err != nil {
		t.Fatal(err)
	}
	if real.Header.Get(sig.HeaderSig) == "" {
		t.Fatalf("the master's dispatch is not signed: %v", real.Header)
	}

	// Forged: unsigned, with a fresh job id, running the marker command.
	forge := func(jid string, mutate func(*nats.Msg)) {
		t.Helper()
		d := wire.Dispatch{JID: jid, Function: "cmd.run", Args: json.RawMessage(fmt.Sprintf(`["echo forged >> %s"]`, marker)),
			Peels: []string{id}, Deadline: time.Now().Add(time.Minute)}
		b, _ := json.Marshal(d)
		m := &nats.Msg{Subject: names.JobSubject(part), Data: b, Header: nats.Header{}}
		mutate(m)
		if err := f.admin.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	forge("20260101000000000001", func(*nats.Msg) {})
	waitMetric(t, p, refused("unsigned"), 1)
	// Signed by the master, then altered: the real signature over other bytes.
	forge("20260101000000000002", func(m *nats.Msg) {
		for _, h := range []string{sig.HeaderSigner, sig.HeaderSig, sig.HeaderTime} {
			m.Header.Set(h, real.Header.Get(h))
		}
	})
	waitMetric(t, p, refused("bad_signature"), 1)
	// Signed correctly, but by the admin: not a master.
	forge("20260101000000000003", func(m *nats.Msg) {
		if err := f.sign.Sign(sig.Dispatch, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	waitMetric(t, p, refused("role"), 1)
	// Signed by the master's key but past its deadline, or with none.
	master, err := sig.LoadSigner(f.s.PKI.MasterCreds)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		jid      string
		deadline time.Time
		reason   string
	}{{"20260101000000000004", time.Now().Add(-time.Second), "past_deadline"}, {"20260101000000000005", time.Time{}, "no_deadline"}} {
		d := wire.Dispatch{JID: c.jid, Function: "cmd.run", Args: json.RawMessage(fmt.Sprintf(`["echo late >> %s"]`, marker)),
			All: true, Deadline: c.deadline}
		b, _ := json.Marshal(d)
		m := &nats.Msg{Subject: names.JobSubject(part), Data: b}
		if err := master.Sign(sig.Dispatch, m, time.Now()); err != nil {
			t.Fatal(err)
		}
		f.admin.PublishMsg(m)
		waitMetric(t, p, refused(c.reason), 1)
	}

	// Replays of the real dispatch, byte for byte: while the peel runs, and
	// after it restarted on the same data_dir.
	replay := func() {
		t.Helper()
		if err := f.admin.PublishMsg(&nats.Msg{Subject: real.Subject, Data: real.Data, Header: real.Header}); err != nil {
			t.Fatal(err)
		}
	}
	dup := metric(t, p, "zester_peel_duplicate_dispatch_total")
	replay()
	waitMetric(t, p, "zester_peel_duplicate_dispatch_total", dup+1)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	// The store's copy of the return is gone, so only the seen set can
	// refuse the replay after the restart.
	kvR, err := f.js.KeyValue(ctx, names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	if err := kvR.Purge(ctx, names.ReturnKey(jid, id)); err != nil {
		t.Fatal(err)
	}
	p = f.startPeel(t, cfg)
	replay()
	waitMetric(t, p, "zester_peel_duplicate_dispatch_total", 1)
	if n := lineCount(marker); n != 1 {
		t.Fatalf("the marker command ran %d times, want once", n)
	}

	// Every refusal reason was reported in job-events by the peel.
	var reasons []string
	for _, r := range []string{"unsigned", "bad_signature", "role", "past_deadline", "no_deadline"} {
		reasons = append(reasons, "reason="+r+" ")
	}
	awaitPeelEvents(t, f.js, id, "dispatch-refused", pkitest.HangGuard, reasons, strings.Contains)
}

// Control messages act only when a master signed them, recently.
func TestSecure_Control_SignedOnly(t *testing.T) {
	f := startSecureFleet(t)
	const id = "db1"
	p := f.startPeel(t, peeltest.SecureConfig(t, f.s.Secure, id))
	part := shard.Partition(id, shard.DefaultPartitions)
	master, err := sig.LoadSigner(f.s.PKI.MasterCreds)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.Control{Op: wire.ControlRepublishFacts, Peels: []string{id}})
	send := func(sign func(*nats.Msg)) {
		t.Helper()
		m := &nats.Msg{Subject: names.ControlSubject(part), Data: body}
		sign(m)
		if err := f.admin.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	const published = "zester_peel_fact_publishes_total"
	waitMetric(t, p, published, 1)
	before := metric(t, p, published)
	send(func(*nats.Msg) {})
	waitMetric(t, p, `zester_peel_control_refused_total{reason="unsigned"}`, 1)
	send(func(m *nats.Msg) { master.Sign(sig.Control, m, time.Now().Add(-10*time.Minute)) })
	waitMetric(t, p, `zester_peel_control_refused_total{reason="stale"}`, 1)
	if got := metric(t, p, published); got != before {
		t.Fatalf("facts published %v times after refused control messages", got-before)
	}
	send(func(m *nats.Msg) { master.Sign(sig.Control, m, time.Now()) })
	waitMetric(t, p, published, before+1)
}
