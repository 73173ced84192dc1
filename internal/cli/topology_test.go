package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/zester-io/zester/topology"
)

func TestTopologyGen_WritesFilesAndNamesBadFlags(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := Main([]string{"topology", "gen", "--kind", "leaf", "--routes", "h1:6222,h2:6222,h3:6222", "--leafs", "2", "--out", dir}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"leaf-1.conf", "leaf-2.conf"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.Contains(string(b), "leafnodes") {
			t.Errorf("%s: %v", f, err)
		}
	}
	out.Reset()
	errb.Reset()
	code = Main([]string{"topology", "gen", "--kind", "supercluster", "--gateway", "hub", "--out", dir}, &out, &errb)
	if code != 3 || !strings.Contains(errb.String(), "--gateway") {
		t.Fatalf("bad gateway: exit %d %s", code, errb.String())
	}
}

// topology gen gives every server a system account user whose password is
// made at random into OUT/sys-password (0600) and kept on a second run, or
// read from --sys-password-file; the configs hold only its bcrypt hash.
func TestTopologyGen_SysPassword(t *testing.T) {
	t.Parallel() // bcrypt at the production cost takes a while under -race
	dir := t.TempDir()
	gen := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(append([]string{"topology", "gen"}, args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return errb.String()
	}
	hashIn := func(conf string) string {
		t.Helper()
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`password: "(\$2a\$[^"]+)"`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no bcrypt hash:\n%s", conf, b)
		}
		return string(m[1])
	}
	hint := gen("--kind", "cluster", "--lab", "--store-dir", "/tmp/lab", "--out", dir)
	pwFile := filepath.Join(dir, "sys-password")
	st, err := os.Stat(pwFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("sys-password: %v %v, want mode 0600", st, err)
	}
	pw, _ := os.ReadFile(pwFile)
	password := strings.TrimSpace(string(pw))
	if len(password) < 32 {
		t.Fatalf("made password %q is short", password)
	}
	for _, f := range []string{"n1.conf", "n2.conf", "n3.conf"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if strings.Contains(string(b), password) {
			t.Errorf("%s holds the password in clear", f)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hashIn(filepath.Join(dir, f))), []byte(password)); err != nil {
			t.Errorf("%s: hash does not match sys-password: %v", f, err)
		}
	}
	if !strings.Contains(hint, pwFile) || !strings.Contains(hint, "server report jetstream") || !strings.Contains(hint, "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224") {
		t.Errorf("hint lacks the password file, the report command or the lab URLs:\n%s", hint)
	}
	// Again into the same directory: the password is kept (what a second
	// run hashes; hashing itself is checked above, and costs seconds under
	// the race detector).
	var o topology.GenOptions
	if file, made, err := sysPassword(&o, dir, ""); err != nil || made || file != pwFile || o.SysPassword != password {
		t.Errorf("second run: file %s made %v err %v, password kept %v", file, made, err, o.SysPassword == password)
	}
	if again, _ := os.ReadFile(pwFile); string(again) != string(pw) {
		t.Errorf("a second run changed sys-password")
	}
	// From the operator's own file: nothing is written beside the configs.
	own := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(own, []byte("operator-chosen-password\n"), 0o600)
	dir2 := t.TempDir()
	gen("--kind", "single", "--sys-user", "admin", "--sys-password-file", own, "--out", dir2)
	if _, err := os.Stat(filepath.Join(dir2, "sys-password")); err == nil {
		t.Error("sys-password written although --sys-password-file was given")
	}
	b, _ := os.ReadFile(filepath.Join(dir2, "server.conf"))
	if !strings.Contains(string(b), `user: "admin"`) {
		t.Errorf("--sys-user not used:\n%s", b)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hashIn(filepath.Join(dir2, "server.conf"))), []byte("operator-chosen-password")); err != nil {
		t.Errorf("hash does not match --sys-password-file: %v", err)
	}
	// A password too short for the generator: named, and nothing written.
	os.WriteFile(own, []byte("short\n"), 0o600)
	var out, errb bytes.Buffer
	if code := Main([]string{"topology", "gen", "--kind", "single", "--sys-password-file", own, "--out", t.TempDir()}, &out, &errb); code != 3 || !strings.Contains(errb.String(), "SysPassword") {
		t.Errorf("short password: exit %d %s", code, errb.String())
	}
}
