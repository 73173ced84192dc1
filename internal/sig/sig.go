package sig

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Headers of a signed message.
const (
	// HeaderSigner is the signer's user JWT (public).
	HeaderSigner = "Zester-Signer"
	// HeaderSig is the ed25519 signature of Content, base64url without padding.
	HeaderSig = "Zester-Sig"
	// HeaderTime is the signing time in Unix nanoseconds.
	HeaderTime = "Zester-Time"
	// HeaderNonce is a random value of API requests (replay guard).
	HeaderNonce = "Zester-Nonce"
)

// Purpose separates what a signature may be used for.
type Purpose string

// Purposes.
const (
	Dispatch Purpose = "dispatch" // master → peels: run a job
	Control  Purpose = "control"  // master → peels: facts republish and the like
	API      Purpose = "api"      // operator → master API
)

const version = "zester-sig-v1"

// RoleTag is the JWT tag prefix that names a user's role (package pki writes
// it as pki.TagRole; a test keeps the two equal).
const RoleTag = "zester-role:"

// RoleMaster is the role of the masters' credentials: the only signer a peel
// accepts.
const RoleMaster = "master"

// Content is the exact byte string that is signed: the version, the purpose,
// the subject, the signing time, the nonce, then the body, '\n' between
// them. Only the body may contain '\n', and it comes last.
func Content(p Purpose, subject, at, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(version)+len(p)+len(subject)+len(at)+len(nonce)+len(body)+5)
	b = append(b, version...)
	b = append(b, '\n')
	b = append(b, p...)
	b = append(b, '\n')
	b = append(b, subject...)
	b = append(b, '\n')
	b = append(b, at...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	return append(b, body...)
}

// Why a message was refused. Every error of Verify wraps exactly one of
// these; Reason names it for metrics.
var (
	ErrUnsigned     = errors.New("unsigned")
	ErrMalformed    = errors.New("malformed signature headers")
	ErrUntrusted    = errors.New("signer not issued by a trusted key")
	ErrRole         = errors.New("signer's role may not sign this")
	ErrExpired      = errors.New("signer's credentials expired")
	ErrRevoked      = errors.New("signer's credentials revoked")
	ErrBadSignature = errors.New("bad signature")
	ErrStale        = errors.New("signing time out of the accepted window")
	ErrReplay       = errors.New("replayed")
)

var reasons = []struct {
	err    error
	reason string
}{
	{ErrUnsigned, "unsigned"}, {ErrMalformed, "malformed"}, {ErrUntrusted, "untrusted"},
	{ErrRole, "role"}, {ErrExpired, "expired"}, {ErrRevoked, "revoked"},
	{ErrBadSignature, "bad_signature"}, {ErrStale, "stale"}, {ErrReplay, "replay"},
}

// Reasons lists every value Reason returns but "other", for metric labels.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.reason
	}
	return out
}

// Reason is a short label for err ("bad_signature"), "other" when err is
// none of this package's.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

// Signer signs with the nkey of one user's credentials.
type Signer struct {
	kp     nkeys.KeyPair
	jwt    string
	claims *jwt.UserClaims
}

// NewSigner reads a credentials file's content (user JWT and seed). The seed
// must be the key the JWT was issued to.
func NewSigner(creds []byte) (*Signer, error) {
	tok, uc, err := DecodeCreds(creds)
	if err != nil {
		return nil, err
	}
	kp, err := jwt.ParseDecoratedNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: seed: %w", err)
	}
	if pub, _ := kp.PublicKey(); pub != uc.Subject {
		return nil, fmt.Errorf("credentials: the seed's key %s is not the JWT's subject %s", pub, uc.Subject)
	}
	return &Signer{kp: kp, jwt: tok, claims: uc}, nil
}

// DecodeCreds returns a credentials file's user JWT and its claims. It does
// not verify the chain (the NATS server does that on connect).
func DecodeCreds(creds []byte) (string, *jwt.UserClaims, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", nil, fmt.Errorf("credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", nil, fmt.Errorf("credentials: user JWT: %w", err)
	}
	return tok, uc, nil
}

// LoadSigner is NewSigner for a file; errors name it.
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := NewSigner(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Key is the signer's public key.
func (s *Signer) Key() string { return s.claims.Subject }

// Name is the name in the signer's JWT.
func (s *Signer) Name() string { return s.claims.Name }

// Role is the role tag of the signer's JWT ("" when it has none).
func (s *Signer) Role() string { return roleOf(s.claims) }

// JWT is the signer's user JWT.
func (s *Signer) JWT() string { return s.jwt }

// Sign signs m (subject and data as they will be sent) for purpose p at now
// and sets the headers. API requests get a fresh nonce. m must not change
// after Sign.
func (s *Signer) Sign(p Purpose, m *nats.Msg, now time.Time) error {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	at := strconv.FormatInt(now.UnixNano(), 10)
	nonce := ""
	if p == API {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("sign: nonce: %w", err)
		}
		nonce = base64.RawURLEncoding.EncodeToString(b[:])
	}
	sig, err := s.kp.Sign(Content(p, m.Subject, at, nonce, m.Data))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	m.Header.Set(HeaderSigner, s.jwt)
	m.Header.Set(HeaderSig, base64.RawURLEncoding.EncodeToString(sig))
	m.Header.Set(HeaderTime, at)
	if nonce != "" {
		m.Header.Set(HeaderNonce, nonce)
	} else {
		m.Header.Del(HeaderNonce)
	}
	return nil
}

// Trust says whose JWTs a Verifier accepts.
type Trust struct {
	// Account is the account every signer belongs to (its JWT's
	// issuer_account).
	Account string
	// Issuers are the keys that may issue signers' JWTs: the account's
	// signing keys.
	Issuers []string
	// Revocations are the account's revoked user keys (optional).
	Revocations jwt.RevocationList
}

// TrustFromUserJWT is a peel's trust: the account and the signing key that
// issued the peel's own JWT, which issued the masters' too.
func TrustFromUserJWT(tok string) (Trust, error) {
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return Trust{}, fmt.Errorf("trust: own user JWT: %w", err)
	}
	if uc.IssuerAccount == "" {
		// Issued by the account's identity key itself.
		return Trust{Account: uc.Issuer, Issuers: []string{uc.Issuer}}, nil
	}
	return Trust{Account: uc.IssuerAccount, Issuers: []string{uc.Issuer}}, nil
}

// TrustFromCreds is TrustFromUserJWT for a credentials file's content.
func TrustFromCreds(creds []byte) (Trust, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return Trust{}, fmt.Errorf("trust: credentials: %w", err)
	}
	return TrustFromUserJWT(tok)
}

// TrustFromAccount is a master's trust: the account's signing keys and
// revocations.
func TrustFromAccount(ac *jwt.AccountClaims) Trust {
	return Trust{Account: ac.Subject, Issuers: ac.SigningKeys.Keys(), Revocations: ac.Revocations}
}

func (t *Trust) issuer(k string) bool {
	for _, i := range t.Issuers {
		if i == k {
			return true
		}
	}
	return false
}

// Signed is what a verified message says of its signer.
type Signed struct {
	Claims *jwt.UserClaims
	Key    string // the signer's public key
	Name   string
	Role   string
	At     time.Time // signing time
}

// Options of one verification.
type Options struct {
	// Roles the signer must have one of; empty accepts any role tag.
	Roles []string
	// MaxAge, when set, refuses a signing time further than this from now,
	// in either direction (clock skew counts).
	MaxAge time.Duration
	// Replay, when set, refuses a nonce seen before (API requests).
	Replay *ReplayGuard
}

// Verifier checks signed messages against a Trust. It is safe for
// concurrent use.
type Verifier struct {
	trust atomic.Pointer[Trust]

	mu    sync.Mutex
	cache map[string]*signerEntry
}

type signerEntry struct {
	claims *jwt.UserClaims
	kp     nkeys.KeyPair
	role   string
}

// cacheMax bounds the verified JWTs kept; only JWTs of trusted issuers are
// cached, so only holders of real credentials can fill it.
const cacheMax = 1024

// NewVerifier returns a Verifier for t.
func NewVerifier(t Trust) *Verifier {
	v := &Verifier{cache: map[string]*signerEntry{}}
	v.trust.Store(&t)
	return v
}

// SetTrust replaces the trust (a new account JWT with new revocations).
func (v *Verifier) SetTrust(t Trust) { v.trust.Store(&t) }

// Trust is the current trust.
func (v *Verifier) Trust() Trust { return *v.trust.Load() }

// VerifyMsg is Verify for a received message.
func (v *Verifier) VerifyMsg(p Purpose, m *nats.Msg, now time.Time, o Options) (*Signed, error) {
	return v.Verify(p, m.Subject, m.Header, m.Data, now, o)
}

// Verify checks that body, received on subject with headers h, was signed
// for purpose p by a signer t trusts, of one of o.Roles, with credentials
// valid and not revoked at now. The error wraps one of the Err values.
func (v *Verifier) Verify(p Purpose, subject string, h nats.Header, body []byte, now time.Time, o Options) (*Signed, error) {
	tok, sigText, at := h.Get(HeaderSigner), h.Get(HeaderSig), h.Get(HeaderTime)
	if tok == "" && sigText == "" {
		return nil, ErrUnsigned
	}
	if tok == "" || sigText == "" || at == "" {
		return nil, fmt.Errorf("%w: want %s, %s and %s", ErrMalformed, HeaderSigner, HeaderSig, HeaderTime)
	}
	t := v.trust.Load()
	e, err := v.signer(tok, t)
	if err != nil {
		return nil, err
	}
	if len(o.Roles) > 0 && !contains(o.Roles, e.role) {
		return nil, fmt.Errorf("%w: %s has role %q, want %s", ErrRole, e.claims.Name, e.role, strings.Join(o.Roles, " or "))
	}
	if e.claims.Expires > 0 && now.Unix() > e.claims.Expires {
		return nil, fmt.Errorf("%w: %s expired at %s", ErrExpired, e.claims.Name, time.Unix(e.claims.Expires, 0).UTC().Format(time.RFC3339))
	}
	if t.Revocations != nil && t.Revocations.IsRevoked(e.claims.Subject, time.Unix(e.claims.IssuedAt, 0)) {
		return nil, fmt.Errorf("%w: %s (%s)", ErrRevoked, e.claims.Name, e.claims.Subject)
	}
	// Only the body may hold '\n' (Content's separator): the other parts are
	// checked to be what they claim, so no two messages share a Content.
	nonce := h.Get(HeaderNonce)
	if !validSubject(subject) {
		return nil, fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	if (p == API) != (nonce != "") || !isBase64URL(nonce) {
		return nil, fmt.Errorf("%w: %s %q (API requests carry one, nothing else does)", ErrMalformed, HeaderNonce, nonce)
	}
	ns, err := strconv.ParseInt(at, 10, 64)
	if err != nil || ns <= 0 || !isDigits(at) {
		return nil, fmt.Errorf("%w: %s %q is not a time in Unix nanoseconds", ErrMalformed, HeaderTime, at)
	}
	signedAt := time.Unix(0, ns)
	if o.MaxAge > 0 {
		if d := now.Sub(signedAt); d > o.MaxAge || d < -o.MaxAge {
			return nil, fmt.Errorf("%w: signed at %s, now %s, window ±%s (check the clocks)", ErrStale, signedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), o.MaxAge)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: %s is not a base64url ed25519 signature", ErrMalformed, HeaderSig)
	}
	if err := e.kp.Verify(Content(p, subject, at, nonce, body), sig); err != nil {
		return nil, fmt.Errorf("%w: by %s over %s %s", ErrBadSignature, e.claims.Name, p, subject)
	}
	if o.Replay != nil {
		// After the signature: only a real signer's nonces are stored.
		if err := o.Replay.check(e.claims.Subject, nonce, signedAt, now); err != nil {
			return nil, err
		}
	}
	return &Signed{Claims: e.claims, Key: e.claims.Subject, Name: e.claims.Name, Role: e.role, At: signedAt}, nil
}

// signer decodes and checks a signer's JWT, from the cache when seen before.
// The issuer is checked against the current trust on every call (a cached
// JWT of a key that is no longer trusted is refused).
func (v *Verifier) signer(tok string, t *Trust) (*signerEntry, error) {
	v.mu.Lock()
	e := v.cache[tok]
	v.mu.Unlock()
	if e == nil {
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, HeaderSigner, err)
		}
		kp, err := nkeys.FromPublicKey(uc.Subject)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: subject: %v", ErrMalformed, HeaderSigner, err)
		}
		e = &signerEntry{claims: uc, kp: kp, role: roleOf(uc)}
	}
	account := e.claims.IssuerAccount
	if account == "" {
		account = e.claims.Issuer
	}
	if account != t.Account || !t.issuer(e.claims.Issuer) {
		return nil, fmt.Errorf("%w: %s issued by %s of account %s", ErrUntrusted, e.claims.Name, e.claims.Issuer, account)
	}
	v.mu.Lock()
	if _, ok := v.cache[tok]; !ok {
		if len(v.cache) >= cacheMax {
			clear(v.cache)
		}
		v.cache[tok] = e
	}
	v.mu.Unlock()
	return e, nil
}

func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n', 0:
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func roleOf(uc *jwt.UserClaims) string {
	for _, t := range uc.Tags {
		if r, ok := strings.CutPrefix(t, RoleTag); ok {
			return r
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// ReplayGuard remembers the nonces of verified API requests for as long as
// their signing time is inside the accepted window, so a request captured
// and sent again is refused. It is per process: with several masters, a
// replay that reaches another master within the window is not caught here
// (docs/security.md).
type ReplayGuard struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[string]time.Time // signer+nonce → forget after
}

// NewReplayGuard keeps nonces for window (use Options.MaxAge), at most max
// of them (0: 1,000,000); when full, new requests are refused until old
// entries expire.
func NewReplayGuard(window time.Duration, max int) *ReplayGuard {
	if max <= 0 {
		max = 1_000_000
	}
	return &ReplayGuard{window: window, max: max, seen: map[string]time.Time{}}
}

func (g *ReplayGuard) check(key, nonce string, at, now time.Time) error {
	if nonce == "" {
		return fmt.Errorf("%w: no %s", ErrMalformed, HeaderNonce)
	}
	k := key + "/" + nonce
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.seen[k]; ok {
		return fmt.Errorf("%w: nonce %s of %s seen before", ErrReplay, nonce, key)
	}
	if len(g.seen) >= g.max/2 {
		for x, until := range g.seen {
			if now.After(until) {
				delete(g.seen, x)
			}
		}
		if len(g.seen) >= g.max {
			return fmt.Errorf("%w: replay guard full (%d requests in the last %s)", ErrReplay, len(g.seen), g.window)
		}
	}
	// Kept until the signing time leaves the window on the late side.
	g.seen[k] = at.Add(g.window)
	return nil
}
