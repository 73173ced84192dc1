// Package config loads the daemons' YAML files strictly: unknown keys,
// duplicate keys and values of the wrong type are errors that name the key
// and its line and column.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// Load reads path into v (which holds the defaults already). A missing file
// is an error only when required is true.
func Load(path string, required bool, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !required {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, v)
}

// Parse decodes YAML data into v strictly.
func Parse(name string, data []byte, v any) error {
	if onlyComments(data) {
		return nil // an empty document would zero the defaults
	}
	if err := yaml.UnmarshalWithOptions(data, v, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return fmt.Errorf("config %s: %s", name, yaml.FormatError(err, false, true))
	}
	return nil
}

// Duration is a time.Duration read from "90s", "5m", "7d" or "2w". A value
// that does not parse is kept as an error for Validate, which knows the key's
// name (the YAML decoder loses it for text values).
type Duration struct {
	v   time.Duration
	bad error
}

// Dur makes a Duration.
func Dur(d time.Duration) Duration { return Duration{v: d} }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	d.v, d.bad = ParseDuration(string(b))
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.v.String()), nil }

// D is the time.Duration.
func (d Duration) D() time.Duration { return d.v }

// Err is the parse error of the value, if any.
func (d Duration) Err() error { return d.bad }

// ParseDuration extends time.ParseDuration with d (24h) and w (7d) units.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("duration %q: want a number before %q", s, u.suffix)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 90s, 5m, 12h, 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: negative", s)
	}
	return d, nil
}

// ByteSize is a size read from "1048576", "512KiB", "1MiB", "10GB"; like
// Duration it keeps a parse error for Validate.
type ByteSize struct {
	v   int64
	bad error
}

// Bytes makes a ByteSize.
func Bytes(n int64) ByteSize { return ByteSize{v: n} }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(t []byte) error {
	b.v, b.bad = ParseByteSize(string(t))
	return nil
}

// N is the size in bytes.
func (b ByteSize) N() int64 { return b.v }

// Err is the parse error of the value, if any.
func (b ByteSize) Err() error { return b.bad }

// Check returns the first parse error among named values, naming its key.
func Check(vals map[string]interface{ Err() error }) error {
	keys := slices.Sorted(maps.Keys(vals))
	var errs []error
	for _, k := range keys {
		if err := vals[k].Err(); err != nil {
			errs = append(errs, fmt.Errorf("config key %s: %v", k, err))
		}
	}
	return errors.Join(errs...)
}

// ParseByteSize reads a size with an optional unit (B, K/KB/KiB, M/MB/MiB,
// G/GB/GiB, T/TB/TiB). Every unit is a power of 1024, as in the nats CLI
// (`nats stream edit --max-bytes 10GB` is 10 GiB), so the same words in
// master.yaml and in an operator's command mean the same size.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("size %q: want e.g. 1048576, 512KiB, 10GB", s)
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want e.g. 1048576, 512KiB, 10GB", s)
	}
	return n, nil
}

// URLs is a list of NATS URLs given as one comma-separated string or a YAML list.
type URLs []string

// UnmarshalYAML accepts a string or a list of strings.
func (u *URLs) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*u = SplitURLs(one)
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return fmt.Errorf("want a URL or a list of URLs")
	}
	*u = many
	return nil
}

// SplitURLs splits a comma-separated URL list, dropping empty parts.
func SplitURLs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// String joins the URLs for nats.Connect.
func (u URLs) String() string { return strings.Join(u, ",") }

func onlyComments(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

// Redact hides the passwords in a comma-separated list of URLs, for logs
// and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}
