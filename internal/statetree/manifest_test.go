package statetree

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validManifest is a manifest of two files whose version matches.
func validManifest(t testing.TB) []byte {
	m := Manifest{Files: map[string]Entry{
		"top.sls":   {Digest: digest([]byte("a")), Size: 1},
		"web/x.sls": {Digest: digest([]byte("b")), Size: 1},
	}}
	m.Version = m.version()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A manifest from the bucket is refused, naming what is wrong, when its
// version does not match its files or a path could leave the tree.
func TestParseManifest_RefusesBadManifests(t *testing.T) {
	if _, err := parseManifest(validManifest(t)); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	bad := func(path string) []byte {
		m := Manifest{Files: map[string]Entry{path: {Digest: digest([]byte("a")), Size: 1}}}
		m.Version = m.version()
		b, _ := json.Marshal(m)
		return b
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not json", []byte("{"), "state tree manifest"},
		{"version mismatch", []byte(strings.Replace(string(validManifest(t)), `"version":"`, `"version":"0`, 1)), "does not match its files"},
		{"parent path", bad("../etc/passwd"), `bad entry "../etc/passwd"`},
		{"absolute path", bad("/etc/passwd"), `bad entry "/etc/passwd"`},
		{"dot", bad("."), `bad entry "."`},
	} {
		if _, err := parseManifest(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// FuzzParseManifest: no input panics, and an accepted manifest has only
// paths that stay inside the tree and hex sha256 digests.
func FuzzParseManifest(f *testing.F) {
	f.Add(validManifest(f))
	f.Add([]byte(`{"version":"","files":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			return
		}
		for p, e := range m.Files {
			if strings.HasPrefix(p, "/") || strings.Contains("/"+p+"/", "/../") || len(e.Digest) != 64 {
				t.Fatalf("accepted %q (%s)", p, e.Digest)
			}
		}
	})
}

// Scan skips dot names (.git) and keys each file by its content's digest.
func TestScan_SkipsDotNames(t *testing.T) {
	dir := t.TempDir()
	for p, c := range map[string]string{"top.sls": "t", "web/a.sls": "a", ".git/HEAD": "h", "web/.a.sls.swp": "s"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, content, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files["web/a.sls"].Digest != digest([]byte("a")) || string(content[digest([]byte("t"))]) != "t" {
		t.Fatalf("scan: %+v", m.Files)
	}
	if m.Version != m.version() {
		t.Fatal("version does not match the files")
	}
}
