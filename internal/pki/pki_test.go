package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/shard"
)

func initPKI(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := pki.Init(dir, pki.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInit_ModesPlacesAndRefusal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	sum, err := pki.Init(dir, pki.InitOptions{Partitions: 16, JetStreamDisk: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v %v, want 0700", st.Mode(), err)
	}
	if len(sum.Files) != 14 {
		t.Fatalf("%d files", len(sum.Files))
	}
	for _, f := range sum.Files {
		st, err := os.Stat(f.Path)
		if err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
			t.Errorf("%s: %v mode %v size %d, want 0600 and content", f.Name, err, st.Mode(), st.Size())
		}
	}
	offline := sum.In(pki.Offline)
	if !slices.ContainsFunc(offline, func(f pki.File) bool { return f.Name == pki.FileOperatorSeed }) {
		t.Fatalf("operator seed not offline: %+v", offline)
	}
	for _, want := range []string{pki.FileAccountSigningSeed, pki.FileMasterCreds, pki.FileMasterCurve, pki.FileOperatorSigningSeed} {
		if !slices.ContainsFunc(sum.In(pki.Masters), func(f pki.File) bool { return f.Name == want }) {
			t.Errorf("%s not for masters", want)
		}
	}
	// The account JWT carries what operator mode needs: JetStream storage,
	// the signing key and the partition mapping for 16 partitions.
	b, _ := os.ReadFile(filepath.Join(dir, pki.FileAccountJWT))
	ac, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	src, dst := names.PartitionMapping(16)
	if !ac.Limits.IsJSEnabled() || ac.Limits.DiskStorage != 1<<30 || ac.Limits.MemoryStorage != jwt.NoLimit ||
		!ac.SigningKeys.Contains(sum.AccountSigning) || len(ac.Mappings[jwt.Subject(src)]) != 1 || ac.Mappings[jwt.Subject(src)][0].Subject != jwt.Subject(dst) {
		t.Fatalf("account claims: %+v", ac.Account)
	}
	// Nothing is overwritten, and the error names the file.
	_, err = pki.Init(dir, pki.InitOptions{})
	if !errors.Is(err, pki.ErrExists) || !strings.Contains(err.Error(), filepath.Join(dir, pki.FileOperatorSeed)) {
		t.Fatalf("second init: %v", err)
	}
	// One stray file of the layout is enough to refuse, and nothing is written.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, pki.FileEnrollCreds), []byte("x"), 0o600)
	if _, err := pki.Init(dir2, pki.InitOptions{}); !errors.Is(err, pki.ErrExists) || !strings.Contains(err.Error(), pki.FileEnrollCreds) {
		t.Fatalf("init over a stray file: %v", err)
	}
	if ents, _ := os.ReadDir(dir2); len(ents) != 1 {
		t.Fatalf("init over a stray file wrote %d files", len(ents)-1)
	}
	if _, err := pki.Init(t.TempDir(), pki.InitOptions{Partitions: -3}); err == nil || !strings.Contains(err.Error(), "partitions -3") {
		t.Fatalf("bad partitions: %v", err)
	}
}

func TestLoad_WithoutOfflineSeeds(t *testing.T) {
	dir := initPKI(t)
	offline := t.TempDir()
	for _, f := range []string{pki.FileOperatorSeed, pki.FileAccountSeed, pki.FileSystemSeed} {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(offline, f)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatalf("load without the offline seeds: %v", err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if _, err := p.IssuePeel(pki.PeelSpec{ID: "web1", Partitions: 64}, pub, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.IssueUser(pki.UserSpec{Name: "ops", Role: pki.RoleOperator}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pki.DirUsers, "ops.jwt")); err != nil {
		t.Fatalf("issued user not recorded: %v", err)
	}
	// The masters' curve key seals to a peel and back.
	peelCurve, _ := nkeys.CreateCurveKeys()
	peelPub, _ := peelCurve.PublicKey()
	masterPub, _ := p.MasterCurve().PublicKey()
	sealed, err := p.MasterCurve().Seal([]byte("s3cret"), peelPub)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := peelCurve.Open(sealed, masterPub); err != nil || string(plain) != "s3cret" {
		t.Fatalf("open: %v", err)
	}
}

func TestLoadOrInit_CreatesOnceThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, sum, err := pki.LoadOrInit(dir, pki.InitOptions{})
	if err != nil || sum == nil || p.AccountKey() != sum.Account {
		t.Fatalf("first: %v %v", sum, err)
	}
	q, sum2, err := pki.LoadOrInit(dir, pki.InitOptions{})
	if err != nil || sum2 != nil || q.AccountKey() != p.AccountKey() {
		t.Fatalf("second: %v %v", sum2, err)
	}
	// A half PKI (operator JWT gone, seeds still there) is not recreated.
	os.Remove(filepath.Join(dir, pki.FileOperatorJWT))
	if _, _, err := pki.LoadOrInit(dir, pki.InitOptions{}); !errors.Is(err, pki.ErrExists) {
		t.Fatalf("half PKI: %v", err)
	}
}

func TestLoad_RefusesBadFiles(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"world-readable seed", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, pki.FileAccountSigningSeed), 0o644) }, pki.FileAccountSigningSeed + ": mode 0644"},
		{"missing account", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, pki.FileAccountJWT)) }, pki.FileAccountJWT},
		{"account of another operator", func(t *testing.T, dir string) {
			other := initPKI(t)
			b, _ := os.ReadFile(filepath.Join(other, pki.FileAccountJWT))
			os.WriteFile(filepath.Join(dir, pki.FileAccountJWT), b, 0o600)
		}, "not signed by the operator"},
		{"signing key of another account", func(t *testing.T, dir string) {
			other := initPKI(t)
			b, _ := os.ReadFile(filepath.Join(other, pki.FileAccountSigningSeed))
			os.WriteFile(filepath.Join(dir, pki.FileAccountSigningSeed), b, 0o600)
		}, "is not a signing key of the account"},
		{"garbage seed", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, pki.FileMasterCurve), []byte("SXnotaseed\n"), 0o600)
		}, pki.FileMasterCurve},
		{"user seed as curve key", func(t *testing.T, dir string) {
			kp, _ := nkeys.CreateUser()
			s, _ := kp.Seed()
			os.WriteFile(filepath.Join(dir, pki.FileMasterCurve), s, 0o600)
		}, pki.FileMasterCurve},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := initPKI(t)
			c.spoil(t, dir)
			_, err := pki.Load(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestPeelPermissions_NoGrantOpensAnotherKey(t *testing.T) {
	for _, id := range []string{"web1", "web1.example.com", "a.b.c.d.e"} {
		p, err := pki.PeelPermissions(pki.PeelSpec{ID: id, Partitions: 64})
		if err != nil {
			t.Fatal(err)
		}
		tok := names.Token(id)
		for _, s := range append(slices.Clone([]string(p.Pub.Allow)), p.Sub.Allow...) {
			for _, bad := range []string{"$JS.API.STREAM.MSG.GET", "$JS.API.CONSUMER.", "$JS.API.STREAM.CREATE", "$JS.API.STREAM.DELETE", "$JS.API.STREAM.PURGE"} {
				if strings.HasPrefix(s, bad) {
					t.Errorf("%s: grant %s", id, s)
				}
			}
			if strings.HasPrefix(s, "$JS.API.DIRECT.GET.") && strings.Count(s, "$KV.") != 1 {
				t.Errorf("%s: direct get without the key in the subject: %s", id, s)
			}
			// Every wildcard grant is confined by the peel's own id (last),
			// or token (last, or before the tail wildcard): a token is
			// matched whole, and no other peel has it. The one exception
			// is the state tree, which every peel reads whole (read only).
			if strings.ContainsAny(s, "*>") && s != names.JSDirectGetKey(names.BucketStateTree, ">") && !strings.HasSuffix(s, "."+id) && !strings.HasSuffix(s, "."+tok) && !strings.Contains(s, "."+tok+".") {
				t.Errorf("%s: wildcard grant %s is not confined to the peel", id, s)
			}
		}
		if len(p.Pub.Deny) != 0 || len(p.Sub.Deny) != 0 || p.Resp != nil {
			t.Errorf("%s: unexpected deny or response grant", id)
		}
	}
	for _, c := range []struct {
		spec pki.PeelSpec
		want string
	}{
		{pki.PeelSpec{ID: "web*", Partitions: 64}, "invalid id"},
		{pki.PeelSpec{ID: "web1", Partitions: 0}, "partitions 0"},
	} {
		if _, err := pki.PeelPermissions(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}

// TestPeelPermissions_MatchesDocs keeps docs/security.md's printed
// permission set equal to the function's output.
func TestPeelPermissions_MatchesDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- pki-permissions:begin web1.example.com 64 -->\n```text\n", "```\n<!-- pki-permissions:end -->"
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatal("docs/security.md has no pki-permissions block")
	}
	p, err := pki.PeelPermissions(pki.PeelSpec{ID: "web1.example.com", Partitions: 64})
	if err != nil {
		t.Fatal(err)
	}
	want := "# peel web1.example.com, partition 47 of 64\n" + pki.FormatPermissions(p)
	if got := doc[i+len(begin) : j]; got != want {
		t.Fatalf("docs/security.md block differs from PeelPermissions; want:\n%s\ngot:\n%s", want, got)
	}
	if shard.Partition("web1.example.com", 64) != 47 {
		t.Fatal("partition of the doc's example changed")
	}
}

func TestRoles_TableAndParse(t *testing.T) {
	for _, r := range pki.Roles() {
		if got, err := pki.ParseRole(string(r)); err != nil || got != r || r.Describe() == "" {
			t.Errorf("%s: %v %q", r, err, r.Describe())
		}
	}
	for _, bad := range []string{"", "peel", "master", "enroll", "Admin"} {
		if _, err := pki.ParseRole(bad); err == nil || !strings.Contains(err.Error(), "admin, operator, readonly") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestRevoke_CutsOffAPeel: masters revoke with the operator signing key
// (the operator seed stays offline): the peel's connection is closed and a
// reconnect is refused.
func TestRevoke_CutsOffAPeel(t *testing.T) {
	dir := initPKI(t)
	os.Remove(filepath.Join(dir, pki.FileOperatorSeed))
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := pkitest.StartServer(t, p)
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	tok, err := p.IssuePeel(pki.PeelSpec{ID: "web1.example.com", Partitions: 64}, pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	c := pkitest.Connect(t, srv.ClientURL(), names.PeelInboxPrefix("web1.example.com"), nats.UserJWTAndSeed(tok, string(seed)),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	newJWT, err := p.Revoke(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyAccount(srv.NATS()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(pkitest.HangGuard):
		t.Fatal("revoked peel still connected")
	}
	t.Logf("revoked peel disconnected %s after Revoke", time.Since(start))
	if _, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0), nats.UserJWTAndSeed(tok, string(seed))); err == nil {
		t.Fatal("revoked peel reconnected")
	}
	// The revocation is on disk for the next start.
	q, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ac, qJWT := q.Account()
	if qJWT != newJWT || !ac.IsClaimRevoked(mustDecodeUser(t, tok)) {
		t.Fatal("revocation not persisted in account.jwt")
	}
	// Without the operator signing key there is no revocation, and the
	// error says which file is missing.
	os.Remove(filepath.Join(dir, pki.FileOperatorSigningSeed))
	r, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(pub); err == nil || !strings.Contains(err.Error(), pki.FileOperatorSigningSeed) {
		t.Fatalf("revoke without the signing seed: %v", err)
	}
}

func mustDecodeUser(t *testing.T, tok string) *jwt.UserClaims {
	t.Helper()
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	return uc
}

func TestIssuePeel_ClaimsAndBadInput(t *testing.T) {
	p, err := pki.Load(initPKI(t))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	tok, err := p.IssuePeel(pki.PeelSpec{ID: "Web1.Example.com", Partitions: 64}, pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	uc := mustDecodeUser(t, tok)
	u, err := pki.ReadUser(uc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "Web1.Example.com" || u.Role != pki.RolePeel || uc.IssuerAccount != p.AccountKey() || time.Until(u.Expires) > time.Hour {
		t.Fatalf("%+v issuer %s", u, uc.IssuerAccount)
	}
	if got := pki.InboxPrefix(uc); got != names.PeelInboxPrefix("Web1.Example.com") {
		t.Fatalf("inbox %q", got)
	}
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	if _, err := p.IssuePeel(pki.PeelSpec{ID: "web1", Partitions: 64}, accPub, 0); err == nil || !strings.Contains(err.Error(), "not a user public key") {
		t.Fatalf("account key as peel key: %v", err)
	}
}

func TestEncodeTag_SurvivesTagList(t *testing.T) {
	for _, s := range []string{"web-*", "G@os:id:Debian", "L@a,b and not E@^web[0-9]+$", " x ", "%41", "ÜTF-8", ""} {
		var tl jwt.TagList
		tl.Add("k:" + pki.EncodeTag(s))
		if s == "" {
			continue
		}
		got, err := pki.DecodeTag(strings.TrimPrefix(tl[0], "k:"))
		if err != nil || got != s {
			t.Errorf("%q → %q → %q %v", s, pki.EncodeTag(s), got, err)
		}
	}
	if _, err := pki.DecodeTag("%zz"); err == nil {
		t.Error("bad escape accepted")
	}
}

// FuzzEncodeTag: any value survives a JWT TagList (lower-casing, trimming)
// and comes back exactly; DecodeTag never panics on tags from a JWT.
func FuzzEncodeTag(f *testing.F) {
	for _, s := range []string{"web-*", "G@os:id:Debian", "%", " a ", "\x00", "Ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pki.DecodeTag(s) // arbitrary input: an error, never a panic
		if s == "" {
			return
		}
		var tl jwt.TagList
		tl.Add(pki.EncodeTag(s))
		if len(tl) != 1 {
			t.Fatalf("%q: tag dropped", s)
		}
		got, err := pki.DecodeTag(tl[0])
		if err != nil || got != s {
			t.Fatalf("%q → %q → %q %v", s, tl[0], got, err)
		}
	})
}

func TestInitTLS_CertificatesVerify(t *testing.T) {
	dir := t.TempDir()
	f, err := pki.InitTLS(dir, []string{"nats1.example.com", "127.0.0.1", "*.nats.example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) *x509.Certificate {
		b, _ := os.ReadFile(p)
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", p)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, srv, cli := read(f.CA), read(f.ServerCert), read(f.ClientCert)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"nats1.example.com", "127.0.0.1", "x.nats.example.com"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server cert for %s: %v", host, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.com"}); err == nil {
		t.Error("server cert valid for a host not asked for")
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client cert usable as a server cert")
	}
	if time.Until(srv.NotAfter) < 364*24*time.Hour {
		t.Errorf("default validity %s", time.Until(srv.NotAfter))
	}
	for _, bad := range [][]string{nil, {"bad host"}, {"-x.example.com"}, {"a..b"}} {
		if _, err := pki.InitTLS(t.TempDir(), bad, 0); err == nil {
			t.Errorf("hosts %q accepted", bad)
		}
	}
}

// sys.creds is a working system-account user (nats server report, $SYS
// requests): nats-server takes only users of an account's signing keys.
func TestSysCreds_ConnectToTheSystemAccount(t *testing.T) {
	dir := initPKI(t)
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := pkitest.StartServer(t, p)
	c := pkitest.Connect(t, s.ClientURL(), "", nats.UserCredentials(filepath.Join(dir, pki.FileSysCreds)))
	m, err := c.Request("$SYS.REQ.SERVER.PING.VARZ", nil)
	if err != nil || !strings.Contains(string(m.Data), `"server_id"`) {
		t.Fatalf("$SYS request with sys.creds: %v", err)
	}
}
