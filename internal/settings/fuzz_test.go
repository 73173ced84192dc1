package settings_test

import (
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
