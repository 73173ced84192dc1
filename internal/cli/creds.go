package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
)

// Where the CLI finds its credentials, first match wins: --creds, then
// ZESTER_CREDS (the flag's default), then admin.creds of the PKI directory
// (--pki-dir, ZESTER_PKI_DIR, /etc/zester/pki) when this user can read it,
// which is the case on an embedded master's host for whoever runs it. The
// same credentials sign the CLI's requests to the master API: the master
// learns who asks from that signature (docs/security.md).

// pkiDirDefault is --pki-dir's default.
func pkiDirDefault() string {
	if d := os.Getenv("ZESTER_PKI_DIR"); d != "" {
		return d
	}
	return pki.DefaultDir
}

// credsFile is the credentials file to use, "" for none.
func (a *app) credsFile() string {
	if a.creds != "" {
		return a.creds
	}
	if a.pkiDir == "" {
		return ""
	}
	p := filepath.Join(a.pkiDir, pki.FileAdminCreds)
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	f.Close()
	return p
}

// authOptions are the connect options of the credentials (and the inbox
// prefix their role must use), and loads the request signer.
func (a *app) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if a.tlsCA != "" {
		opts = append(opts, nats.RootCAs(a.tlsCA))
	}
	creds := a.credsFile()
	if creds == "" {
		return opts, nil
	}
	opts = append(opts, nats.UserCredentials(creds))
	// Users issued by zester pki may subscribe only below their own inbox prefix.
	if p := pki.CredsInboxPrefix(creds); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	s, err := sig.LoadSigner(creds)
	if err != nil {
		return nil, withCode(ExitError, fmt.Errorf("credentials: %w", err))
	}
	a.signer = s
	return opts, nil
}

// connectHint explains an authentication failure.
func (a *app) connectHint(err error) error {
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return err
	}
	if a.credsFile() == "" {
		return fmt.Errorf("%w: the server wants Zester credentials: --creds FILE, ZESTER_CREDS, or run where %s is readable (--pki-dir, ZESTER_PKI_DIR)", err, filepath.Join(a.pkiDir, pki.FileAdminCreds))
	}
	return fmt.Errorf("%w: the server refused %s (revoked, expired, or of another PKI?)", err, a.credsFile())
}

// request sends one request to the master API, signed with the CLI's
// credentials when it has some. Each call signs anew (a fresh time and
// nonce), so a retry is never refused as a replay.
func (a *app) request(ctx context.Context, subject string, body []byte) (*nats.Msg, error) {
	m := &nats.Msg{Subject: subject, Data: body}
	if a.signer != nil {
		if err := a.signer.Sign(sig.API, m, time.Now()); err != nil {
			return nil, err
		}
	}
	resp, err := a.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, err
	}
	return resp, nil
}
