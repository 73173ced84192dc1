package sig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
)

// fixture is a real PKI (pki.Init) with the principals the tests sign as.
type fixture struct {
	pki     *pki.PKI
	master  *sig.Signer
	admin   *sig.Signer
	peelJWT string // a peel's user JWT, issued as enrollment would
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func newFixture(dir string) (*fixture, error) {
	if _, err := pki.Init(dir, pki.InitOptions{}); err != nil {
		return nil, err
	}
	p, err := pki.Load(dir)
	if err != nil {
		return nil, err
	}
	f := &fixture{pki: p}
	if f.master, err = sig.LoadSigner(p.MasterCreds); err != nil {
		return nil, err
	}
	if f.admin, err = sig.LoadSigner(filepath.Join(dir, pki.FileAdminCreds)); err != nil {
		return nil, err
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if f.peelJWT, err = p.IssuePeel(pki.PeelSpec{ID: "web1.example.com", Partitions: 64}, pub, 0); err != nil {
		return nil, err
	}
	return f, nil
}

// sharedFixture is one PKI for the whole package (Init makes many keys).
func sharedFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sig-test-pki")
		if err != nil {
			fixErr = err
			return
		}
		fix, fixErr = newFixture(filepath.Join(dir, "pki"))
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func peelVerifier(t testing.TB, f *fixture) *sig.Verifier {
	t.Helper()
	tr, err := sig.TrustFromUserJWT(f.peelJWT)
	if err != nil {
		t.Fatal(err)
	}
	return sig.NewVerifier(tr)
}

var masterOnly = sig.Options{Roles: []string{sig.RoleMaster}}

func signed(t testing.TB, s *sig.Signer, p sig.Purpose, subject string, body []byte, at time.Time) *nats.Msg {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: body}
	if err := s.Sign(p, m, at); err != nil {
		t.Fatal(err)
	}
	return m
}

// The role tag package pki writes is the one this package reads.
func TestRoleTag_MatchesPKI(t *testing.T) {
	if sig.RoleTag != pki.TagRole {
		t.Fatalf("sig.RoleTag %q != pki.TagRole %q", sig.RoleTag, pki.TagRole)
	}
	f := sharedFixture(t)
	m := signed(t, f.master, sig.Dispatch, names.JobSubject(3), []byte(`{}`), time.Now())
	s, err := peelVerifier(t, f).VerifyMsg(sig.Dispatch, m, time.Now(), masterOnly)
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != sig.RoleMaster || s.Key != f.pki.MasterUser {
		t.Fatalf("signed by role %q key %s, want master %s", s.Role, s.Key, f.pki.MasterUser)
	}
}

// A peel's trust, built from nothing but its own JWT, accepts exactly the
// masters' dispatches and refuses every altered or foreign one.
func TestVerifier_Verify_Dispatch(t *testing.T) {
	f := sharedFixture(t)
	other, err := newFixture(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	subj := names.JobSubject(7)
	body := []byte(`{"jid":"20260101000000000000","fn":"cmd.run","args":["id -un"],"peels":["web1.example.com"],"deadline":"2030-01-01T00:00:00Z"}`)
	good := func() *nats.Msg { return signed(t, f.master, sig.Dispatch, subj, body, now) }
	cases := []struct {
		name    string
		msg     func() *nats.Msg
		purpose sig.Purpose
		want    error
	}{
		{"accepted", good, sig.Dispatch, nil},
		{"unsigned", func() *nats.Msg { return &nats.Msg{Subject: subj, Data: body} }, sig.Dispatch, sig.ErrUnsigned},
		{"body changed: another function", func() *nats.Msg {
			m := good()
			m.Data = []byte(string(body[:40]) + "X" + string(body[41:]))
			return m
		}, sig.Dispatch, sig.ErrBadSignature},
		{"body extended", func() *nats.Msg { m := good(); m.Data = append(m.Data, ' '); return m }, sig.Dispatch, sig.ErrBadSignature},
		{"another partition's subject", func() *nats.Msg { m := good(); m.Subject = names.JobSubject(8); return m }, sig.Dispatch, sig.ErrBadSignature},
		{"dispatch signature used as control", good, sig.Control, sig.ErrBadSignature},
		{"signing time changed", func() *nats.Msg { m := good(); m.Header.Set(sig.HeaderTime, "1"); return m }, sig.Dispatch, sig.ErrBadSignature},
		{"admin is not a master", func() *nats.Msg { return signed(t, f.admin, sig.Dispatch, subj, body, now) }, sig.Dispatch, sig.ErrRole},
		{"master of another PKI", func() *nats.Msg { return signed(t, other.master, sig.Dispatch, subj, body, now) }, sig.Dispatch, sig.ErrUntrusted},
		{"signature of another key, our master's JWT", func() *nats.Msg {
			m := signed(t, other.master, sig.Dispatch, subj, body, now)
			m.Header.Set(sig.HeaderSigner, f.master.JWT())
			return m
		}, sig.Dispatch, sig.ErrBadSignature},
		{"signature without signer", func() *nats.Msg { m := good(); m.Header.Del(sig.HeaderSigner); return m }, sig.Dispatch, sig.ErrMalformed},
		{"truncated signature", func() *nats.Msg { m := good(); m.Header.Set(sig.HeaderSig, m.Header.Get(sig.HeaderSig)[:40]); return m }, sig.Dispatch, sig.ErrMalformed},
		{"garbage JWT", func() *nats.Msg { m := good(); m.Header.Set(sig.HeaderSigner, "eyJ.x.y"); return m }, sig.Dispatch, sig.ErrMalformed},
	}
	v := peelVerifier(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.VerifyMsg(tc.purpose, tc.msg(), now, masterOnly)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if sig.Reason(err) == "other" {
				t.Fatalf("no reason label for %v", err)
			}
		})
	}
}

// Expiry, revocation, the time window and the replay guard.
func TestVerifier_Verify_Lifetime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	f, err := newFixture(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	creds, _, err := f.pki.IssueUser(pki.UserSpec{Name: "brief", Role: pki.RoleOperator, Expiry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	brief, err := sig.NewSigner(creds)
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := f.pki.Account()
	v := sig.NewVerifier(sig.TrustFromAccount(ac))
	subj := names.APISubject("job.run")
	req := signed(t, brief, sig.API, subj, []byte(`{}`), now)
	if s, err := v.VerifyMsg(sig.API, req, now, sig.Options{}); err != nil || s.Name != "brief" || s.Role != "operator" {
		t.Fatalf("fresh request: %+v, %v", s, err)
	}
	if _, err := v.VerifyMsg(sig.API, req, now.Add(2*time.Hour), sig.Options{}); !errors.Is(err, sig.ErrExpired) {
		t.Fatalf("after expiry: %v, want ErrExpired", err)
	}
	window := sig.Options{MaxAge: 2 * time.Minute}
	if _, err := v.VerifyMsg(sig.API, req, now.Add(3*time.Minute), window); !errors.Is(err, sig.ErrStale) {
		t.Fatalf("late: %v, want ErrStale", err)
	}
	if _, err := v.VerifyMsg(sig.API, req, now.Add(-3*time.Minute), window); !errors.Is(err, sig.ErrStale) {
		t.Fatalf("early (clock skew): %v, want ErrStale", err)
	}
	guard := sig.NewReplayGuard(window.MaxAge, 0)
	window.Replay = guard
	if _, err := v.VerifyMsg(sig.API, req, now, window); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := v.VerifyMsg(sig.API, req, now.Add(time.Second), window); !errors.Is(err, sig.ErrReplay) {
		t.Fatalf("second use: %v, want ErrReplay", err)
	}
	// A forged request does not take a nonce: the real one still works.
	fresh := signed(t, brief, sig.API, subj, []byte(`{}`), now)
	forged := &nats.Msg{Subject: subj, Data: []byte(`{"x":1}`), Header: fresh.Header}
	if _, err := v.VerifyMsg(sig.API, forged, now, window); !errors.Is(err, sig.ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := v.VerifyMsg(sig.API, fresh, now, window); err != nil {
		t.Fatalf("real request after a forged copy of its nonce: %v", err)
	}

	// Revocation: the master follows the account JWT (every JWT of the key
	// issued up to the revocation's second is revoked).
	if _, err := f.pki.Revoke(brief.Key()); err != nil {
		t.Fatal(err)
	}
	ac, _ = f.pki.Account()
	v.SetTrust(sig.TrustFromAccount(ac))
	if _, err := v.VerifyMsg(sig.API, signed(t, brief, sig.API, subj, []byte(`{}`), now), now, sig.Options{}); !errors.Is(err, sig.ErrRevoked) {
		t.Fatalf("after revocation: %v, want ErrRevoked", err)
	}
	// The admin, not revoked, still passes with the same trust.
	admin, err := sig.LoadSigner(filepath.Join(dir, pki.FileAdminCreds))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyMsg(sig.API, signed(t, admin, sig.API, subj, []byte(`{}`), now), now, sig.Options{}); err != nil {
		t.Fatalf("admin: %v", err)
	}
}

func TestNewSigner_SeedOfAnotherKey(t *testing.T) {
	f := sharedFixture(t)
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	// jwt.FormatUserConfig refuses this pair; a hand-edited file need not.
	creds := []byte("-----BEGIN NATS USER JWT-----\n" + f.master.JWT() + "\n------END NATS USER JWT------\n\n" +
		"-----BEGIN USER NKEY SEED-----\n" + string(seed) + "\n------END USER NKEY SEED------\n")
	if _, err := sig.NewSigner(creds); err == nil || !strings.Contains(err.Error(), "is not the JWT's subject") {
		t.Fatalf("a seed that is not the JWT's key: %v", err)
	}
}

// BenchmarkVerifyDispatch is the CPU a peel spends on one dispatch: one
// ed25519 verification (the master's JWT is cached after the first).
func BenchmarkVerifyDispatch(b *testing.B) {
	f := sharedFixture(b)
	v := peelVerifier(b, f)
	body := make([]byte, 200)
	now := time.Now()
	m := signed(b, f.master, sig.Dispatch, names.JobSubject(1), body, now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyMsg(sig.Dispatch, m, now, masterOnly); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignDispatch is the master's cost per dispatch message.
func BenchmarkSignDispatch(b *testing.B) {
	f := sharedFixture(b)
	body := make([]byte, 200)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		m := &nats.Msg{Subject: names.JobSubject(1), Data: body}
		if err := f.master.Sign(sig.Dispatch, m, now); err != nil {
			b.Fatal(err)
		}
	}
}
