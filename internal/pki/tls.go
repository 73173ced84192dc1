package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultTLSDir is the seed's TLS directory.
const DefaultTLSDir = "/etc/zester/tls"

// Files of a TLS directory written by InitTLS.
const (
	FileCA         = "ca.pem"
	FileCAKey      = "ca-key.pem"
	FileServerCert = "server.pem"
	FileServerKey  = "server-key.pem"
	FileClientCert = "client.pem"
	FileClientKey  = "client-key.pem"
)

// TLSFiles are the paths InitTLS wrote.
type TLSFiles struct {
	Dir                   string
	CA, CAKey             string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	Hosts                 []string
	NotAfter              time.Time
}

// InitTLS makes a development CA and, signed by it, a server certificate
// for hosts (DNS names or IP addresses; also valid as a client certificate,
// for routes, leaf and gateway links) and a client certificate, all ECDSA
// P-256, valid for validity (default one year). Keys are 0600, certificates
// 0644, the directory 0755. It refuses to overwrite any of its files.
//
// This is for development and labs: a production deployment brings its own
// CA and uses the same three settings (ca, cert, key).
func InitTLS(dir string, hosts []string, validity time.Duration) (*TLSFiles, error) {
	if dir == "" {
		return nil, errors.New("tls init: directory: empty")
	}
	if len(hosts) == 0 {
		return nil, errors.New("tls init: --hosts: empty (name every host name and address clients use)")
	}
	if validity == 0 {
		validity = 365 * 24 * time.Hour
	}
	if validity < 0 {
		return nil, fmt.Errorf("tls init: validity %s: negative", validity)
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := validHostname(h); err != nil {
			return nil, fmt.Errorf("tls init: host %q: %w", h, err)
		}
		dns = append(dns, h)
	}
	f := &TLSFiles{
		Dir: dir, Hosts: hosts,
		CA: filepath.Join(dir, FileCA), CAKey: filepath.Join(dir, FileCAKey),
		ServerCert: filepath.Join(dir, FileServerCert), ServerKey: filepath.Join(dir, FileServerKey),
		ClientCert: filepath.Join(dir, FileClientCert), ClientKey: filepath.Join(dir, FileClientKey),
	}
	for _, p := range []string{f.CA, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("tls init: %s exists: refusing to overwrite", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tls init: %w", err)
		}
	}
	now := time.Now()
	f.NotAfter = now.Add(validity)
	caKey, caDER, err := makeCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Zester development CA", Organization: []string{"Zester"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              f.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("tls init: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("tls init: CA: %w", err)
	}
	srvKey, srvDER, err := makeCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{"Zester"}},
		NotBefore:   now.Add(-5 * time.Minute),
		NotAfter:    f.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls init: server certificate: %w", err)
	}
	cliKey, cliDER, err := makeCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "zester", Organization: []string{"Zester"}},
		NotBefore:   now.Add(-5 * time.Minute),
		NotAfter:    f.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls init: client certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tls init: %w", err)
	}
	type out struct {
		path string
		data []byte
		mode os.FileMode
	}
	var outs []out
	for _, c := range []struct {
		cert, key string
		der       []byte
		k         *ecdsa.PrivateKey
	}{{f.CA, f.CAKey, caDER, caKey}, {f.ServerCert, f.ServerKey, srvDER, srvKey}, {f.ClientCert, f.ClientKey, cliDER, cliKey}} {
		kb, err := x509.MarshalPKCS8PrivateKey(c.k)
		if err != nil {
			return nil, fmt.Errorf("tls init: %w", err)
		}
		outs = append(outs,
			out{c.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o644},
			out{c.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600})
	}
	var written []string
	for _, o := range outs {
		err := writeNew(o.path, o.data)
		if err == nil {
			written = append(written, o.path)
			err = os.Chmod(o.path, o.mode)
		}
		if err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, fmt.Errorf("tls init: %w", err)
		}
	}
	return f, nil
}

// makeCert creates a P-256 key and a certificate for it, signed by parent
// (self-signed when parent is nil).
func makeCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return key, der, err
}

// validHostname accepts DNS names, with one leading "*." label for a
// wildcard certificate.
func validHostname(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return errors.New("not a host name or IP address")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q is not a DNS label", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isHostChar(c) {
				return fmt.Errorf("character %q is not allowed in a host name", c)
			}
		}
	}
	return nil
}

func isHostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}
