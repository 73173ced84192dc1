package settings_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/testkit"
)

func tree(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for p, s := range files {
		m[p] = &fstest.MapFile{Data: []byte(s)}
	}
	return m
}

func compile(t *testing.T, files map[string]string, id string, facts map[string]any, o settings.Options) (*settings.Result, error) {
	t.Helper()
	return settings.Compile(tree(files), id, facts, o)
}

// The merge rule, one behaviour per row: two files merged in order.
func TestCompile_Merge(t *testing.T) {
	for _, tc := range []struct {
		name, first, second string
		want                string // JSON of the merged settings
		wantErr             string
	}{
		{"maps merge", "a: {x: 1, y: 2}", "a: {y: 3, z: 4}", `{"a":{"x":1,"y":3,"z":4}}`, ""},
		{"deep maps merge", "a: {b: {c: 1, d: 2}}", "a: {b: {d: 3}}", `{"a":{"b":{"c":1,"d":3}}}`, ""},
		{"lists replace", "l: [1, 2]", "l: [3]", `{"l":[3]}`, ""},
		{"!append appends", "l: [1, 2]", "l: !append [3]", `{"l":[1,2,3]}`, ""},
		{"!append on nothing", "a: 1", "l: !append [3]", `{"a":1,"l":[3]}`, ""},
		{"!append deep", "a: {l: [x]}", "a: {l: !append [y]}", `{"a":{"l":["x","y"]}}`, ""},
		{"!append over a scalar", "l: 1", "l: !append [3]", "", `b.zy:1:4: !append on "l": the files before this one set it to a scalar`},
		{"!append on a map", "l: [1]", "l: !append {a: 1}", "", "b.zy:1:4: !append goes on a list, not a map"},
		{"!replace a map", "a: {x: 1, y: 2}", "a: !replace {z: 3}", `{"a":{"z":3}}`, ""},
		{"scalar over a map", "a: {x: 1}", "a: 5", `{"a":5}`, ""},
		{"map over a scalar", "a: 5", "a: {x: 1}", `{"a":{"x":1}}`, ""},
		{"null replaces", "a: {x: 1}", "a: ~", `{"a":null}`, ""},
		{"unknown tag", "a: 1", "a: !nope 2", "", "b.zy:1:4: unknown tag !nope"},
		{"an empty file", "a: 1", "", `{"a":1}`, ""},
		{"a file that is a list", "a: 1", "- x", "", "b.zy:1:1: a settings file is a map of keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := compile(t, map[string]string{"top.zy": "'*': [a, b]", "a.zy": tc.first, "b.zy": tc.second}, "p1", nil, settings.Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := toJSON(t, res.Masked()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func toJSON(t *testing.T, v any) string { return testkit.JSON(t, v) }

var fleetTree = map[string]string{
	"top.zy": `'*': [common]
'web*': [web, web.nginx]
'G@os:debian': [debian]
'G@role:db and not db3': [db]
'L@db3,web2': [special, common]
'os_family:RedHat':
  - match: grain
  - redhat
`,
	"common.zy":       "files: !append [common]\n",
	"web/init.zy":     "files: !append [web]\n",
	"web/nginx.zy":    "files: !append [web.nginx]\n",
	"debian.zy":       "files: !append [debian]\n",
	"db.zy":           "files: !append [db]\n",
	"special.zy":      "files: !append [special]\n",
	"redhat/init.zy":  "files: !append [redhat]\n",
	"unused/other.zy": "files: !append [unused]\n",
}

// top.zy targeting: globs, facts (case-insensitive, as Salt), compound,
// lists, Salt's match: form, order, and a file applied once.
func TestCompile_Targeting(t *testing.T) {
	tr, err := settings.Load(tree(fleetTree), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id    string
		facts map[string]any
		want  []string
	}{
		{"web1", map[string]any{"os": "Debian"}, []string{"common", "web", "web.nginx", "debian"}},
		{"web2", map[string]any{"os": "Ubuntu"}, []string{"common", "web", "web.nginx", "special"}}, // common once, first place
		{"db1", map[string]any{"role": "db", "os": "Debian"}, []string{"common", "debian", "db"}},
		{"db3", map[string]any{"role": "db"}, []string{"common", "special"}},
		{"rh1", map[string]any{"os_family": "RedHat"}, []string{"common", "redhat"}},
		{"x", nil, []string{"common"}},
	} {
		res, err := tr.Compile(tc.id, tc.facts, settings.Options{})
		if err != nil {
			t.Errorf("%s: %v", tc.id, err)
			continue
		}
		if !reflect.DeepEqual(res.Files, tc.want) {
			t.Errorf("%s: files %v, want %v", tc.id, res.Files, tc.want)
		}
		got, _ := res.Get("files")
		var names []string
		for _, v := range got.([]any) {
			names = append(names, v.(string))
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("%s: merged %v, want %v (merge order)", tc.id, names, tc.want)
		}
	}
	if p := res1Paths(t, tr); !reflect.DeepEqual(p, []string{"common.zy", "web/init.zy", "web/nginx.zy", "debian.zy"}) {
		t.Errorf("paths %v", p)
	}
}

func res1Paths(t *testing.T, tr *settings.Tree) []string {
	res, err := tr.Compile("web1", map[string]any{"os": "Debian"}, settings.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Paths
}

// Salt's top.sls with its base: level reads the same.
func TestCompile_SaltTopForm(t *testing.T) {
	res, err := compile(t, map[string]string{
		"top.zy":    "base:\n  '*':\n    - common\n  'web*':\n    - web\n",
		"common.zy": "a: 1\n", "web.zy": "b: 2\n",
	}, "web1", nil, settings.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Files, []string{"common", "web"}) {
		t.Fatalf("files %v", res.Files)
	}
}

func TestLoad_Layout(t *testing.T) {
	tr, err := settings.Load(tree(map[string]string{
		"top.zy": "{}", "web/init.zy": "a: 1", "web/nginx.zy": "a: 1", "web.zy": "a: 1",
		"my.app.zy": "a: 1", "db/init.zy": "{{ nope }}", ".git/x.zy": "a: 1", "a/b/c.zy": "a: 1", "notes.txt": "x",
	}), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Files(); !reflect.DeepEqual(got, []string{"a.b.c", "web.nginx"}) {
		t.Errorf("files %v", got)
	}
	var msgs []string
	for _, e := range tr.Problems() {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"settings file web is both ",
		"my.app.zy: a settings file or directory name may not contain a dot",
		`db/init.zy:1:4: function "nope" not defined`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems %q lack %q", all, want)
		}
	}
}

// Errors name the file and the line (and column where known).
func TestCompile_Errors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		load    bool // the error comes from Load (static top.zy)
		wantErr string
	}{
		{"unknown file in a static top.zy", map[string]string{"top.zy": "'*':\n  - common\n  - nope\n", "common.zy": "a: 1"}, true,
			`top.zy:3:5: settings file "nope" not found (looked for nope.zy and nope/init.zy)`},
		{"unknown file in a templated top.zy", map[string]string{"top.zy": "'{{ .id }}': [nope.deeper]\n"}, false,
			`top.zy: rendered line 1 column 8: settings file "nope.deeper" not found (looked for nope/deeper.zy and nope/deeper/init.zy) [rendered line 1: "'p1': [nope.deeper]"]`},
		{"a bad target", map[string]string{"top.zy": "'G@os:': [a]\n", "a.zy": "x: 1"}, true, `top.zy:1:1: target "G@os:" column 5: empty value pattern`},
		{"a bad match type", map[string]string{"top.zy": "'x':\n  - match: pillar\n  - a\n", "a.zy": "x: 1"}, true, `top.zy:2:12: target "x": match type "pillar"`},
		{"top.zy not a map", map[string]string{"top.zy": "- a\n"}, true, "top.zy:1:1: top.zy maps targets"},
		{"a target without a list", map[string]string{"top.zy": "'*': a\n"}, true, `top.zy:1:6: target "*": want a list`},
		{"a template that does not parse", map[string]string{"top.zy": "'*': [a]", "a.zy": "x: 1\ny: {{ .id | nosuch }}\n"}, false, `a.zy:2:13: function "nosuch" not defined`},
		{"a template that fails", map[string]string{"top.zy": "'*': [a]", "a.zy": "x: 1\ny: {{ .facts.nope }}\n"}, false, `a.zy:2:13: .facts.nope: no key "nope"`},
		{"bad YAML in a static file", map[string]string{"top.zy": "'*': [a]", "a.zy": "x: 1\ny: [1, 2\n"}, false, "a.zy:"},
		{"bad YAML in a rendered file", map[string]string{"top.zy": "'*': [a]", "a.zy": "x: {{ .id }}\ny: [1, 2\n"}, false, "a.zy: rendered line"},
		{"a setting of a later file", map[string]string{"top.zy": "'*': [a, b]", "a.zy": "x: {{ setting \"y\" }}\n", "b.zy": "y: 1\n"}, false,
			`a.zy:1:7: setting: "y" is not set (no file is merged before this one)`},
		{"a setting nobody sets", map[string]string{"top.zy": "'*': [a, b]", "a.zy": "x: 1\n", "b.zy": "y: {{ setting \"a:b:c\" }}\n"}, false,
			`b.zy:1:7: setting: "a:b:c" is not set (files merged before this one: a)`},
		{"a secret in top.zy", map[string]string{"top.zy": "'{{ secret \"zs1:x\" }}': [a]", "a.zy": "x: 1"}, false, "top.zy:1:5: secret: top.zy cannot use secrets"},
		{"a malformed token", map[string]string{"top.zy": "'*': [a]", "a.zy": "pw: {{ secret \"zs1:AAAA\" }}\n"}, false, `a.zy:1:8: secret: not a secret token: "zs1:AAAA": too short`},
		{"a settings file name with dots in top.zy", map[string]string{"top.zy": "'*': [../etc]", "a.zy": "x: 1"}, true, `top.zy:1:7: settings file name "../etc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := settings.Load(tree(tc.files), settings.LoadOptions{})
			if tc.load {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			_, err = tr.Compile("p1", map[string]any{"os": "Debian"}, settings.Options{})
			var re *render.Error
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Compile: %v, want a *render.Error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCompile_SettingsAndFacts(t *testing.T) {
	facts := map[string]any{"os": "Debian", "cpus": 8.0, "roles": []any{"web", "lb"}}
	res, err := compile(t, map[string]string{
		"top.zy": `'*': [common]
{{ if has "web" .facts.roles }}'{{ .id }}': [web]{{ end }}
`,
		"common.zy": "domain: example.com\nport: 80\n",
		"web.zy": `site: {{ .id }}.{{ setting "domain" }}
workers: {{ .facts.cpus }}
port: {{ setting "port" | add 8000 }}
tier: {{ setting "tier" "standard" }}
`,
	}, "web1", facts, settings.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"domain":"example.com","port":8080,"site":"web1.example.com","tier":"standard","workers":8}`
	if got := toJSON(t, res.Masked()); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if facts["cpus"] != 8.0 {
		t.Error("Compile changed the caller's facts")
	}
}

func curveKey(t *testing.T) (nkeys.KeyPair, string) { return testkit.NewKey(t, nkeys.CreateCurveKeys) }

func seal(t *testing.T, pub, v string) string {
	t.Helper()
	tok, err := settings.Seal(pub, []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCompile_Secrets(t *testing.T) {
	kp, pub := curveKey(t)
	const pw, key = "db-PASSWORD-plain", "api-KEY-plain"
	files := map[string]string{
		"top.zy":    "'*': [common, web]",
		"common.zy": fmt.Sprintf("db:\n  password: {{ secret %q }}\n  url: \"postgres://app:{{ secret %q }}@db1/app\"\n", seal(t, pub, pw), seal(t, pub, pw)),
		"web.zy":    fmt.Sprintf("api: {{ secret %q }}\nagain: {{ setting \"db:password\" }}\nplain: x\n", seal(t, pub, key)),
	}
	res, err := compile(t, files, "web1", nil, settings.Options{Secret: settings.Opener(kp)})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.SecretPaths(); !reflect.DeepEqual(got, []string{"again", "api", "db:password", "db:url"}) {
		t.Errorf("secret paths %v", got)
	}
	rev := res.Revealed()
	if rev["db"].(map[string]any)["password"] != pw || rev["db"].(map[string]any)["url"] != "postgres://app:"+pw+"@db1/app" || rev["api"] != key || rev["again"] != pw {
		t.Errorf("revealed %v", rev)
	}
	if len(res.Tokens) != 3 {
		t.Errorf("tokens %d, want 3 (each distinct token once)", len(res.Tokens))
	}
	// Nothing but Revealed shows a plaintext.
	for _, shown := range []string{toJSON(t, res.Masked()), toJSON(t, res.Tree()), fmt.Sprint(res.Tree()), fmt.Sprintf("%+v %#v", res, res.Tree())} {
		if strings.Contains(shown, pw) || strings.Contains(shown, key) {
			t.Fatalf("plaintext in %s", shown)
		}
	}
	// A masked compile needs no key and still checks the tokens.
	masked, err := compile(t, files, "web1", nil, settings.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := toJSON(t, masked.Revealed()); strings.Contains(got, pw) || !strings.Contains(got, `"api":"\u003csecret\u003e"`) {
		t.Errorf("masked compile: %s", got)
	}
	// The wrong key is named as such, at the token's place.
	other, _ := curveKey(t)
	_, err = compile(t, files, "web1", nil, settings.Options{Secret: settings.Opener(other)})
	if !errors.Is(err, settings.ErrWrongKey) || !strings.Contains(err.Error(), "common.zy:2:16") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestToken(t *testing.T) {
	kp, pub := curveKey(t)
	tok := seal(t, pub, "v1")
	if !strings.HasPrefix(tok, settings.TokenPrefix) {
		t.Fatalf("token %q", tok)
	}
	if p, err := settings.Open(kp, tok); err != nil || string(p) != "v1" {
		t.Fatalf("open: %q %v", p, err)
	}
	if tok2 := seal(t, pub, "v1"); tok2 == tok {
		t.Error("two tokens of one value are equal (no fresh nonce and key)")
	}
	// Damage each part of the payload: never opens, never panics.
	for i := len(settings.TokenPrefix); i < len(tok); i += 7 {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if p, err := settings.Open(kp, string(b)); err == nil && string(p) == "v1" && string(b) != tok {
			// A base64 change in the padding bits can decode to the same bytes.
			continue
		} else if err == nil {
			t.Errorf("damaged at %d opened to %q", i, p)
		}
	}
	for _, bad := range []string{"", "zs1:", "zs2:abc", "zs1:!!!", tok[:40], settings.Ref(tok)} {
		if _, err := settings.ParseToken(bad); !errors.Is(err, settings.ErrBadToken) {
			t.Errorf("ParseToken(%q): %v", bad, err)
		}
	}
	if settings.Ref(tok) != settings.Ref(strings.Clone(tok)) || settings.Ref(tok) == settings.Ref(seal(t, pub, "v1")) {
		t.Error("refs are not stable per token")
	}
}

func TestSanitize(t *testing.T) {
	_, pub := curveKey(t)
	a, b := seal(t, pub, "A"), seal(t, pub, "B")
	src := []byte(fmt.Sprintf("a: {{ secret %q }}\nb: {{ secret %q }}\nc: {{ secret %q }}\n", a, b, a))
	out, err := settings.Sanitize("x.zy", src)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("a: {{ secret %q }}\nb: {{ secret %q }}\nc: {{ secret %q }}\n", settings.Ref(a), settings.Ref(b), settings.Ref(a))
	if string(out) != want {
		t.Fatalf("got %s\nwant %s", out, want)
	}
	if again, _ := settings.Sanitize("x.zy", out); string(again) != string(out) {
		t.Error("sanitizing twice changed the text")
	}
	if _, err := settings.Sanitize("x.zy", []byte("a: 1\nb: {{ secret \"zs1:AAA\" }}\n")); err == nil || !strings.HasPrefix(err.Error(), "x.zy:2:15: ") {
		t.Errorf("bad token: %v", err)
	}
}

func TestRotateKey(t *testing.T) {
	oldKP, oldPub := curveKey(t)
	newKP, newPub := curveKey(t)
	dir := t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("top.zy", "'*': [a, web]\n", 0o644)
	write("a.zy", fmt.Sprintf("x: {{ secret %q }}\ny: {{ secret %q }}\n", seal(t, oldPub, "X"), seal(t, oldPub, "Y")), 0o640)
	write("web/init.zy", fmt.Sprintf("z: {{ secret %q }}\n", seal(t, oldPub, "Z")), 0o644)
	write("plain.zy", "p: 1\n", 0o644)
	rep, err := settings.RotateKey(dir, oldKP, newPub)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Changed, []settings.Rotated{{Path: "a.zy", Tokens: 2}, {Path: "web/init.zy", Tokens: 1}}) || rep.Current != 0 {
		t.Fatalf("report %+v", rep)
	}
	if st, _ := os.Stat(filepath.Join(dir, "a.zy")); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	res, err := settings.Compile(os.DirFS(dir), "p", nil, settings.Options{Secret: settings.Opener(newKP)})
	if err != nil {
		t.Fatal(err)
	}
	if got := toJSON(t, res.Revealed()); got != `{"x":"X","y":"Y","z":"Z"}` {
		t.Errorf("after rotation: %s", got)
	}
	if _, err := settings.Compile(os.DirFS(dir), "p", nil, settings.Options{Secret: settings.Opener(oldKP)}); !errors.Is(err, settings.ErrWrongKey) {
		t.Errorf("old key after rotation: %v, want ErrWrongKey", err)
	}
	// Again: nothing to do, every token is current.
	rep, err = settings.RotateKey(dir, oldKP, newPub)
	if err != nil || len(rep.Changed) != 0 || rep.Current != 3 {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	// A token that does not open changes no file.
	before, _ := os.ReadFile(filepath.Join(dir, "a.zy"))
	third, thirdPub := curveKey(t)
	write("zz.zy", fmt.Sprintf("w: {{ secret %q }}\n", seal(t, thirdPub, "W")), 0o644)
	_ = third
	_, err = settings.RotateKey(dir, newKP, oldPub)
	if !errors.Is(err, settings.ErrWrongKey) || !strings.Contains(err.Error(), "zz.zy:1:15") {
		t.Fatalf("rotation with a foreign token: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "a.zy")); string(after) != string(before) {
		t.Error("a failed rotation changed a file")
	}
}

// Peels whose files render to the same text share one decoded document;
// each still gets its own secrets, and merging never changes the shared one.
func TestCompile_SharedDecodeKeepsSecretsApart(t *testing.T) {
	_, pub := curveKey(t)
	tok := seal(t, pub, "unused")
	tr, err := settings.Load(tree(map[string]string{
		"top.zy":    "'*': [a, b]",
		"a.zy":      "pw: {{ secret \"" + tok + "\" }}\nl: [1]\nm: {x: 1}\n",
		"b.zy":      "l: !append [2]\nm: {y: 2}\n",
		"unused.zy": "z: 1\n",
	}), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for _, id := range []string{"p1", "p2"} {
			val := "secret-of-" + id
			res, err := tr.Compile(id, nil, settings.Options{Secret: func(string) (string, error) { return val, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if got := toJSON(t, res.Revealed()); got != `{"l":[1,2],"m":{"x":1,"y":2},"pw":"`+val+`"}` {
				t.Fatalf("round %d %s: %s", i, id, got)
			}
		}
	}
}

func TestTop_RefusesSettingsTargets(t *testing.T) {
	_, err := settings.Load(tree(map[string]string{"top.zy": "'I@role:web': [a]\n", "a.zy": "x: 1\n"}), settings.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "I@ matches settings") || !strings.Contains(err.Error(), "top.zy:1") {
		t.Fatalf("I@ in top.zy: %v", err)
	}
}

// MaskedJSON (which marshals the tree with its secrets, no masked copy)
// is the bytes of json.Marshal(Masked()) that the peel hashes, with
// secrets in maps and lists and characters json escapes, alone and
// through a memo.
func TestMaskedJSON_AsMasked(t *testing.T) {
	kp, pub := curveKey(t)
	tok, err := settings.Seal(pub, []byte("s3cret<&>"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"top.zy": "'*': [a, b]\n",
		"a.zy":   "x:\n  pw: {{ secret \"" + tok + "\" }}\n  html: \"<b>&amp;\\u2028</b>\"\n  n: 12\n  f: 1.5\n  t: true\n  z: null\n",
		"b.zy":   "list:\n  - {{ secret \"" + tok + "\" }}\n  - plain\n  - {k: {{ .facts.role }}}\n",
	}
	tr, err := settings.Load(tree(files), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	memo := settings.NewMemo()
	for _, o := range []settings.Options{{Secret: settings.CachingOpener(kp)}, {Secret: settings.CachingOpener(kp), Memo: memo}, {Secret: settings.CachingOpener(kp), Memo: memo}} {
		res, err := tr.Compile("web1", map[string]any{"role": "web<1>"}, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := res.MaskedJSON()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(res.Masked())
		if string(got) != string(want) {
			t.Fatalf("MaskedJSON\n%s\nwant\n%s", got, want)
		}
		if strings.Contains(string(got), "s3cret") || !strings.Contains(string(got), `\u003csecret\u003e`) {
			t.Fatalf("secret not masked: %s", got)
		}
		// MaskedJSONHash: the same bytes and their SettingsHash (once per
		// shared result, asked twice here).
		for range 2 {
			j, h, err := res.MaskedJSONHash()
			if err != nil || string(j) != string(want) {
				t.Fatalf("MaskedJSONHash: %s, %v", j, err)
			}
			if wh, _ := res.SettingsHash(); h != wh || h != settings.SettingsHashOf(want) {
				t.Fatalf("MaskedJSONHash's hash %s, SettingsHash %s", h, wh)
			}
		}
	}
}
