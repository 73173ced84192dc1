package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/peel/state"
)

// A secret reaches the host as plaintext and no result shows it: not the
// diff of contents that are a secret, not the diff of a template that
// prints one, not show_sls.
func TestSecrets_WrittenButNeverReturned(t *testing.T) {
	const plain = "hunter2-s3cret"
	fsys := tree(map[string]string{
		"s.sls": `
pw:
  file.managed:
    - name: /etc/pw
    - contents: '{{ secret "zs1:pw" }}'
    - makedirs: true
conf:
  file.managed:
    - name: /etc/app.conf
    - source: salt://app.conf
    - template: jinja
`,
		"app.conf": "user = app\npassword = {{ secret \"zs1:pw\" }}\n",
	})
	opt := state.Options{ID: "web1", Funcs: render.Funcs{Secret: func(tok string) (string, error) { return plain, nil }}}
	ctx := context.Background()
	p, err := state.Compile(ctx, fsys, []string{"s"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/app.conf"), []byte("user = app\npassword = old\n"), 0o644)
	r := p.Apply(ctx, state.RunOptions{Options: opt, Root: root, Tree: fsys})
	if r.Failed() {
		t.Fatalf("%v", failures(r))
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/pw")); string(b) != plain+"\n" {
		t.Errorf("pw = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/app.conf")); string(b) != "user = app\npassword = "+plain+"\n" {
		t.Errorf("app.conf = %q", b)
	}
	out, _ := json.Marshal(r)
	high, _ := json.Marshal(p.High())
	if strings.Contains(string(out)+string(high), plain) {
		t.Fatalf("a result shows the secret:\n%s\n%s", out, high)
	}
	if d := byID(t, r)["conf"].Changes["diff"].(string); !strings.Contains(d, "-password = old") || !strings.Contains(d, "+password = "+render.Masked) {
		t.Errorf("template diff:\n%s", d)
	}
}

// A {{ secret }} written in the tree itself, where a peel has no key to
// open it (it gets only the values its settings use), is a compile error
// naming the file and line and the way to a secret (a setting); in a
// file.managed template it fails that state, and nothing is written.
func TestSecrets_InTreeRefusedNamingSetting(t *testing.T) {
	fsys := tree(map[string]string{
		"s.sls":    "pw:\n  file.managed:\n    - name: /etc/pw\n    - contents: '{{ secret \"zs1:pw\" }}'\n",
		"t.sls":    "conf:\n  file.managed:\n    - name: /etc/app.conf\n    - source: salt://app.conf\n    - template: jinja\n",
		"app.conf": "user = app\npassword = {{ secret \"zs1:pw\" }}\n",
	})
	ctx := context.Background()
	opt := state.Options{ID: "web1"}
	_, err := state.Compile(ctx, fsys, []string{"s"}, opt)
	if err == nil || !strings.HasPrefix(err.Error(), "s.sls:4:") || !strings.Contains(err.Error(), `{{ setting "db:password" }}`) || !errors.Is(err, state.ErrSecretInState) {
		t.Fatalf("compile: %v, want s.sls:4: naming setting", err)
	}
	p, err := state.Compile(ctx, fsys, []string{"t"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	r := p.Apply(ctx, state.RunOptions{Options: opt, Root: root, Tree: fsys})
	f := failures(r)
	if len(f) != 1 || !strings.Contains(f[0], "app.conf:2:") || !strings.Contains(f[0], "through settings") {
		t.Fatalf("template: %v, want one failure at app.conf:2 naming settings", f)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/app.conf")); !os.IsNotExist(err) {
		t.Fatalf("app.conf written: %v", err)
	}
}
