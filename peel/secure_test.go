package peel_test

import (
	"bufio"
	"encoding/json"
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

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
)

// secureFleet is the secure default in process: a PKI, an operator-mode
// server, a master with pki_dir, and a connection with the admin's
// credentials (full rights: it can publish on the job subjects, which is
// what an attacker on a leaf node or a misconfigured grant would have).
type secureFleet struct {
	s     *mastertest.Secure
	admin *pkitest.Conn
	js    jetstream.JetStream
	sign  *sig.Signer // the admin's key, for API requests
}

func startSecureFleet(t *testing.T) *secureFleet {
	t.Helper()
	s := mastertest.StartSecure(t)
	mastertest.Start(t, s.Config("m1"))
	admin := pkitest.Connect(t, s.URL, pki.CredsInboxPrefix(s.AdminCreds()), nats.UserCredentials(s.AdminCreds()))
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
	b, _ := json.Marshal(r)
	m := &nats.Msg{Subject: names.APISubject("job.run"), Data: b}
	if err := f.sign.Sign(sig.API, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := f.admin.RequestMsg(m, pkitest.HangGuard)
	if err != nil {
		t.Fatal(err)
	}
	var rr wire.RunResponse
	if json.Unmarshal(resp.Data, &rr) != nil || rr.JID == "" {
		t.Fatalf("job.run: %s %v", resp.Data, resp.Header)
	}
	return rr.JID
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
	deadline := time.Now().Add(pkitest.HangGuard)
	for metric(t, p, name) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v", name, atLeast)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func refused(reason string) string {
	return fmt.Sprintf(`zester_peel_dispatch_refused_total{reason=%q}`, reason)
}

// lines counts the lines of a file (0 when missing).
func lines(path string) int {
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
	if j.Status != wire.StatusDone || j.Returned != 1 || lines(marker) != 1 {
		t.Fatalf("signed job: %+v, marker lines %d", j, lines(marker))
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
	if n := lines(marker); n != 1 {
		t.Fatalf("the marker command ran %d times, want once", n)
	}

	// Every refusal reason was reported in job-events by the peel.
	cons, err := f.js.OrderedConsumer(ctx, names.StreamJobEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.PeelEventSubject(id, "dispatch-refused")}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"unsigned": false, "bad_signature": false, "role": false, "past_deadline": false, "no_deadline": false}
	deadline := time.Now().Add(pkitest.HangGuard)
	for missing := len(want); missing > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("refusal events: %v", want)
		}
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		var ev wire.Event
		json.Unmarshal(m.Data(), &ev)
		for r, seen := range want {
			if !seen && ev.Peel == id && strings.Contains(ev.Detail, "reason="+r+" ") {
				want[r] = true
				missing--
			}
		}
	}
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

// A secure peel without credentials does not start: it would have nothing
// to check the masters' signatures against.
func TestSecure_PeelWithoutCredsRefusesToStart(t *testing.T) {
	cfg := peel.DefaultConfig()
	cfg.ID, cfg.DataDir = "web1", t.TempDir()
	_, err := peel.New(cfg, peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err == nil || !strings.Contains(err.Error(), "nats.creds") {
		t.Fatalf("peel without credentials: %v", err)
	}
	cfg.NATS.Creds = filepath.Join(t.TempDir(), "missing.creds")
	if _, err := peel.New(cfg, peel.Options{Logger: testkit.Logger(), NoHTTP: true}); err == nil || !strings.Contains(err.Error(), "missing.creds") {
		t.Fatalf("missing credentials file: %v", err)
	}
}
