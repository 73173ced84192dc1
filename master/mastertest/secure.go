package mastertest

import (
	"testing"

	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
)

// Secure is the secure default for tests (testkit.Secure: a PKI and a
// nats-server in operator mode trusting it) with the master's config for it.
type Secure struct{ *testkit.Secure }

// StartSecure creates a PKI and starts a server in operator mode with it.
func StartSecure(t testing.TB) *Secure {
	t.Helper()
	return &Secure{testkit.StartSecure(t)}
}

// Config is Config for a secure master of s: pki_dir set, not insecure.
func (s *Secure) Config(id string) master.Config {
	c := Config(id, s.URL)
	c.Insecure = false
	c.PKIDir = s.Dir
	return c
}
