package pki

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// What enrollment (master/enroll.go) needs of the PKI beyond IssuePeel: the
// account's revocations, shared by every master, and the system user's
// credentials to hand them to servers.

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
