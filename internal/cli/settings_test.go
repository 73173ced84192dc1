package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/cli"
)

// runCLI runs the CLI in-process with stdin (nil: none). encrypt reads the
// process's stdin, so it is swapped for a pipe; tests using it are not
// parallel.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if stdin != "" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { w.WriteString(stdin); w.Close() }()
		old := os.Stdin
		os.Stdin = r
		defer func() { os.Stdin = old; r.Close() }()
	}
	var out, errb bytes.Buffer
	code = cli.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The secrets workflow end to end through the CLI: pki init, encrypt a
// value, use the token in a tree, render masked and revealed, rotate the key,
// and the old key no longer opens the tree.
func TestSecrets_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	pkiDir, tree := filepath.Join(dir, "pki"), filepath.Join(dir, "settings")
	if code, _, errOut := runCLI(t, "", "pki", "init", "--dir", pkiDir); code != 0 {
		t.Fatalf("pki init: %d %s", code, errOut)
	}
	const secret = "correct horse battery staple"
	code, tok, errOut := runCLI(t, secret+"\n", "secrets", "encrypt", "--pki-dir", pkiDir)
	if code != 0 || !strings.HasPrefix(tok, "zs1:") || strings.Contains(tok, secret) {
		t.Fatalf("encrypt: %d %q %s", code, tok, errOut)
	}
	tok = strings.TrimSpace(tok)
	// encrypt --key needs only the public key.
	code, pubOut, _ := runCLI(t, "", "secrets", "public-key", "--pki-dir", pkiDir)
	pub := strings.Fields(pubOut)[0]
	if code != 0 || !strings.HasPrefix(pub, "X") {
		t.Fatalf("public-key: %d %q", code, pubOut)
	}
	code, tok2, _ := runCLI(t, "api-key-value", "secrets", "encrypt", "--key", pub)
	if code != 0 {
		t.Fatalf("encrypt --key: %d", code)
	}
	writeFile(t, filepath.Join(tree, "top.zy"), "'*': [common]\n'web*': [web]\n")
	writeFile(t, filepath.Join(tree, "common.zy"), "domain: example.com\n")
	writeFile(t, filepath.Join(tree, "web", "init.zy"), "db:\n  password: {{ secret \""+tok+"\" }}\napi: {{ secret \""+strings.TrimSpace(tok2)+"\" }}\nsite: {{ .id }}.{{ setting \"domain\" }}\nos: {{ .facts.os | default \"unknown\" }}\n")
	facts := filepath.Join(dir, "facts.json")
	writeFile(t, facts, `{"os": "Debian"}`)

	code, out, errOut := runCLI(t, "", "settings", "render", "--settings", tree, "--id", "web1", "--facts", facts)
	if code != 0 {
		t.Fatalf("render: %d %s", code, errOut)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "api-key-value") || !strings.Contains(out, "password: <secret>") || !strings.Contains(out, "site: web1.example.com") || !strings.Contains(out, "os: Debian") {
		t.Fatalf("masked render:\n%s", out)
	}
	code, out, errOut = runCLI(t, "", "settings", "render", "--settings", tree, "--id", "web1", "--facts", facts, "--reveal", "--pki-dir", pkiDir, "--json")
	if code != 0 {
		t.Fatalf("render --reveal: %d %s", code, errOut)
	}
	var doc struct {
		Files    []string
		Secrets  []string
		Settings map[string]any
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Settings["db"].(map[string]any)["password"] != secret || doc.Settings["api"] != "api-key-value" || strings.Join(doc.Secrets, ",") != "api,db:password" || strings.Join(doc.Files, ",") != "common,web" {
		t.Fatalf("revealed: %s", out)
	}

	// Rotate to a new key.
	newSeed := filepath.Join(dir, "master.xk.new")
	if code, out, errOut := runCLI(t, "", "secrets", "keygen", "--out", newSeed); code != 0 || !strings.HasPrefix(out, "X") {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "secrets", "rotate-key", "--settings", tree, "--pki-dir", pkiDir, "--new-key", newSeed)
	if code != 0 || !strings.Contains(out, "re-sealed 2 tokens in 1 files") || !strings.Contains(out, "web/init.zy\t2") {
		t.Fatalf("rotate-key: %d %s %s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "web", "init.zy")); strings.Contains(string(b), tok) {
		t.Fatal("the old token is still in the file")
	}
	// The old key no longer opens the tree…
	code, _, errOut = runCLI(t, "", "settings", "render", "--settings", tree, "--id", "web1", "--reveal", "--pki-dir", pkiDir)
	if code != 3 || !strings.Contains(errOut, "web/init.zy:2:16") || !strings.Contains(errOut, "sealed to another key") {
		t.Fatalf("old key after rotation: %d %s", code, errOut)
	}
	// …the new one does, once installed as master.xk.
	b, _ := os.ReadFile(newSeed)
	writeFile(t, filepath.Join(pkiDir, "master.xk"), string(b))
	os.Chmod(filepath.Join(pkiDir, "master.xk"), 0o600)
	code, out, errOut = runCLI(t, "", "settings", "render", "--settings", tree, "--id", "web1", "--reveal", "--pki-dir", pkiDir)
	if code != 0 || !strings.Contains(out, "password: "+secret) {
		t.Fatalf("new key: %d %s %s", code, out, errOut)
	}
	// Running the rotation again changes nothing.
	code, out, _ = runCLI(t, "", "secrets", "rotate-key", "--settings", tree, "--pki-dir", pkiDir, "--new-key", newSeed)
	if code != 0 || !strings.Contains(out, "re-sealed 0 tokens in 0 files") || !strings.Contains(out, "2 tokens were already sealed to the new key") {
		t.Fatalf("second rotation: %d %s", code, out)
	}
}

func TestSettingsRender_Errors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "top.zy"), "'*': [a]\n'db*': [missing]\n")
	writeFile(t, filepath.Join(dir, "a.zy"), "x: 1\ny: {{ .facts.role }}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--id", "web1"}, `settings file "missing" not found`},
		{[]string{}, "--id is required"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"settings", "render", "--settings", dir}, tc.args...)...)
		if code != 3 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q, want exit 3 and %q", tc.args, code, errOut, tc.want)
		}
	}
	writeFile(t, filepath.Join(dir, "top.zy"), "'*': [a]\n")
	code, _, errOut := runCLI(t, "", "settings", "render", "--settings", dir, "--id", "web1")
	if code != 3 || !strings.Contains(errOut, `a.zy:2:13: .facts.role: no key "role"`) {
		t.Errorf("missing fact: %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "", "secrets", "encrypt", "--key", "Xnotakey")
	if code != 3 || !strings.Contains(errOut, "--key") {
		t.Errorf("bad --key: %d %q", code, errOut)
	}
}
