package master

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
)

// Secure by default (docs/security.md): unless master.yaml says
// insecure: true, a master has a PKI (pki_dir). An embedded master creates
// it on its first start and runs its nats-server in operator mode, so no
// client without Zester credentials can connect; every master connects with
// the masters' credentials, signs every dispatch and control message with
// their nkey, and authenticates API callers against the account JWT.

// setupTrust loads (or, for an embedded master, creates) the PKI, the
// signer and the API verifier. In insecure mode it only warns.
func (m *Master) setupTrust() error {
	m.creds = m.cfg.NATS.Creds
	if m.cfg.Insecure {
		// With masters' credentials the dispatches are signed all the
		// same, so that peels with credentials of the same PKI run them.
		if m.creds != "" {
			if s, err := sig.LoadSigner(m.creds); err == nil && s.Role() == sig.RoleMaster {
				m.signer = s
			}
		}
		m.log.Warn("INSECURE: insecure: true in master.yaml: no PKI; any client that reaches NATS can connect and API callers are not authenticated. For a lab only.",
			"signs_dispatches", m.signer != nil)
		return nil
	}
	dir := m.cfg.PKIDir
	var p *pki.PKI
	var sum *pki.Summary
	var err error
	if len(m.cfg.NATS.URL) == 0 {
		p, sum, err = pki.LoadOrInit(dir, pki.InitOptions{Partitions: m.cfg.Partitions})
	} else {
		p, err = pki.Load(dir)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w (a master of external NATS servers needs the PKI those servers trust: zester pki init --dir %s, then zester topology gen --pki-dir %s)", err, dir, dir)
		}
	}
	if err != nil {
		return fmt.Errorf("config key pki_dir: %w", err)
	}
	if sum != nil {
		m.log.Warn("PKI created on first start: the admin's credentials are in admin_creds (zester --creds, or zester finds them there itself); move the offline seeds away",
			"pki_dir", dir, "admin_creds", filepath.Join(dir, pki.FileAdminCreds), "offline", fileNames(sum.In(pki.Offline)))
	}
	if n, err := p.Partitions(); err != nil {
		return fmt.Errorf("config key pki_dir: %w", err)
	} else if n != m.cfg.Partitions {
		return fmt.Errorf("config key partitions: %d, but the account JWT in %s maps peels to %d partitions (pki init --partitions): they must agree", m.cfg.Partitions, dir, n)
	}
	if m.creds == "" {
		m.creds = p.MasterCreds
	}
	s, err := sig.LoadSigner(m.creds)
	if err != nil {
		return fmt.Errorf("config key nats.creds: %w", err)
	}
	if s.Role() != sig.RoleMaster {
		return fmt.Errorf("config key nats.creds: %s: user %s has role %q: peels run only dispatches signed by role %s (use %s)", m.creds, s.Name(), s.Role(), sig.RoleMaster, p.MasterCreds)
	}
	ac, _ := p.Account()
	m.pki, m.signer = p, s
	m.users = sig.NewVerifier(sig.TrustFromAccount(ac))
	m.replay = sig.NewReplayGuard(apiMaxAge, 0)
	m.log.Info("PKI loaded", "pki_dir", dir, "account", p.AccountKey(), "signer", s.Key())
	return nil
}

// accountCheckEvery bounds how often an API request makes the master look
// for a new account.jwt.
const accountCheckEvery = time.Second

// refreshAccount takes a changed account.jwt (a revocation written by
// another process on this host) for the API checks, and hands it to the
// embedded server, which closes the revoked users' connections.
func (m *Master) refreshAccount() {
	now := time.Now().UnixNano()
	last := m.accountChecked.Load()
	if now-last < int64(accountCheckEvery) || !m.accountChecked.CompareAndSwap(last, now) {
		return
	}
	changed, err := m.pki.Reload()
	if err != nil {
		m.log.Warn("account JWT not reloaded", "err", err)
		return
	}
	if changed && m.embedded != nil {
		if err := m.pki.ApplyAccount(m.embedded.NATS()); err != nil {
			m.log.Warn("account JWT not applied to the embedded server", "err", err)
			return
		}
		m.log.Info("account JWT changed on disk: applied (revocations take effect)")
	}
}

func fileNames(fs []pki.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// embeddedTune returns the options change that puts the embedded server in
// operator mode with the PKI and turns on TLS from the tls: block. What can
// fail (reading the certificates, loading the accounts into a resolver) is
// done here, before the server exists: a server must never start half
// configured, which would be an open one.
func embeddedTune(cfg Config, p *pki.PKI) (func(*server.Options), error) {
	var auth server.Options
	if p != nil {
		if err := p.ConfigureServer(&auth); err != nil {
			return nil, err
		}
	}
	var tc *tls.Config
	t := cfg.TLS
	if t.Enabled() {
		if t.Cert == "" {
			return nil, errors.New("config key tls.cert: the embedded server needs a certificate (and tls.key) to serve TLS")
		}
		var err error
		if tc, err = server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: t.Path(t.Cert), KeyFile: t.Path(t.Key), CaFile: t.Path(t.CA), Verify: t.VerifyClients,
		}); err != nil {
			return nil, fmt.Errorf("config key tls: %w", err)
		}
	}
	return func(o *server.Options) {
		if p != nil {
			o.TrustedOperators, o.SystemAccount, o.AccountResolver = auth.TrustedOperators, auth.SystemAccount, auth.AccountResolver
			o.NoAuthUser, o.Users, o.Nkeys, o.Accounts = "", nil, nil, nil
		}
		if tc != nil {
			o.TLSConfig, o.TLSVerify, o.TLSTimeout = tc, t.VerifyClients, 5
		}
	}, nil
}

// connectOptions are the master's credentials and TLS settings. A master
// reaches its own embedded server in-process when TLS is on, so the
// certificate need not name the loopback address.
func (m *Master) connectOptions() ([]nats.Option, error) {
	var o []nats.Option
	if m.creds != "" {
		o = append(o, nats.UserCredentials(m.creds))
	}
	if !m.cfg.TLS.Enabled() {
		return o, nil
	}
	if m.embedded != nil {
		return append(o, nats.InProcessServer(m.embedded.NATS())), nil
	}
	tc, err := m.cfg.TLS.ClientConfig("tls")
	if err != nil {
		return nil, err
	}
	return append(o, nats.Secure(tc)), nil
}

// signed is a message for the peels, signed with the masters' key (unsigned
// in insecure mode).
func (m *Master) signed(p sig.Purpose, subject string, body []byte) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: body}
	if m.signer != nil {
		// Sign fails only when the system's random source does, which
		// dispatch signatures do not use.
		_ = m.signer.Sign(p, msg, time.Now())
	}
	return msg
}
