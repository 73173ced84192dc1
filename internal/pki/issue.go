package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/sig"
)

// Tag keys in user JWTs. jwt.TagList lower-cases every tag, so values are
// escaped with EncodeTag (upper-case letters and anything but [a-z0-9._*?-]
// as %XX), and a reader decodes them with DecodeTag.
const (
	TagRole     = "zester-role:"
	TagTarget   = "zester-target:"
	TagFunction = "zester-function:"
)

// EnrollPayloadMax is the largest message the bootstrap credential may send:
// an enrollment request is an id, two public keys, a signature and a token.
const EnrollPayloadMax = 16 << 10

// UserSpec describes an operator user (zester pki user add).
type UserSpec struct {
	// Name is the user's name (names.ValidateID); it also makes the user's
	// private inbox prefix (names.UserInboxPrefix).
	Name string
	Role Role
	// Targets and Functions are optional limits in the shape of Salt's
	// publisher_acl: target globs (the -C language) and function globs the
	// user may run. Empty means no limit. The master enforces them (the NATS
	// server cannot): they travel as JWT tags.
	Targets, Functions []string
	// Expiry is how long the credentials are valid; 0 is forever.
	Expiry time.Duration
}

// UserInfo is what the master reads back from an operator user's JWT.
type UserInfo struct {
	Name               string
	Key                string // the user's public key
	Role               Role
	Targets, Functions []string
	Expires            time.Time // zero: never
}

// issuer signs user JWTs for one account.
type issuer struct {
	account string
	signer  nkeys.KeyPair
	// identity: signer is the account's identity key, not a signing key
	// (the system account), so the JWT carries no issuer_account.
	identity bool
}

func (i *issuer) sign(uc *jwt.UserClaims) (string, error) {
	if !i.identity {
		uc.IssuerAccount = i.account
	}
	return encode(uc, i.signer)
}

// userClaims builds the claims of a user of any role but peel.
func userClaims(spec UserSpec, pub string) (*jwt.UserClaims, error) {
	if err := names.ValidateID(spec.Name); err != nil {
		return nil, fmt.Errorf("user name: %w", err)
	}
	perms, err := rolePermissions(spec.Role, spec.Name)
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(pub)
	uc.Name = spec.Name
	uc.Permissions = perms
	uc.Tags.Add(TagRole + string(spec.Role))
	for _, t := range spec.Targets {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("target limit: empty glob")
		}
		uc.Tags.Add(TagTarget + EncodeTag(t))
	}
	for _, f := range spec.Functions {
		if strings.TrimSpace(f) == "" {
			return nil, errors.New("function limit: empty glob")
		}
		uc.Tags.Add(TagFunction + EncodeTag(f))
	}
	if spec.Role == roleEnroll {
		// The bootstrap credential is shared by every new peel: keep what
		// one holder can make the servers do small.
		uc.Limits.Payload = EnrollPayloadMax
		uc.Limits.Subs = 8
	}
	if spec.Expiry > 0 {
		uc.Expires = time.Now().Add(spec.Expiry).Unix()
	}
	return uc, nil
}

// newCreds creates a user nkey and returns its credentials file.
func (i *issuer) newCreds(spec UserSpec) ([]byte, *jwt.UserClaims, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	pub, _ := kp.PublicKey()
	uc, err := userClaims(spec, pub)
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	tok, err := i.sign(uc)
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	seed, _ := kp.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	return creds, uc, nil
}

// IssueUser creates an operator user (role admin, operator or readonly):
// a new nkey and a JWT signed by the account signing key. It returns the
// credentials file content, and records the public JWT in the PKI's users/
// directory; a second user of the same name is refused (its inbox prefix
// would be shared).
func (p *PKI) IssueUser(spec UserSpec) ([]byte, *UserInfo, error) {
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	if err := names.ValidateID(spec.Name); err != nil {
		return nil, nil, fmt.Errorf("user name: %w", err)
	}
	dir := filepath.Join(p.Dir, DirUsers)
	rec := filepath.Join(dir, spec.Name+".jwt")
	if _, err := os.Lstat(rec); err == nil {
		return nil, nil, fmt.Errorf("user %s: %s exists: a user of that name was issued already (revoke it and remove the file to reissue)", spec.Name, rec)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	creds, uc, err := p.iss.newCreds(spec)
	if err != nil {
		return nil, nil, err
	}
	tok, _ := jwt.ParseDecoratedJWT(creds)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	if err := writeNew(rec, []byte(tok+"\n")); err != nil {
		return nil, nil, fmt.Errorf("user %s: %w", spec.Name, err)
	}
	info, err := ReadUser(uc)
	if err != nil {
		return nil, nil, err
	}
	return creds, info, nil
}

// IssuePeel signs the user JWT of an accepted peel whose nkey is peelPub,
// with PeelPermissions(spec), valid for expiry (0: forever; peels should get
// a finite expiry and renew). The JWT is public: the peel holds the seed.
func (p *PKI) IssuePeel(spec PeelSpec, peelPub string, expiry time.Duration) (string, error) {
	perms, err := PeelPermissions(spec)
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(peelPub) {
		return "", fmt.Errorf("peel %s: %q is not a user public key", spec.ID, peelPub)
	}
	uc := jwt.NewUserClaims(peelPub)
	uc.Name = spec.ID
	uc.Permissions = perms
	uc.Tags.Add(TagRole + string(RolePeel))
	if expiry > 0 {
		uc.Expires = time.Now().Add(expiry).Unix()
	}
	tok, err := p.iss.sign(uc)
	if err != nil {
		return "", fmt.Errorf("peel %s: %w", spec.ID, err)
	}
	return tok, nil
}

// DecodeCreds returns the user claims of a credentials file's JWT. It does
// not verify the chain (the NATS server does that on connect).
func DecodeCreds(creds []byte) (*jwt.UserClaims, error) {
	_, uc, err := sig.DecodeCreds(creds)
	return uc, err
}

// ReadUser reads the role, limits and expiry from a user JWT's claims.
func ReadUser(uc *jwt.UserClaims) (*UserInfo, error) {
	u := &UserInfo{Name: uc.Name, Key: uc.Subject}
	if uc.Expires > 0 {
		u.Expires = time.Unix(uc.Expires, 0)
	}
	for _, t := range uc.Tags {
		var err error
		var v string
		switch {
		case strings.HasPrefix(t, TagRole):
			u.Role = Role(strings.TrimPrefix(t, TagRole))
		case strings.HasPrefix(t, TagTarget):
			if v, err = DecodeTag(strings.TrimPrefix(t, TagTarget)); err == nil {
				u.Targets = append(u.Targets, v)
			}
		case strings.HasPrefix(t, TagFunction):
			if v, err = DecodeTag(strings.TrimPrefix(t, TagFunction)); err == nil {
				u.Functions = append(u.Functions, v)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("user %s: tag %q: %w", uc.Name, t, err)
		}
	}
	if u.Role == "" {
		return nil, fmt.Errorf("user %s: no %s tag: not issued by zester pki", uc.Name, strings.TrimSuffix(TagRole, ":"))
	}
	return u, nil
}

// InboxPrefix is the reply-inbox prefix a connection with these user claims
// must use (nats.CustomInboxPrefix), or "" for principals that may use the
// default one (masters, the system user, foreign credentials).
func InboxPrefix(uc *jwt.UserClaims) string {
	u, err := ReadUser(uc)
	if err != nil {
		return ""
	}
	switch u.Role {
	case RolePeel:
		return names.PeelInboxPrefix(u.Name)
	case roleEnroll:
		return names.EnrollInboxPrefix
	case RoleAdmin, RoleOperator, RoleReadonly:
		return names.UserInboxPrefix(u.Name)
	}
	return ""
}

// CredsInboxPrefix is InboxPrefix for a credentials file; "" when the file
// cannot be read or parsed (the NATS client then reports the problem).
func CredsInboxPrefix(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	uc, err := DecodeCreds(b)
	if err != nil {
		return ""
	}
	return InboxPrefix(uc)
}

// EncodeTag escapes s for a JWT tag, which jwt.TagList lower-cases and
// trims: every byte outside [a-z0-9._*?-] becomes %XX, so the value
// survives both and DecodeTag restores it exactly.
func EncodeTag(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._*?-", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	return b.String()
}

// DecodeTag reverses EncodeTag.
func DecodeTag(s string) (string, error) {
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("bad escape: %w", err)
	}
	return v, nil
}

// Revoke revokes every JWT of user key pub issued up to now, re-signs the
// account JWT with the operator signing key, replaces account.jwt, and
// returns the new account JWT. The servers must then get it (ApplyAccount
// for an embedded server); a revoked user's connections are closed and it
// cannot reconnect.
func (p *PKI) Revoke(pub string) (string, error) {
	if p.operatorSigner == nil {
		return "", fmt.Errorf("revoke: %s is missing: revoking needs the operator signing key", filepath.Join(p.Dir, FileOperatorSigningSeed))
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("revoke: %q is not a user public key", pub)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Work on a copy: p.account is shared with readers.
	ac, err := jwt.DecodeAccountClaims(p.accountJWT)
	if err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	ac.Revoke(pub)
	tok, err := encode(ac, p.operatorSigner)
	if err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	if err := writeReplace(filepath.Join(p.Dir, FileAccountJWT), []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	p.account, p.accountJWT = ac, tok
	return tok, nil
}
