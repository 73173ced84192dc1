package settings_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
)

// FuzzTop: any top.zy loads and compiles or fails with an error naming
// top.zy (or the settings file at fault); the files a compile applies exist
// and appear once. Seeds in testdata/fuzz/FuzzTop.
func FuzzTop(f *testing.F) {
	for _, s := range []string{
		"'*': [common]\n'web*': [web, web.nginx]\n",
		"base:\n  'os:Debian':\n    - match: grain\n    - common\n",
		"'G@os:debian and not db*': [common]\n'L@a,b': [web]\n",
		"'{{ .id }}': [common]\n",
		"'*': [nope]\n",
		"'G@os:': [common]\n",
		"- a\n",
		"'*': common\n",
	} {
		f.Add(s)
	}
	files := map[string]string{"common.zy": "a: 1\n", "web/init.zy": "b: {{ .id }}\n", "web/nginx.zy": "c: 3\n"}
	f.Fuzz(func(t *testing.T, top string) {
		fs := map[string]string{"top.zy": top}
		for k, v := range files {
			fs[k] = v
		}
		tr, err := settings.Load(tree(fs), settings.LoadOptions{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "top.zy") && !strings.HasPrefix(err.Error(), "settings: ") {
				t.Fatalf("Load error does not name top.zy: %v", err)
			}
			return
		}
		res, err := tr.Compile("web1", map[string]any{"os": "Debian"}, settings.Options{Limits: render.Limits{MaxSteps: 20000}})
		if err != nil {
			var re *render.Error
			if !errors.As(err, &re) {
				t.Fatalf("Compile error %v (%T) is not a *render.Error", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, n := range res.Files {
			if seen[n] {
				t.Fatalf("file %s applied twice", n)
			}
			seen[n] = true
			if n != "common" && n != "web" && n != "web.nginx" {
				t.Fatalf("applied %q, which is not in the tree", n)
			}
		}
	})
}

// FuzzToken: ParseToken, Open and Sanitize never panic on any text; a text
// that opens is a token made for this key; sanitized text keeps no token.
// Seeds in testdata/fuzz/FuzzToken.
func FuzzToken(f *testing.F) {
	// A fixed test-only key, so the seed corpus stays meaningful.
	kp, err := nkeys.FromCurveSeed([]byte("SXAAJFQ3PRLXO37VKGI4YJPRMP33UJYDQVCRF2PG6XCOBSIA7IINEV3K54"))
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	tok, err := settings.Seal(pub, []byte("value"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok, "zs1:", "zs1:AAAA", settings.Ref(tok), "x: {{ secret \"" + tok + "\" }}", "zs1:" + strings.Repeat("A", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if tk, err := settings.ParseToken(s); err == nil {
			if p, err := tk.Open(kp); err == nil && string(p) != "value" {
				t.Fatalf("%q opened to %q", s, p)
			}
		} else if !errors.Is(err, settings.ErrBadToken) {
			t.Fatalf("ParseToken error %v does not wrap ErrBadToken", err)
		}
		out, err := settings.Sanitize("f.zy", []byte(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.zy:") {
				t.Fatalf("Sanitize error %v does not name the place", err)
			}
			return
		}
		for _, ta := range settings.FindTokens(out) {
			if strings.HasPrefix(ta.Token, settings.TokenPrefix) {
				t.Fatalf("token %q left in sanitized text", ta.Token)
			}
		}
	})
}

// FuzzBundle: whatever a peel finds in its settings-files entry, LoadBundle
// and the compile either work or fail with an error (no panic, no hang
// past the bounds), and a bundle that compiles applies exactly its files,
// in its order. Seeds in testdata/fuzz/FuzzBundle.
func FuzzBundle(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":"web1","files":[{"name":"common","path":"common.zy","text":"a: 1\n"},{"name":"web.nginx","path":"web/nginx.zy","text":"b: {{ .id }}\nc: {{ setting \"a\" }}\n"}],"settings_hash":""}`,
		`{"v":1,"id":"web1","files":[{"name":"web","path":"web/init.zy","text":"p: {{ secret \"zsr1:AAAAAAAAAAAAAAAAAAAAAA\" }}\n"}]}`,
		`{"v":1,"id":"x","files":[{"name":"a","path":"../a.zy","text":""}]}`,
		`{"v":1,"id":"x","files":[{"name":"a","path":"a.zy","text":"{{ range 100000000 }}x{{ end }}"}]}`,
		`{"v":2}`,
		`{"v":1,"id":"x","files":[{"name":"a","path":"a.zy","text":"a: 1"},{"name":"a","path":"a/init.zy","text":"b: 2"}]}`,
	} {
		f.Add([]byte(s))
	}
	vals := &settings.Values{Values: map[string]string{"zsr1:AAAAAAAAAAAAAAAAAAAAAA": "plain"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var bundle settings.Bundle
		if json.Unmarshal(b, &bundle) != nil {
			return
		}
		tr, err := settings.LoadBundle(&bundle)
		if err != nil {
			return
		}
		res, err := tr.Compile("web1", map[string]any{"os": "debian"}, settings.Options{Secret: settings.RefOpener(vals), Limits: render.Limits{MaxSteps: 100000, MaxOutput: 1 << 16}})
		if err != nil {
			return
		}
		if len(res.Files) != len(bundle.Files) {
			t.Fatalf("compiled %v of a bundle of %d files", res.Files, len(bundle.Files))
		}
		for i, fl := range bundle.Files {
			if res.Files[i] != fl.Name {
				t.Fatalf("file %d is %s, the bundle says %s", i, res.Files[i], fl.Name)
			}
		}
	})
}
