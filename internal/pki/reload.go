package pki

import (
	"fmt"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
)

// Reload reads account.jwt again and takes it when it differs from the one
// in memory (another process revoked a user, say): it must be signed by the
// operator and be the same account. It reports whether the account changed;
// the servers then need it too (ApplyAccount).
func (p *PKI) Reload() (bool, error) {
	path := filepath.Join(p.Dir, FileAccountJWT)
	tok, err := readText(p.Dir, FileAccountJWT)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if tok == p.accountJWT {
		return false, nil
	}
	ac, err := jwt.DecodeAccountClaims(tok)
	if err != nil {
		return false, fmt.Errorf("pki: %s: %w", path, err)
	}
	if !p.Operator.DidSign(ac) {
		return false, fmt.Errorf("pki: %s: not signed by the operator of %s", path, FileOperatorJWT)
	}
	if ac.Subject != p.account.Subject {
		return false, fmt.Errorf("pki: %s: account %s, not the Zester account %s", path, ac.Subject, p.account.Subject)
	}
	if pub, _ := p.iss.signer.PublicKey(); !ac.SigningKeys.Contains(pub) {
		return false, fmt.Errorf("pki: %s: the account no longer lists the signing key of %s", path, FileAccountSigningSeed)
	}
	p.account, p.accountJWT = ac, tok
	return true, nil
}
