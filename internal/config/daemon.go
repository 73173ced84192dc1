package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/obs"
)

// Validator is a daemon's configuration struct: it names its first bad key.
type Validator[T any] interface {
	*T
	Validate() error
}

// LoadValid reads the file at path over the defaults and validates the
// result: the layers every daemon loads (defaults, file, validate). The
// default path may be missing; an explicit one may not.
func LoadValid[T any, P Validator[T]](path string, explicit bool, defaults T) (T, error) {
	c := defaults
	if err := Load(path, explicit, &c); err != nil {
		return c, err
	}
	return c, P(&c).Validate()
}

// ParseValid reads YAML text (named name in errors) over the defaults and
// validates the result.
func ParseValid[T any, P Validator[T]](name string, data []byte, defaults T) (T, error) {
	c := defaults
	if err := Parse(name, data, &c); err != nil {
		return c, err
	}
	return c, P(&c).Validate()
}

// Problems collects what is wrong with a configuration, one error per bad
// key, so that an operator sees every problem of a file at once.
type Problems []error

// Bad records that key is wrong, and why.
func (p *Problems) Bad(key, format string, a ...any) {
	*p = append(*p, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, a...)))
}

// Add records err unless it is nil.
func (p *Problems) Add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

// Err is every problem joined, nil when there is none.
func (p Problems) Err() error { return errors.Join(p...) }

// Daemon is the keys both daemons' configurations start with; master.yaml
// and peel.yaml inline it.
type Daemon struct {
	// ID names the daemon; default: the host name.
	ID string `yaml:"id"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// HTTP is the address of /healthz, /readyz and /metrics; empty for none.
	HTTP string `yaml:"http"`
}

// DefaultDaemon is the host name as the id, info logging, and the HTTP
// endpoints on http.
func DefaultDaemon(http string) Daemon {
	host, _ := os.Hostname()
	return Daemon{ID: host, LogLevel: "info", HTTP: http}
}

// Common checks the keys both daemons have: id, log_level and http (an
// address, or empty for none).
func (p *Problems) Common(d Daemon) {
	if err := names.ValidateID(d.ID); err != nil {
		p.Bad("id", "%v", err)
	}
	if _, err := obs.ParseLevel(d.LogLevel); err != nil {
		p.Bad("log_level", "%v", err)
	}
	p.HostPort("http", d.HTTP, true)
}

// IntRange records that the value v of key is outside lo to hi (both
// allowed).
func (p *Problems) IntRange(key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.Bad(key, "%d: want %d to %d", v, lo, hi)
	}
}

// DurRange records that the duration d of key is outside lo to hi (both
// allowed).
func (p *Problems) DurRange(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.Bad(key, "%s: want %s to %s", d, ShortDuration(lo), ShortDuration(hi))
	}
}

// ShortDuration writes d as an operator would: 10m and 1h, not
// time.Duration's 10m0s and 1h0m0s; 0 for none.
func ShortDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// HostPort checks that the value of key is host:port; empty is allowed
// when optional.
func (p *Problems) HostPort(key, v string, optional bool) {
	if v == "" && optional {
		return
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		p.Bad(key, "%q is not host:port", v)
	}
}
