package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultTLSDir is where relative paths of a tls: block are looked up (the
// seed's /etc/zester/tls/, where `zester tls init` writes by default).
const DefaultTLSDir = "/etc/zester/tls"

// TLS is the tls: block of master.yaml and peel.yaml. TLS is on when any of
// CA, Cert or Key is set. Relative paths are taken under Dir.
type TLS struct {
	// Dir is the directory of relative paths (default /etc/zester/tls).
	Dir string `yaml:"dir"`
	// CA is the PEM bundle of the certificate authorities that sign the
	// NATS servers' certificates (and, on an embedded server that verifies
	// clients, the clients').
	CA string `yaml:"ca"`
	// Cert and Key are this daemon's certificate and private key: the
	// embedded server's certificate on a master, the client certificate of
	// a peel (needed when the server verifies clients).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled reports whether the block asks for TLS.
func (t TLS) Enabled() bool { return t.CA != "" || t.Cert != "" || t.Key != "" }

// Path resolves one of the block's file names against Dir ("" stays "").
func (t TLS) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	dir := t.Dir
	if dir == "" {
		dir = DefaultTLSDir
	}
	return filepath.Join(dir, p)
}

// Validate checks the block's shape (not the files: they may appear before
// start); prefix is the key of the block ("tls").
func (t TLS) Validate(prefix string) error {
	var errs []error
	if (t.Cert == "") != (t.Key == "") {
		errs = append(errs, fmt.Errorf("config key %s: cert and key go together (cert %q, key %q)", prefix, t.Cert, t.Key))
	}
	return errors.Join(errs...)
}

// Load reads the CA bundle and the key pair. Errors name the key and file.
func (t TLS) Load(prefix string) (pool *x509.CertPool, cert *tls.Certificate, err error) {
	if t.CA != "" {
		b, err := os.ReadFile(t.Path(t.CA))
		if err != nil {
			return nil, nil, fmt.Errorf("config key %s.ca: %w", prefix, err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, nil, fmt.Errorf("config key %s.ca: %s holds no PEM certificate", prefix, t.Path(t.CA))
		}
	}
	if t.Cert != "" {
		c, err := tls.LoadX509KeyPair(t.Path(t.Cert), t.Path(t.Key))
		if err != nil {
			return nil, nil, fmt.Errorf("config key %s.cert/%s.key: %w", prefix, prefix, err)
		}
		cert = &c
	}
	return pool, cert, nil
}

// ClientConfig is the TLS configuration of a NATS client with this block:
// the CA as the roots (the system roots when no CA is set), the certificate
// as the client certificate.
func (t TLS) ClientConfig(prefix string) (*tls.Config, error) {
	pool, cert, err := t.Load(prefix)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}
