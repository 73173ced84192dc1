package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5h": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "soon", "-5s", "xd", "-1d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "1KiB": 1024, "10GB": 10 << 30, "10GiB": 10 << 30, "1.5MiB": 3 << 19} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1XB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type sample struct {
	ID   string   `yaml:"id"`
	Wait Duration `yaml:"wait"`
	Sub  struct {
		N int `yaml:"n"`
	} `yaml:"sub"`
}

func TestParse_StrictNamesKey(t *testing.T) {
	var s sample
	for in, want := range map[string]string{
		"id: a\nbogus: 1\n": "bogus",
		"sub:\n  m: 1\n":    "m",
		"sub:\n  n: abc\n":  "n",
		"id: a\nid: b\n":    "id",
	} {
		err := Parse("t.yaml", []byte(in), &s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want mention of %q", in, err, want)
		}
	}
	s = sample{ID: "default"}
	if err := Parse("t.yaml", []byte("# only a comment\n"), &s); err != nil || s.ID != "default" {
		t.Errorf("comment-only file changed defaults: %+v %v", s, err)
	}
	if err := Parse("t.yaml", []byte("wait: soon\n"), &s); err != nil {
		t.Fatal(err)
	}
	if err := Check(map[string]interface{ Err() error }{"wait": s.Wait}); err == nil || !strings.Contains(err.Error(), "config key wait") {
		t.Errorf("bad duration not named: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"id: a\nwait: 5s\n", "sub:\n  n: 3\n", "[", "id: &a *a", "wait: 7d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var s sample
		_ = Parse("fuzz.yaml", []byte(in), &s)
	})
}

func TestRedact(t *testing.T) {
	got := Redact("nats://u:secret@h1:4222,nats://h2:4222")
	if strings.Contains(got, "secret") || !strings.Contains(got, "u:xxxxx@h1") || !strings.Contains(got, "nats://h2:4222") {
		t.Fatal(got)
	}
}
