package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// operatorMode is a PKI made by `zester pki init`, a real server in operator
// mode from it, and Zester's buckets created by the masters' credentials.
type operatorMode struct {
	dir    string
	p      *pki.PKI
	srv    *topology.Server
	master *pkitest.Conn
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return out.String(), errb.String(), code
}

func startOperatorMode(t *testing.T) *operatorMode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	out, errOut, code := runCLI(t, "pki", "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("pki init: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"OFFLINE", pki.FileOperatorSeed, pki.FileAccountSigningSeed, pki.FileEnrollCreds} {
		if !strings.Contains(out, want) {
			t.Errorf("pki init output lacks %q:\n%s", want, out)
		}
	}
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	om := &operatorMode{dir: dir, p: p, srv: pkitest.StartServer(t, p)}
	om.master = pkitest.Connect(t, om.srv.ClientURL(), "", nats.UserCredentials(p.MasterCreds))
	if err := master.Bootstrap(pkitest.Ctx(t), om.master.JS, master.Layout{}); err != nil {
		t.Fatalf("bootstrap buckets with master.creds: %v", err)
	}
	return om
}

// peel issues a peel user via IssuePeel (as enrollment will) and connects it.
func (om *operatorMode) peel(t *testing.T, id string) *pkitest.Conn {
	t.Helper()
	kp, pub := testkit.NewKey(t, nkeys.CreateUser)
	seed, _ := kp.Seed()
	tok, err := om.p.IssuePeel(pki.PeelSpec{ID: id, Partitions: shard.DefaultPartitions}, pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return pkitest.Connect(t, om.srv.ClientURL(), names.PeelInboxPrefix(id), nats.UserJWTAndSeed(tok, string(seed)))
}

func (om *operatorMode) creds(t *testing.T, path string) *pkitest.Conn {
	t.Helper()
	return pkitest.Connect(t, om.srv.ClientURL(), pki.CredsInboxPrefix(path), nats.UserCredentials(path))
}

func kvOf(t *testing.T, c *pkitest.Conn, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := c.JS.KeyValue(pkitest.Ctx(t), bucket)
	if err != nil {
		t.Fatalf("bind %s: %v", bucket, err)
	}
	return kv
}

func TestPKIInit_RefusesToOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, errOut, code := runCLI(t, "pki", "init", "--dir", dir); code != 0 {
		t.Fatalf("first init: exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, pki.FileAccountJWT))
	_, errOut, code := runCLI(t, "pki", "init", "--dir", dir)
	if code != ExitError || !strings.Contains(errOut, filepath.Join(dir, pki.FileOperatorSeed)) || !strings.Contains(errOut, "refusing to overwrite") {
		t.Fatalf("second init: exit %d, %q; want exit 3 naming %s", code, errOut, pki.FileOperatorSeed)
	}
	after, _ := os.ReadFile(filepath.Join(dir, pki.FileAccountJWT))
	if !bytes.Equal(before, after) {
		t.Fatal("second init changed account.jwt")
	}
}

func TestOperatorMode_NoUnauthenticatedClient(t *testing.T) {
	om := startOperatorMode(t)
	_, err := nats.Connect(om.srv.ClientURL(), nats.MaxReconnects(0))
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unauthenticated connect: %v, want an authorization violation", err)
	}
	// A user of an account the operator never signed is refused too.
	foreignAcc, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	seed, _ := user.Seed()
	tok, err := jwt.NewUserClaims(upub).Encode(foreignAcc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(om.srv.ClientURL(), nats.MaxReconnects(0), nats.UserJWTAndSeed(tok, string(seed))); err == nil {
		t.Fatal("a user of a foreign account connected")
	}
}

func TestOperatorMode_AdminCreatesBucketAndReadsAnything(t *testing.T) {
	om := startOperatorMode(t)
	admin := om.creds(t, filepath.Join(om.dir, pki.FileAdminCreds))
	ctx := pkitest.Ctx(t)
	kv, err := admin.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "scratch"})
	if err != nil {
		t.Fatalf("admin create bucket: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("get: %v", err)
	}
	if len(admin.Violations()) != 0 {
		t.Fatalf("admin saw violations: %q", admin.Violations())
	}
}

func TestOperatorMode_EnrollCredsCanOnlyEnroll(t *testing.T) {
	om := startOperatorMode(t)
	pkitest.Responder(t, om.master, names.SubjectEnroll)
	enroll := om.creds(t, filepath.Join(om.dir, pki.FileEnrollCreds))
	if got := pki.CredsInboxPrefix(filepath.Join(om.dir, pki.FileEnrollCreds)); got != names.EnrollInboxPrefix {
		t.Fatalf("enroll inbox prefix %q", got)
	}
	if m, err := enroll.Request(names.SubjectEnroll, []byte(`{"id":"web1"}`)); err != nil || string(m.Data) != "ok" {
		t.Fatalf("enroll request: %v", err)
	}
	for _, subj := range []string{
		names.APISubject("info"), names.APISubject("job.run"), names.JobSubject(0),
		names.KVSubjectPrefix(names.BucketFacts) + "web1", names.JSStreamInfo(names.KVStream(names.BucketFacts)),
		names.JSStreamInfo(names.KVStream(names.BucketEnrollments)),
	} {
		enroll.PublishDenied(t, subj)
	}
	for _, subj := range []string{"_INBOX.>", names.JobSubject(0), names.SubjectEnroll, names.PeelInboxPrefix("web1") + ".>"} {
		enroll.SubscribeDenied(t, subj)
	}
	// Its payload is capped: an enrollment request is small.
	if err := enroll.Publish(names.SubjectEnroll, make([]byte, pki.EnrollPayloadMax+1)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("oversized enroll publish: %v, want ErrMaxPayload", err)
	}
}

// TestOperatorMode_PeelOwnKeysOnly: a peel user issued by IssuePeel reaches
// its own keys and subjects and nothing of another peel's. The two ids are
// chosen for the dotted-id trap: "example.com" is a suffix of
// "web1.example.com", so a pattern that matched by suffix would leak.
func TestOperatorMode_PeelOwnKeysOnly(t *testing.T) {
	om := startOperatorMode(t)
	const idA, idB = "web1.example.com", "example.com"
	ctx := pkitest.Ctx(t)
	a, b := om.peel(t, idA), om.peel(t, idB)
	partA := shard.Partition(idA, shard.DefaultPartitions)
	otherPart := (partA + 1) % shard.DefaultPartitions

	// The masters' side: B's secret, and a responder for the info endpoint.
	mSecrets := kvOf(t, om.master, names.BucketSecrets)
	for _, id := range []string{idA, idB} {
		if _, err := mSecrets.Put(ctx, names.SecretsKey(id), []byte("sealed for "+id)); err != nil {
			t.Fatal(err)
		}
	}
	pkitest.Responder(t, om.master, names.APISubject("info"))

	// Allowed: each peel's own facts, returns, secrets, basket, events,
	// written with plain publishes and read with direct gets (a peel binds
	// no bucket: stream info is not granted).
	for _, c := range []struct {
		conn *pkitest.Conn
		id   string
	}{{a, idA}, {b, idB}} {
		if _, err := peelproto.PutKV(ctx, c.conn.JS, names.BucketFacts, names.FactsKey(c.id), []byte("facts of "+c.id)); err != nil {
			t.Fatalf("%s puts its facts: %v", c.id, err)
		}
	}
	const jid = "20260101000000000000"
	ret, err := peelproto.ReturnMsg(&wire.Return{JID: jid, Peel: idA, Success: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := peelproto.PublishReturn(ctx, a.JS, ret); err != nil {
		t.Fatalf("A stores its return: %v", err)
	}
	if err := peelproto.PublishReturn(ctx, a.JS, ret); err != nil {
		t.Fatalf("A stores its return again (already stored is success): %v", err)
	}
	if _, _, err := peelproto.GetKV(ctx, a.Conn, names.BucketJobReturns, names.ReturnKey(jid, idA)); err != nil {
		t.Fatalf("A reads its own return: %v", err)
	}
	if _, _, err := peelproto.GetKV(ctx, a.Conn, names.BucketJobReturns, names.ReturnKey("20260101000000000001", idA)); !errors.Is(err, peelproto.ErrKeyNotFound) {
		t.Fatalf("A reads a return it never stored: %v, want not found", err)
	}
	if v, _, err := peelproto.GetKV(ctx, a.Conn, names.BucketSecrets, names.SecretsKey(idA)); err != nil || string(v) != "sealed for "+idA {
		t.Fatalf("A reads its own secret: %v", err)
	}
	if _, err := peelproto.PutKV(ctx, a.JS, names.BucketBasket, names.BasketKey(idA, "ips"), []byte("10.0.0.1")); err != nil {
		t.Fatalf("A puts its basket value: %v", err)
	}
	if _, err := a.JS.Publish(ctx, names.PeelEventSubject(idA, "started"), []byte("{}")); err != nil {
		t.Fatalf("A stores an event: %v", err)
	}
	if m, err := a.Request(names.APISubject("info"), nil); err != nil || string(m.Data) != "ok" {
		t.Fatalf("A asks for info: %v", err)
	}
	// Jobs reach A on its partition; its peel→master messages are mapped
	// to its partition by the account JWT's mapping.
	jobs, err := a.SubscribeSync(names.JobSubject(partA))
	if err != nil {
		t.Fatal(err)
	}
	in, err := om.master.SubscribeSync(names.SubjectInPartitionedPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	a.Flush()
	om.master.Flush()
	if err := om.master.Publish(names.JobSubject(partA), []byte("job")); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.NextMsg(pkitest.HangGuard); err != nil {
		t.Fatalf("A receives its partition's job: %v", err)
	}
	if err := a.Publish(shard.InSubject(idA, "hello"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := in.NextMsg(pkitest.HangGuard); err != nil || m.Subject != shard.PartitionedSubject(partA, idA, "hello") {
		t.Fatalf("A's peel→master message: %v %v, want it on %s; violations %q", m, err, shard.PartitionedSubject(partA, idA, "hello"), a.Violations())
	}

	// Denied: everything of the other peel, in both directions.
	factsB := names.KVSubjectPrefix(names.BucketFacts) + names.FactsKey(idB)
	a.ExpectDenied(t, factsB, func(ctx context.Context) {
		peelproto.PutKV(ctx, a.JS, names.BucketFacts, names.FactsKey(idB), []byte("forged"))
	})
	factsA := names.KVSubjectPrefix(names.BucketFacts) + names.FactsKey(idA)
	b.ExpectDenied(t, factsA, func(ctx context.Context) {
		peelproto.PutKV(ctx, b.JS, names.BucketFacts, names.FactsKey(idA), []byte("forged"))
	})
	forged, _ := peelproto.ReturnMsg(&wire.Return{JID: jid, Peel: idB, Success: true})
	a.ExpectDenied(t, forged.Subject, func(ctx context.Context) { peelproto.PublishReturn(ctx, a.JS, forged) })
	forgedA, _ := peelproto.ReturnMsg(&wire.Return{JID: jid, Peel: idA, Success: false})
	forgedA.Subject = names.ReturnSubjectPrefix + names.ReturnKey("x", idA) // B's pattern *.example.com must not match x.web1.example.com
	b.ExpectDenied(t, forgedA.Subject, func(ctx context.Context) { peelproto.PublishReturn(ctx, b.JS, forgedA) })
	a.ExpectDenied(t, names.JSDirectGetKey(names.BucketSecrets, names.SecretsKey(idB)), func(ctx context.Context) {
		peelproto.GetKV(ctx, a.Conn, names.BucketSecrets, names.SecretsKey(idB))
	})
	a.ExpectDenied(t, names.JSDirectGetKey(names.BucketJobReturns, names.ReturnKey(jid, idB)), func(ctx context.Context) {
		peelproto.GetKV(ctx, a.Conn, names.BucketJobReturns, names.ReturnKey(jid, idB))
	})
	// No grant that carries the key in the body, and no consumer at all.
	for _, subj := range []string{
		names.JSDirectGet(names.KVStream(names.BucketSecrets)),
		names.JSMsgGet(names.KVStream(names.BucketSecrets)),
		names.JSConsumerCreate(names.KVStream(names.BucketSecrets)),
		names.JSStreamInfo(names.KVStream(names.BucketJobs)),
		// Stream info lists key names: no bucket, not even its own.
		names.JSStreamInfo(names.KVStream(names.BucketFacts)),
		names.JSStreamInfo(names.KVStream(names.BucketSecrets)),
		names.JSStreamInfo(names.KVStream(names.BucketJobReturns)),
		names.APISubject("job.run"),
		names.JobSubject(partA), // a forged dispatch
		names.ControlSubject(partA),
		names.PeelEventSubject(idB, "started"),
		names.KVSubjectPrefix(names.BucketBasket) + names.BasketKey(idB, "ips"),
	} {
		a.PublishDenied(t, subj)
	}
	// Sent as B's peel→master message, denied as the mapped subject (the
	// server checks permissions after the account's mapping).
	a.ExpectDenied(t, shard.PartitionedSubject(shard.Partition(idB, shard.DefaultPartitions), idB, "hello"), func(context.Context) {
		a.Publish(shard.InSubject(idB, "hello"), []byte("x"))
		a.Flush()
	})
	consumerOn := func(filter string) func(string) bool {
		prefix := names.JSConsumerCreate(names.KVStream(names.BucketFacts)) + "."
		return func(s string) bool { return strings.HasPrefix(s, prefix) && strings.HasSuffix(s, filter) }
	}
	a.ExpectDeniedMatch(t, "a consumer on B's facts", consumerOn(factsB), func(ctx context.Context) {
		a.JS.CreateOrUpdateConsumer(ctx, names.KVStream(names.BucketFacts), jetstream.ConsumerConfig{FilterSubject: factsB})
	})
	for _, subj := range []string{names.JobSubject(otherPart), names.ControlSubject(otherPart), "_INBOX.>", names.PeelInboxPrefix(idB) + ".>", names.SubjectInPartitionedPrefix + ".>", names.APIPrefix + ".>"} {
		a.SubscribeDenied(t, subj)
	}

	// What the masters see: B's facts and returns untouched.
	if e, err := kvOf(t, om.master, names.BucketFacts).Get(ctx, names.FactsKey(idB)); err != nil || string(e.Value()) != "facts of "+idB {
		t.Fatalf("B's facts after A's attempt: %v %q", err, e.Value())
	}
	if _, err := kvOf(t, om.master, names.BucketJobReturns).Get(ctx, names.ReturnKey(jid, idB)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("B's return after A's forgery: %v, want not found", err)
	}
}

func TestOperatorMode_Roles(t *testing.T) {
	om := startOperatorMode(t)
	ctx := pkitest.Ctx(t)
	pkitest.Responder(t, om.master, names.APISubject("info"))
	pkitest.Responder(t, om.master, names.APISubject("job.run"))
	if _, err := kvOf(t, om.master, names.BucketFacts).Put(ctx, "web1", []byte("facts")); err != nil {
		t.Fatal(err)
	}
	users := map[pki.Role]string{}
	for _, r := range pki.Roles() {
		path := filepath.Join(t.TempDir(), string(r)+".creds")
		if out, errOut, code := runCLI(t, "pki", "user", "add", "u-"+string(r), "--role", string(r), "--dir", om.dir, "--out", path); code != 0 || !strings.Contains(out, path) {
			t.Fatalf("user add %s: exit %d: %s%s", r, code, out, errOut)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", path, err, st.Mode())
		}
		users[r] = path
	}
	ro, op, admin := om.creds(t, users[pki.RoleReadonly]), om.creds(t, users[pki.RoleOperator]), om.creds(t, users[pki.RoleAdmin])

	// Everyone reads facts and asks for info; readonly cannot run a job.
	for _, c := range []*pkitest.Conn{ro, op, admin} {
		if e, err := kvOf(t, c, names.BucketFacts).Get(ctx, "web1"); err != nil || string(e.Value()) != "facts" {
			t.Fatalf("read facts: %v", err)
		}
		if _, err := c.Request(names.APISubject("info"), nil); err != nil {
			t.Fatalf("info: %v", err)
		}
	}
	ro.PublishDenied(t, names.APISubject("job.run"))
	for _, c := range []*pkitest.Conn{op, admin} {
		if m, err := c.Request(names.APISubject("job.run"), []byte("{}")); err != nil || string(m.Data) != "ok" {
			t.Fatalf("job.run: %v", err)
		}
	}
	// Neither limited role writes a key, publishes a dispatch, reads
	// secrets or enrollments, or can answer as a master.
	for _, c := range []*pkitest.Conn{ro, op} {
		for _, subj := range []string{
			names.KVSubjectPrefix(names.BucketFacts) + "web1",
			names.KVSubjectPrefix(names.BucketJobs) + "x",
			names.JobSubject(0),
			names.JSStreamInfo(names.KVStream(names.BucketSecrets)),
			names.JSDirectGet(names.KVStream(names.BucketEnrollments)),
			"$JS.API.STREAM.DELETE." + names.KVStream(names.BucketFacts),
			"$JS.API.STREAM.PURGE." + names.KVStream(names.BucketFacts),
		} {
			c.PublishDenied(t, subj)
		}
		c.SubscribeDenied(t, names.APISubject("job.run"))
		c.SubscribeDenied(t, "_INBOX.>")
	}
	ro.PublishDenied(t, names.JSStreamInfo(names.KVStream(names.BucketMasterHeartbeat)))

	// The CLI itself works with the readonly credentials: its replies and
	// watch deliveries come to the user's own inbox prefix.
	if out, errOut, code := runCLI(t, "--nats", om.srv.ClientURL(), "--creds", users[pki.RoleReadonly], "job", "list"); code != 0 {
		t.Fatalf("zester job list as readonly: exit %d: %s%s", code, out, errOut)
	}
}

func TestPKIUserAdd_LimitsRoundTripAndBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, errOut, code := runCLI(t, "pki", "init", "--dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	path := filepath.Join(t.TempDir(), "lim.creds")
	targets := []string{"G@os:id:Debian", "web-* and not L@web-3,web-4", " spaced "}
	args := []string{"pki", "user", "add", "Lim", "--role", "operator", "--dir", dir, "--out", path, "--functions", "test.*,cmd.run", "--expiry", "1h"}
	for _, tg := range targets {
		args = append(args, "--targets", tg)
	}
	if _, errOut, code := runCLI(t, args...); code != 0 {
		t.Fatal(errOut)
	}
	b, _ := os.ReadFile(path)
	uc, err := pki.DecodeCreds(b)
	if err != nil {
		t.Fatal(err)
	}
	u, err := pki.ReadUser(uc)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(u.Targets)
	want := slices.Clone(targets)
	slices.Sort(want)
	if u.Name != "Lim" || u.Role != pki.RoleOperator || !slices.Equal(u.Targets, want) || !slices.Equal(u.Functions, []string{"test.*", "cmd.run"}) || time.Until(u.Expires) > time.Hour || time.Until(u.Expires) < 50*time.Minute {
		t.Fatalf("read back %+v", u)
	}
	if got := pki.CredsInboxPrefix(path); got != names.UserInboxPrefix("Lim") {
		t.Fatalf("inbox prefix %q", got)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pki", "user", "add", "x", "--role", "root", "--dir", dir}, `role "root"`},
		{[]string{"pki", "user", "add", "Lim", "--role", "readonly", "--dir", dir, "--out", filepath.Join(t.TempDir(), "again.creds")}, "issued already"},
		{[]string{"pki", "user", "add", "admin", "--role", "readonly", "--dir", dir, "--out", filepath.Join(t.TempDir(), "a.creds")}, "issued already"},
		{[]string{"pki", "user", "add", "bad name", "--role", "readonly", "--dir", dir, "--out", filepath.Join(t.TempDir(), "b.creds")}, "invalid id"},
		{[]string{"pki", "user", "add", "y", "--role", "readonly", "--dir", dir, "--out", path}, "exists"},
		{[]string{"pki", "user", "add", "z", "--role", "readonly", "--dir", t.TempDir()}, pki.FileOperatorJWT},
		{[]string{"pki", "permissions", "web*"}, "invalid id"},
		{[]string{"tls", "init", "--hosts", "bad_host!", "--dir", t.TempDir()}, `host "bad_host!"`},
	} {
		if _, errOut, code := runCLI(t, c.args...); code != ExitError || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want exit 3 mentioning %q", c.args, code, errOut, c.want)
		}
	}
}

func TestPKIPermissions_PrintsPeelPermissions(t *testing.T) {
	out, errOut, code := runCLI(t, "pki", "permissions", "web1.example.com")
	if code != 0 {
		t.Fatal(errOut)
	}
	p, err := pki.PeelPermissions(pki.PeelSpec{ID: "web1.example.com", Partitions: shard.DefaultPartitions})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, pki.FormatPermissions(p)) || !strings.Contains(out, "partition 47 of 64") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestPKIServerConfig_StartsAServer(t *testing.T) {
	om := startOperatorMode(t)
	out, errOut, code := runCLI(t, "pki", "server-config", "--dir", om.dir)
	if code != 0 {
		t.Fatal(errOut)
	}
	seeds, _ := filepath.Glob(filepath.Join(om.dir, "*.nk"))
	seeds = append(seeds, filepath.Join(om.dir, pki.FileMasterCurve))
	for _, f := range seeds {
		b, _ := os.ReadFile(f)
		if seed := strings.TrimSpace(string(b)); seed == "" || strings.Contains(out, seed) {
			t.Fatalf("server config holds the seed of %s", f)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	body := "listen: 127.0.0.1:-1\njetstream { store_dir: " + `"` + filepath.Join(dir, "js") + `"` + " }\n" + out
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server config from pki server-config: %v", err)
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(pkitest.HangGuard) {
		t.Fatal("server not ready")
	}
	admin := pkitest.Connect(t, s.ClientURL(), "", nats.UserCredentials(filepath.Join(om.dir, pki.FileAdminCreds)))
	if _, err := admin.JS.CreateKeyValue(pkitest.Ctx(t), jetstream.KeyValueConfig{Bucket: "x"}); err != nil {
		t.Fatalf("JetStream for the account: %v", err)
	}
	if _, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unauthenticated: %v", err)
	}
}

func TestTLSInit_ServerAcceptsClientThatTrustsTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out, errOut, code := runCLI(t, "tls", "init", "--hosts", "127.0.0.1,localhost", "--dir", dir)
	if code != 0 {
		t.Fatal(errOut)
	}
	for _, f := range []string{pki.FileCAKey, pki.FileServerKey, pki.FileClientKey} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want mode 0600", f, err)
		}
		if !strings.Contains(out, f) {
			t.Errorf("output does not name %s", f)
		}
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: file(pki.FileServerCert), KeyFile: file(pki.FileServerKey), CaFile: file(pki.FileCA), Verify: true})
	if err != nil {
		t.Fatalf("server TLS config from tls init: %v", err)
	}
	srv := testkit.StartServer(t, topology.ServerConfig{Name: "tls", Listen: "127.0.0.1:-1", NoJetStream: true, Tune: func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, true
	}})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	nc, err := nats.Connect(url, nats.RootCAs(file(pki.FileCA)), nats.ClientCert(file(pki.FileClientCert), file(pki.FileClientKey)), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := nats.Connect(url, nats.ClientCert(file(pki.FileClientCert), file(pki.FileClientKey)), nats.MaxReconnects(0)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client not trusting the CA: %v, want a certificate error", err)
	}
	if _, err := nats.Connect(url, nats.RootCAs(file(pki.FileCA)), nats.MaxReconnects(0)); err == nil {
		t.Fatal("client without a certificate connected to a verifying server")
	}
	if _, errOut, code := runCLI(t, "tls", "init", "--hosts", "localhost", "--dir", dir); code != ExitError || !strings.Contains(errOut, "refusing to overwrite") {
		t.Fatalf("second tls init: exit %d %s", code, errOut)
	}
}
