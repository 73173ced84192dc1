package pki

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// ResolverPreload maps each account's public key to its JWT: the Zester
// account and the system account. It is what server.MemAccResolver must
// hold and what a config file's resolver_preload block lists.
func (p *PKI) ResolverPreload() map[string]string {
	_, acc := p.Account()
	return map[string]string{p.AccountKey(): acc, p.System.Subject: p.SystemJWT}
}

// ConfigureServer puts o (an embedded nats-server's options) in operator
// mode with this PKI: the operator trusted, its system account, and an
// in-memory account resolver holding both account JWTs. Every client then
// needs a user JWT of the Zester or the system account; there is no
// unauthenticated access. Only public JWTs reach the server.
func (p *PKI) ConfigureServer(o *server.Options) error {
	r := &server.MemAccResolver{}
	for pub, tok := range p.ResolverPreload() {
		if err := r.Store(pub, tok); err != nil {
			return fmt.Errorf("pki: resolver: %w", err)
		}
	}
	o.TrustedOperators = []*jwt.OperatorClaims{p.Operator}
	o.SystemAccount = p.System.Subject
	o.AccountResolver = r
	// Operator mode and these are mutually exclusive in nats-server.
	o.NoAuthUser, o.Users, o.Nkeys, o.Accounts = "", nil, nil, nil
	return nil
}

// ApplyAccount gives a running server that ConfigureServer set up the
// current account JWT (after Revoke): connections of revoked users are
// closed at once.
func (p *PKI) ApplyAccount(s *server.Server) error {
	ac, tok := p.Account()
	r := s.AccountResolver()
	if r == nil {
		return fmt.Errorf("pki: server %s has no account resolver (not in operator mode)", s.Name())
	}
	if err := r.Store(ac.Subject, tok); err != nil {
		return fmt.Errorf("pki: resolver: %w", err)
	}
	acc, err := s.LookupAccount(ac.Subject)
	if err != nil {
		return fmt.Errorf("pki: account %s: %w", ac.Subject, err)
	}
	s.UpdateAccountClaims(acc, ac)
	return nil
}

// ServerConfig is the operator-mode block of a nats-server configuration
// file: the operator JWT inline, the system account, the memory resolver and
// its preload. Like everything a server gets, it holds no secret.
//
// A memory resolver changes only with the file (a config reload), so a
// revocation reaches such servers when the file is rewritten and reloaded;
// topology generation for clusters should move to the full resolver
// (`resolver: {type: full}`) with claim updates pushed by the masters.
func (p *PKI) ServerConfig() string {
	var b strings.Builder
	b.WriteString("# Operator mode, written from the Zester PKI (zester pki). No secrets here.\n")
	fmt.Fprintf(&b, "operator: %q\n", p.OperatorJWT)
	fmt.Fprintf(&b, "system_account: %q\n", p.System.Subject)
	b.WriteString("resolver: MEMORY\n")
	b.WriteString("resolver_preload: {\n")
	pre := p.ResolverPreload()
	keys := slices.Sorted(maps.Keys(pre))
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %q\n", k, pre[k])
	}
	b.WriteString("}\n")
	return b.String()
}
