package facts

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"time"
)

var machineIDPaths = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

func (c *collector) machineID() string {
	for _, p := range machineIDPaths {
		id := c.readTrim(p)
		// systemd writes "uninitialized" until first boot completes.
		if id != "" && id != "uninitialized" {
			c.ok()
			return id
		}
	}
	return ""
}

// fqdn finds the fully qualified name of the host, best effort:
//  1. a hostname that already contains a dot is taken as is;
//  2. /etc/hosts: a name of the hostname's line that extends the hostname
//     ("web1" → "web1.example.com");
//  3. the system resolver, bounded by Options.FQDNTimeout: the canonical
//     name of the hostname, again only if it extends the hostname (which is
//     what happens with a resolv.conf search domain).
//
// Otherwise the hostname itself is returned.
func (c *collector) fqdn(ctx context.Context, hostname string) string {
	if hostname == "" || strings.Contains(hostname, ".") {
		return hostname
	}
	if fh, err := c.open("/etc/hosts"); err == nil {
		name, _ := fqdnFromHosts(fh, hostname)
		fh.Close()
		if name != "" {
			return name
		}
	}
	if c.root != "/" || c.opts.FQDNTimeout < 0 {
		return hostname
	}
	return lookupFQDN(ctx, hostname, c.opts.FQDNTimeout)
}

func lookupFQDN(ctx context.Context, hostname string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cname, err := net.DefaultResolver.LookupCNAME(ctx, hostname)
	if err != nil {
		return hostname
	}
	if name := strings.TrimSuffix(cname, "."); extendsHostname(name, hostname) {
		return name
	}
	return hostname
}

// extendsHostname reports whether name is hostname qualified by a domain.
func extendsHostname(name, hostname string) bool {
	return len(name) > len(hostname)+1 &&
		strings.EqualFold(name[:len(hostname)+1], hostname+".") &&
		!strings.HasSuffix(name, ".")
}

// fqdnFromHosts parses a hosts(5) file and returns the first name that
// qualifies hostname (hostname + "." + domain) among the names of a line
// that mentions hostname, preferring the line's canonical (first) name.
// It returns "" when there is none.
func fqdnFromHosts(r io.Reader, hostname string) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		names := f[1:]
		mentions := false
		for _, n := range names {
			if strings.EqualFold(n, hostname) || extendsHostname(n, hostname) {
				mentions = true
				break
			}
		}
		if !mentions {
			continue
		}
		for _, n := range names {
			if extendsHostname(n, hostname) {
				return n, nil
			}
		}
	}
	return "", sc.Err()
}
