package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
		err  bool
	}{
		{nil, "", false},
		{[]string{"ls -la"}, `["ls -la"]`, false},
		{[]string{`{"cmd":"ls"}`}, `{"cmd":"ls"}`, false},
		{[]string{`["a","b"]`}, `["a","b"]`, false},
		{[]string{"cmd=ls -la", "timeout=5"}, `{"cmd":"ls -la","timeout":5}`, false},
		{[]string{"text=\"5\""}, `{"text":"\"5\""}`, false},
		{[]string{"{broken"}, "", true},
		{[]string{"a=1", "positional"}, `{"_args":["positional"],"a":1}`, false},
		{[]string{"web", "test=true", "db"}, `{"_args":["web","db"],"test":true}`, false},
		{[]string{"web", "_args=x"}, "", true},
	} {
		got, err := ParseArgs(tc.in)
		if (err != nil) != tc.err || (!tc.err && string(got) != tc.want) {
			t.Errorf("%q: %s %v; want %s err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"ls -la", `{"a":1}`, "a=b", "[1,2", "x=1=2", "=", "{"} {
		f.Add(s, "more")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := ParseArgs([]string{a, b})
		if err == nil && got != nil && !json.Valid(got) {
			t.Fatalf("%q %q gave invalid JSON %s", a, b, got)
		}
	})
}

func TestParseBatch(t *testing.T) {
	for spec, want := range map[string]int{"10": 10, "25%": 25, "0.5%": 1, "100%": 100} {
		if n, err := parseBatch(spec, 100); err != nil || n != want {
			t.Errorf("%s: %d %v", spec, n, err)
		}
	}
	for _, bad := range []string{"0", "-1", "x", "101%", "0%"} {
		if _, err := parseBatch(bad, 100); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "zester ") {
		t.Fatalf("%d %q %q", code, out.String(), errb.String())
	}
}
