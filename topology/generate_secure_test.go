package topology

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zester-io/zester/internal/pki"
)

// Operator mode and TLS in generated configs: every file is a valid
// nats-server config that trusts the PKI's operator, has no password and
// no global-account mapping, serves TLS on clients, routes, leaf listener
// and remotes, and the leaf dials with its link credentials into the
// Zester account.
func TestGenerate_OperatorModeAndTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(filepath.Join(dir, "pki"), pki.InitOptions{Partitions: 16}); err != nil {
		t.Fatal(err)
	}
	p, err := pki.Load(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	tf, err := pki.InitTLS(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "leaf.creds")
	if err := os.WriteFile(creds, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := Generate(GenOptions{Kind: KindLeaf, Routes: []string{"h1:6222", "h2:6222", "h3:6222"}, Leafs: 2, Partitions: 16,
		Operator: p.ServerConfig(), Account: p.AccountKey(), LeafCreds: creds,
		TLS: &GenTLS{CA: tf.CA, Cert: tf.ServerCert, Key: tf.ServerKey, VerifyClients: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Fatalf("%d files", len(files))
	}
	for name, b := range files {
		if strings.Contains(string(b), "password") || strings.Contains(string(b), "mappings") {
			t.Errorf("%s: a password or a global mapping in operator mode:\n%s", name, b)
		}
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o644)
		o, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		if len(o.TrustedOperators) != 1 || o.TrustedOperators[0].Subject != p.Operator.Subject || o.SystemAccount != p.System.Subject {
			t.Errorf("%s: operator %v, system account %q", name, o.TrustedOperators, o.SystemAccount)
		}
		if o.TLSConfig == nil || o.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: clients without TLS or without verification", name)
		}
		if strings.HasPrefix(name, "hub") {
			if o.Cluster.TLSConfig == nil || o.LeafNode.TLSConfig == nil {
				t.Errorf("%s: routes or leaf listener without TLS", name)
			}
			continue
		}
		if len(o.LeafNode.Remotes) != 1 {
			t.Fatalf("%s: remotes %v", name, o.LeafNode.Remotes)
		}
		r := o.LeafNode.Remotes[0]
		if r.Credentials != creds || r.LocalAccount != p.AccountKey() || r.TLSConfig == nil {
			t.Errorf("%s: remote credentials %q account %q tls %v", name, r.Credentials, r.LocalAccount, r.TLSConfig != nil)
		}
	}
	// Operator mode needs the account and, with leafs, the link credentials.
	for _, o := range []GenOptions{
		{Kind: KindSingle, Operator: p.ServerConfig()},
		{Kind: KindLeaf, LeafRemotes: []string{"hub:7422"}, Operator: p.ServerConfig(), Account: p.AccountKey()},
		{Kind: KindSingle, SysPassword: testSysPassword, TLS: &GenTLS{Cert: "relative.pem", Key: "/k.pem"}},
		{Kind: KindSingle, SysPassword: testSysPassword, TLS: &GenTLS{Cert: "/c.pem", Key: "/k.pem", VerifyClients: true}},
	} {
		if _, err := Generate(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
