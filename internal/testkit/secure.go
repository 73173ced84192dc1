package testkit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/topology"
)

// Secure is the secure default for tests: a PKI in t.TempDir() and a real
// nats-server in operator mode trusting it. The daemons' helpers turn it
// into their configs (mastertest.Secure.Config, peeltest.SecureConfig).
type Secure struct {
	PKI    *pki.PKI
	Dir    string // the PKI directory (master.yaml pki_dir)
	Server *topology.Server
	URL    string
}

// StartSecure creates a PKI and starts a server in operator mode with it.
func StartSecure(t testing.TB) *Secure {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := pki.Init(dir, pki.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	s := LoadSecure(t, dir, "")
	s.Server = pkitest.StartServer(t, s.PKI)
	s.URL = s.Server.ClientURL()
	return s
}

// LoadSecure is the Secure of a PKI that exists in dir (one a master made
// for its embedded server, say), served at url.
func LoadSecure(t testing.TB, dir, url string) *Secure {
	t.Helper()
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Secure{PKI: p, Dir: dir, URL: url}
}

// AdminCreds is the path of the PKI's admin credentials.
func (s *Secure) AdminCreds() string { return filepath.Join(s.Dir, pki.FileAdminCreds) }

// PeelCreds pre-provisions a peel (pki.AddPeel) and returns the path of its
// credentials file.
func (s *Secure) PeelCreds(t testing.TB, id string) string {
	t.Helper()
	creds, err := s.PKI.AddPeel(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return writeCreds(t, id, creds)
}

// UserCreds issues an operator user and returns its credentials file.
func (s *Secure) UserCreds(t testing.TB, spec pki.UserSpec) string {
	t.Helper()
	creds, _, err := s.PKI.IssueUser(spec)
	if err != nil {
		t.Fatal(err)
	}
	return writeCreds(t, spec.Name, creds)
}

func writeCreds(t testing.TB, name string, creds []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
