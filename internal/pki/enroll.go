package pki

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// What enrollment (master/enroll.go) needs of the PKI beyond IssuePeel: the
// account's revocations shared by every master, and a check of a caller's
// signed request.

// Revocations returns a copy of the account JWT's revocations (user public
// key → unix time: every JWT of that key issued at or before the time is
// revoked).
func (p *PKI) Revocations() map[string]int64 {
	ac, _ := p.Account()
	return maps.Clone(map[string]int64(ac.Revocations))
}

// RevokedAt reports the revocation time of user key pub (0: not revoked).
func (p *PKI) RevokedAt(pub string) int64 {
	ac, _ := p.Account()
	return ac.Revocations[pub]
}

// MergeRevocations adds every revocation of revs that the account JWT lacks
// (or holds with an earlier time), re-signs the account JWT with the
// operator signing key and replaces account.jwt. It reports whether the JWT
// changed; when it did not, nothing is written. Masters call it with the
// shared list of the enrollments bucket, so each master's copy of the PKI
// directory converges on the union of every master's revocations.
func (p *PKI) MergeRevocations(revs map[string]int64) (string, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	missing := false
	for pub, ts := range revs {
		if cur, ok := p.account.Revocations[pub]; !ok || cur < ts {
			missing = true
			break
		}
	}
	if !missing {
		return p.accountJWT, false, nil
	}
	if p.operatorSigner == nil {
		return "", false, fmt.Errorf("revoke: %s is missing: revoking needs the operator signing key", filepath.Join(p.Dir, FileOperatorSigningSeed))
	}
	ac, err := jwt.DecodeAccountClaims(p.accountJWT)
	if err != nil {
		return "", false, fmt.Errorf("revoke: %w", err)
	}
	for pub, ts := range revs {
		if !nkeys.IsValidPublicUserKey(pub) {
			return "", false, fmt.Errorf("revoke: %q is not a user public key", pub)
		}
		ac.RevokeAt(pub, time.Unix(ts, 0))
	}
	tok, err := encode(ac, p.operatorSigner)
	if err != nil {
		return "", false, fmt.Errorf("revoke: %w", err)
	}
	if err := writeReplace(filepath.Join(p.Dir, FileAccountJWT), []byte(tok+"\n")); err != nil {
		return "", false, fmt.Errorf("revoke: %w", err)
	}
	p.account, p.accountJWT = ac, tok
	return tok, true, nil
}

// SysCreds is the path of the system user's credentials in the PKI
// directory when the file is there and readable ("" otherwise): what a master
// uses to push account JWT updates to servers it does not embed.
func (p *PKI) SysCreds() string {
	path := filepath.Join(p.Dir, FileSysCreds)
	if f, err := os.Open(path); err == nil {
		f.Close()
		return path
	}
	return ""
}

// ErrNotAccountUser is returned (wrapped) by VerifyUser for a JWT that the
// Zester account did not issue.
var ErrNotAccountUser = errors.New("not a user of the Zester account")

// VerifyUser checks that userJWT is a user of the Zester account (signed by
// the account or one of its signing keys), valid at now and not revoked, and
// that sig is its key's signature of data. It returns who the user is. This
// is how a master learns the authenticated identity of a caller: the NATS
// server tells a responder nothing about the requester.
func (p *PKI) VerifyUser(userJWT string, data, sig []byte, now time.Time) (*UserInfo, error) {
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return nil, fmt.Errorf("caller JWT: %w", err)
	}
	ac, _ := p.Account()
	if !ac.DidSign(uc) {
		return nil, fmt.Errorf("caller %s: %w", uc.Name, ErrNotAccountUser)
	}
	if uc.Expires > 0 && now.Unix() > uc.Expires {
		return nil, fmt.Errorf("caller %s: credentials expired at %s", uc.Name, time.Unix(uc.Expires, 0).UTC().Format(time.RFC3339))
	}
	if ac.IsClaimRevoked(uc) {
		return nil, fmt.Errorf("caller %s: credentials revoked", uc.Name)
	}
	kp, err := nkeys.FromPublicKey(uc.Subject)
	if err != nil {
		return nil, fmt.Errorf("caller %s: %w", uc.Name, err)
	}
	if err := kp.Verify(data, sig); err != nil {
		return nil, fmt.Errorf("caller %s: signature does not verify with its key %s", uc.Name, uc.Subject)
	}
	u := &UserInfo{Name: uc.Name, Key: uc.Subject}
	if info, err := ReadUser(uc); err == nil {
		u = info
	}
	return u, nil
}
