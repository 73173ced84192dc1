package render_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/testkit"
)

var testFacts = map[string]any{
	"os":       "Debian",
	"cpus":     4.0, // as JSON decodes it
	"role":     "",
	"network":  map[string]any{"fqdn": "web1.example.com", "ipv4": []any{"10.0.0.5", "127.0.0.1"}},
	"mem_gib":  7.5,
	"disks":    []any{"sda", "sdb"},
	"nullfact": nil,
}

func run(t *testing.T, src string, fns render.Funcs, lim render.Limits) (*render.Output, error) {
	t.Helper()
	tp, err := render.Parse("t.zy", []byte(src))
	if err != nil {
		return nil, err
	}
	return tp.Execute(context.Background(), render.Data{ID: "web1", Facts: render.NormalizeFacts(testFacts)}, fns, lim)
}

func TestExecute_Data(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`{{ .id }}`, "web1"},
		{`{{ .facts.os | lower }}`, "debian"},
		{`{{ .facts.network.fqdn }}`, "web1.example.com"},
		// Whole numbers come in as int64, so comparisons with literals work.
		{`{{ if gt .facts.cpus 2 }}big{{ end }}`, "big"},
		{`{{ .facts.mem_gib }}`, "7.5"},
		{`{{ index .facts.disks 1 }}`, "sdb"},
		{`{{ range .facts.network.ipv4 }}{{ . }} {{ end }}`, "10.0.0.5 127.0.0.1 "},
		{`{{ join "," .facts.disks }}`, "sda,sdb"},
		{`{{ $.facts.os }}`, "Debian"},
		{`{{ hasKey .facts "nope" }}`, "false"},
		{`{{ dig "network" "fqdn" "x" .facts }}`, "web1.example.com"},
	} {
		out, err := run(t, tc.src, render.Funcs{}, render.Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if got := string(out.Text()); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.src, got, tc.want)
		}
	}
}

// Missing keys are errors naming file, line and column; default (and only
// default) lets a lookup be missing.
func TestExecute_MissingKeys(t *testing.T) {
	for _, tc := range []struct {
		src     string
		want    string // output, when no error
		wantErr string // error text, when an error
	}{
		{src: "a: 1\nb: {{ .facts.nope }}", wantErr: `t.zy:2:13: .facts.nope: no key "nope"`},
		{src: `{{ $.facts.nope }}`, wantErr: `t.zy:1:5: $.facts.nope: no key "nope"`},
		{src: `{{ .facts.network.nope }}`, wantErr: `no key "nope"`},
		{src: `{{ index .facts "nope" }}`, wantErr: `t.zy:1:4: index: no key "nope"`},
		{src: `{{ .nope }}`, wantErr: `no key "nope"`},
		{src: `{{ .facts.nope | default "x" }}`, want: "x"},
		{src: `{{ default "x" .facts.nope }}`, want: "x"},
		{src: `{{ default "x" .facts.nope.deeper.still }}`, want: "x"},
		{src: `{{ default "x" $.facts.nope }}`, want: "x"},
		{src: `{{ $f := .facts }}{{ default "x" $f.nope }}`, want: "x"},
		{src: `{{ index .facts "nope" | default "x" }}`, want: "x"},
		{src: `{{ default "x" (index .facts "nope") }}`, want: "x"},
		{src: `{{ .facts.role | default "web" }}`, want: "web"},       // empty: sprig's default
		{src: `{{ .facts.nullfact | default "none" }}`, want: "none"}, // null
		{src: `{{ .facts.os | default "x" }}`, want: "Debian"},        // present
		{src: `{{ .facts.cpus | default 2 }}`, want: "4"},             // present number
		{src: `{{ with .facts.network }}{{ .nope | default "d" }}{{ end }}`, want: "d"},
		{src: `{{ default "x" (fail "boom") }}`, wantErr: "t.zy:1:17: fail: boom"}, // a real error stays one
		{src: `{{ .facts.nope | upper | default "x" }}`, wantErr: `no key "nope"`}, // only the value default tests
	} {
		out, err := run(t, tc.src, render.Funcs{}, render.Limits{})
		if tc.wantErr != "" {
			var re *render.Error
			if err == nil || !errors.As(err, &re) || re.File != "t.zy" || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want *render.Error containing %q", tc.src, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if got := string(out.Text()); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	for _, tc := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{"a: 1\nb: {{ nosuch .id }}", 2, 7, `function "nosuch" not defined`},
		{"a: {{ .id ", 1, 0, "unclosed action"},
		{"{{ if .id }}x", 1, 0, "unexpected EOF"},
		{`{{ define "a" }}{{ template "b" }}{{ end }}{{ define "b" }}{{ template "a" }}{{ end }}{{ template "a" }}`, 1, 0, "template call cycle"},
		{`{{ template "nowhere" }}`, 1, 13, `template "nowhere" is not defined`},
		{"{{ range }}", 1, 0, "missing value for range"},
		// Denied functions are not defined at all.
		{"{{ randInt 1 5 }}", 1, 4, `function "randInt" not defined`},
		{"{{ now }}", 1, 4, `function "now" not defined`},
		{"{{ env \"HOME\" }}", 1, 4, `function "env" not defined`},
	} {
		_, err := render.Parse("t.zy", []byte(tc.src))
		var re *render.Error
		if !errors.As(err, &re) {
			t.Errorf("%q: err %v, want *render.Error", tc.src, err)
			continue
		}
		if re.File != "t.zy" || re.Line != tc.line || (tc.col != 0 && re.Col != tc.col) || !strings.Contains(re.Msg, tc.msg) {
			t.Errorf("%q: got %s (line %d col %d), want line %d col %d containing %q", tc.src, err, re.Line, re.Col, tc.line, tc.col, tc.msg)
		}
	}
}

// Every bound stops a pathological template quickly, with a clear error.
func TestExecute_Limits(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		lim  render.Limits
		what string // LimitError.What
	}{
		{"range over a huge int", `{{ range 1000000000000 }}{{ end }}`, render.Limits{}, "steps"},
		{"nested ranges", `{{ range until 1000 }}{{ range until 1000 }}{{ range until 1000 }}{{ end }}{{ end }}{{ end }}`, render.Limits{}, "steps"},
		{"until builds a huge list", `{{ range until 100000000 }}{{ end }}`, render.Limits{}, "value"},
		{"untilStep", `{{ untilStep 0 2000000000 1 }}`, render.Limits{}, "value"},
		{"seq", `{{ seq 100000000 }}`, render.Limits{}, "value"},
		{"string doubling", `{{ $s := "x" }}{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}`, render.Limits{}, "value"},
		{"list doubling (a DAG)", `{{ $l := list 1 }}{{ range until 64 }}{{ $l = list $l $l }}{{ end }}{{ toJson $l }}`, render.Limits{}, "value"},
		{"a map that holds itself", `{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ $d }}`, render.Limits{}, "cycle"},
		{"repeat", `{{ repeat 100000000 "ab" }}`, render.Limits{}, "value"},
		{"printf widths", `{{ printf "%999999d%999999d" 1 2 }}`, render.Limits{}, "value"},
		{"replace amplifies", `{{ $s := repeat 500000 "a" }}{{ replace "a" "bbbbbbbb" $s }}`, render.Limits{}, "value"},
		{"indent amplifies", `{{ $s := repeat 500000 "\n" }}{{ indent 100 $s }}`, render.Limits{}, "value"},
		{"wrap doubling", `{{ $s := repeat 1000 "a" }}{{ range until 40 }}{{ $s = wrapWith 1 "xx" $s }}{{ end }}`, render.Limits{}, "value"},
		{"output cap", `{{ range 100000 }}0123456789abcdef{{ end }}`, render.Limits{MaxOutput: 64 << 10}, "output"},
		{"deep nesting", `{{ $l := list }}{{ range until 200 }}{{ $l = list $l }}{{ end }}`, render.Limits{}, "depth"},
		{"wall clock", `{{ range 1000000000000 }}{{ end }}`, render.Limits{MaxSteps: 1 << 62, Timeout: 100 * time.Millisecond}, "time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every limit but the clock is tested with the clock out of
			// the way: under -race on a loaded machine a million steps
			// can take longer than the default 2 s, and which limit hits
			// first must not depend on the machine.
			lim := tc.lim
			if tc.what != "time" && lim.Timeout == 0 {
				lim.Timeout = 10 * time.Minute
			}
			start := time.Now()
			_, err := run(t, tc.src, render.Funcs{}, lim)
			elapsed := time.Since(start)
			var le *render.LimitError
			var re *render.Error
			if !errors.Is(err, render.ErrLimit) || !errors.As(err, &le) || !errors.As(err, &re) {
				t.Fatalf("err %v, want a *render.Error wrapping a *LimitError", err)
			}
			if le.What != tc.what || re.File != "t.zy" {
				t.Fatalf("err %v (limit %q), want limit %q in t.zy", err, le.What, tc.what)
			}
			// A hang guard, generous for a loaded machine.
			if elapsed > 2*time.Minute {
				t.Fatalf("took %s", elapsed)
			}
		})
	}
}

func TestExecute_ContextCancelled(t *testing.T) {
	tp, err := render.Parse("t.zy", []byte(`{{ range 1000000000000 }}{{ end }}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = tp.Execute(ctx, render.Data{ID: "x"}, render.Funcs{}, render.Limits{MaxSteps: 1 << 62})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

const plaintext = "hunter2-PLAINTEXT"

func secretFns() render.Funcs {
	return render.Funcs{Secret: func(tok string) (string, error) {
		if tok == "bad" {
			return "", errors.New("cannot open")
		}
		return plaintext + ":" + tok, nil
	}}
}

// Secrets are placed as placeholders; the plaintext is in no text, error or
// printed form of the output, only behind Resolve and Reveal.
func TestExecute_Secrets(t *testing.T) {
	src := "a: {{ secret \"t1\" }}\nb: \"pre-{{ secret \"t2\" }}-post\"\nc: {{ secret \"t1\" | quote }}\nd: {{ list (secret \"t3\") | toJson }}\n"
	out, err := run(t, src, secretFns(), render.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(out.Text()), out.String(), fmt.Sprint(out)} {
		if strings.Contains(s, plaintext) {
			t.Fatalf("plaintext in %q", s)
		}
	}
	if got := out.Tokens(); strings.Join(got, ",") != "t1,t2,t3" {
		t.Errorf("tokens %v, want t1,t2,t3 (t1 once)", got)
	}
	n, err := render.Decode("t.zy", out, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": plaintext + ":t1", "b": "pre-" + plaintext + ":t2-post", "c": plaintext + ":t1"}
	for k, w := range want {
		v, _ := n.Get(k)
		s, ok := v.Value.(render.Secret)
		if !ok || s.Reveal() != w {
			t.Errorf("%s = %#v, want a Secret revealing %q", k, v.Value, w)
		}
		for _, shown := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v %x", s, s, s, s, s), mustJSON(t, s), mustJSON(t, map[string]any{"k": s})} {
			if strings.Contains(shown, plaintext) {
				t.Errorf("%s printed as %q", k, shown)
			}
		}
	}
	d, _ := n.Get("d")
	if s, ok := d.Items[0].Value.(render.Secret); !ok || s.Reveal() != plaintext+":t3" {
		t.Errorf("d[0] = %#v, want the secret through toJson", d.Items[0].Value)
	}
}

func mustJSON(t *testing.T, v any) string { return testkit.JSON(t, v) }

// A template can place a secret but not read, compare or transform it.
func TestExecute_SecretsCannotBeRead(t *testing.T) {
	for _, src := range []string{
		`{{ secret "t" | upper }}`,
		`{{ secret "t" | b64enc }}`,
		`{{ if eq (secret "t") "x" }}y{{ end }}`,
		`{{ len (secret "t") }}`,
		`{{ trunc 3 (secret "t") }}`,
	} {
		out, err := run(t, src, secretFns(), render.Limits{})
		if err == nil {
			t.Errorf("%s: no error, output %q", src, out.Text())
			continue
		}
		if strings.Contains(err.Error(), plaintext) {
			t.Errorf("%s: plaintext in error %v", src, err)
		}
	}
	_, err := run(t, `x: {{ secret "bad" }}`, secretFns(), render.Limits{})
	if err == nil || !strings.Contains(err.Error(), "t.zy:1:7") || !strings.Contains(err.Error(), "cannot open") {
		t.Errorf("a token that does not open: %v, want its position and the cause", err)
	}
	// Without a callback the render is masked.
	out, err := run(t, `x: {{ secret "t" }}`, render.Funcs{}, render.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := render.Decode("t.zy", out, 0)
	if x, _ := n.Get("x"); x.Value.(render.Secret).Reveal() != render.Masked {
		t.Errorf("masked render gave %v", x.Value)
	}
}

func TestExecute_SettingAndBasket(t *testing.T) {
	merged := map[string]any{"db": map[string]any{"host": "db1", "password": render.NewSecret(plaintext)}, "port": int64(5432)}
	fns := render.Funcs{
		Setting: func(key string) (any, error) {
			cur := any(merged)
			for _, k := range strings.Split(key, ":") {
				m, ok := cur.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%q %w", key, render.ErrNotSet)
				}
				if cur, ok = m[k]; !ok {
					return nil, fmt.Errorf("%q %w", key, render.ErrNotSet)
				}
			}
			return cur, nil
		},
		Basket: func(tgt, name string) (map[string]any, error) {
			return map[string]any{"web1": []any{"10.0.0.5"}, "web2": []any{"10.0.0.6"}}, nil
		},
	}
	src := `host: {{ setting "db:host" }}
port: {{ setting "port" }}
pw: {{ setting "db:password" }}
def: {{ setting "nope" "fallback" }}
def2: {{ setting "nope:deeper" | default "d2" }}
backends: {{ range $id, $ips := basket "G@role:web" "ipv4" }}{{ $id }}={{ index $ips 0 }} {{ end }}
`
	out, err := run(t, src, fns, render.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out.Text()), plaintext) {
		t.Fatal("a secret setting came into the text as plaintext")
	}
	n, err := render.Decode("t.zy", out, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := n.Plain().(map[string]any)
	if got["host"] != "db1" || got["port"] != int64(5432) || got["def"] != "fallback" || got["def2"] != "d2" || got["backends"] != "web1=10.0.0.5 web2=10.0.0.6" {
		t.Errorf("got %v", got)
	}
	if s, ok := got["pw"].(render.Secret); !ok || s.Reveal() != plaintext {
		t.Errorf("pw = %#v, want the secret setting kept secret", got["pw"])
	}
	_, err = run(t, `{{ setting "nope" }}`, fns, render.Limits{})
	if !errors.Is(err, render.ErrNotSet) || !strings.Contains(err.Error(), "t.zy:1:4") {
		t.Errorf("missing setting: %v", err)
	}
	// A template cannot change the caller's settings through set.
	if _, err := run(t, `{{ $_ := set (setting "db") "host" "evil" }}`, fns, render.Limits{}); err != nil {
		t.Fatal(err)
	}
	if merged["db"].(map[string]any)["host"] != "db1" {
		t.Error("the template changed the caller's settings")
	}
	if _, err := run(t, `{{ basket "*" "x" }}`, render.Funcs{}, render.Limits{}); !errors.Is(err, render.ErrNoCallback) {
		t.Errorf("basket without a callback: %v", err)
	}
}

// One parsed template, many peels at once (run with -race).
func TestExecute_Concurrent(t *testing.T) {
	tp, err := render.Parse("t.zy", []byte("id: {{ .id }}{{ range until 50 }}{{ end }}\ns: {{ secret .id }}"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("peel%d", i)
			out, err := tp.Execute(context.Background(), render.Data{ID: id}, render.Funcs{Secret: func(t string) (string, error) { return "v-" + t, nil }}, render.Limits{})
			if err != nil {
				errs <- err
				return
			}
			n, err := render.Decode("t.zy", out, 0)
			if err != nil {
				errs <- err
				return
			}
			p := n.Plain().(map[string]any)
			if s, ok := p["s"].(render.Secret); p["id"] != id || !ok || s.Reveal() != "v-"+id {
				errs <- fmt.Errorf("peel %s got %v", id, p)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDecode(t *testing.T) {
	dec := func(src string) (*render.Node, error) {
		tp, err := render.Parse("d.zy", []byte(src))
		if err != nil {
			return nil, err
		}
		out, err := tp.Execute(context.Background(), render.Data{}, render.Funcs{}, render.Limits{})
		if err != nil {
			return nil, err
		}
		return render.Decode("d.zy", out, 10000)
	}
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := 'b', 'a'; i <= 'j'; i, prev = i+1, i {
		laughs += fmt.Sprintf("%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	for _, tc := range []struct {
		src     string
		wantErr string
	}{
		{laughs, "d.zy:"},
		{"a: 1\nb: 2\na: 3\n", `d.zy:3:1: YAML: mapping key "a" already defined`},
		{"a: 1\n---\nb: 2\n", "more than one YAML document"},
		{"a: [1, 2\n", "d.zy:"},
		{"a: *nope\n", "d.zy:"},
		{"? [1, 2]\n: x\n", "d.zy:2:1: YAML"},
	} {
		_, err := dec(tc.src)
		var re *render.Error
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err %v, want *render.Error containing %q", tc.src, err, tc.wantErr)
		}
	}
	n, err := dec("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\nlist: !append [1]\nn: ~\ni: 12\nf: 1.5\ns: '12'\nyes: yes\n")
	if err != nil {
		t.Fatal(err)
	}
	got := n.Plain().(map[string]any)
	if d := got["derived"].(map[string]any); d["x"] != int64(1) || d["y"] != int64(3) {
		t.Errorf("merge key: %v", d)
	}
	if l, _ := n.Get("list"); l.Tag != "!append" || l.Kind != render.List || l.Line != 5 {
		t.Errorf("tag: %+v", l)
	}
	if got["n"] != nil || got["i"] != int64(12) || got["f"] != 1.5 || got["s"] != "12" || got["yes"] != "yes" {
		t.Errorf("scalars: %#v", got)
	}
	// A secret cannot be a key.
	tp, _ := render.Parse("k.zy", []byte(`{{ secret "t" }}: 1`))
	out, err := tp.Execute(context.Background(), render.Data{}, secretFns(), render.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := render.Decode("k.zy", out, 0); err == nil || !strings.Contains(err.Error(), "a secret cannot be a map key") || strings.Contains(err.Error(), plaintext) {
		t.Errorf("secret key: %v", err)
	}
}

func TestFuncNames_Hermetic(t *testing.T) {
	names := strings.Join(render.FuncNames(), " ")
	for _, want := range []string{"secret", "setting", "basket", "default", "toJson", "b64enc", "until", "regexReplaceAll"} {
		if !strings.Contains(" "+names+" ", " "+want+" ") {
			t.Errorf("missing %s", want)
		}
	}
	for _, deny := range []string{"now", "env", "randAlpha", "randInt", "uuidv4", "genPrivateKey", "bcrypt", "getHostByName", "ago", "derivePassword", "expandenv"} {
		if strings.Contains(" "+names+" ", " "+deny+" ") {
			t.Errorf("%s is not hermetic but is available", deny)
		}
	}
}
