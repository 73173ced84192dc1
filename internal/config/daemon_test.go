package config

import (
	"strings"
	"testing"
)

func TestProblems_Common(t *testing.T) {
	for _, tc := range []struct {
		name, id, level, http string
		want                  []string // substrings of the joined error; none: valid
	}{
		{"valid", "web-1", "info", "127.0.0.1:9100", nil},
		{"http off", "web-1", "debug", "", nil},
		{"bad id", "a b", "info", "", []string{"config key id:"}},
		{"bad level", "web-1", "loud", "", []string{"config key log_level:"}},
		{"bad http", "web-1", "info", "9100", []string{`config key http: "9100" is not host:port`}},
		{"all bad, all named", "", "loud", "x", []string{"config key id:", "config key log_level:", "config key http:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Problems
			p.Common(Daemon{ID: tc.id, LogLevel: tc.level, HTTP: tc.http})
			err := p.Err()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want %q, got no error", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

type validated struct {
	N int `yaml:"n"`
}

func (v *validated) Validate() error {
	var p Problems
	if v.N < 1 {
		p.Bad("n", "%d: want at least 1", v.N)
	}
	return p.Err()
}

func TestParseValid_DefaultsFileValidate(t *testing.T) {
	c, err := ParseValid("t.yaml", []byte("# only a comment\n"), validated{N: 3})
	if err != nil || c.N != 3 {
		t.Fatalf("defaults kept: got %+v, %v", c, err)
	}
	if c, err = ParseValid("t.yaml", []byte("n: 7\n"), validated{N: 3}); err != nil || c.N != 7 {
		t.Fatalf("file over defaults: got %+v, %v", c, err)
	}
	if _, err = ParseValid("t.yaml", []byte("n: 0\n"), validated{N: 3}); err == nil || !strings.Contains(err.Error(), "config key n: 0: want at least 1") {
		t.Fatalf("validated after the file: got %v", err)
	}
	if _, err = LoadValid("/nonexistent/t.yaml", true, validated{N: 3}); err == nil {
		t.Fatal("an explicit missing file is an error")
	}
}
