package state_test

import (
	"context"
	"encoding/json"
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
