package render_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/render"
)

// FuzzRender: any source parses or fails with an *Error naming the file;
// any parsed template executes within its bounds (or fails with an *Error)
// and never leaks a secret's plaintext into its text; its output decodes or
// fails with an *Error. Seeds in testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"a: {{ .id }}\nb: {{ .facts.os | default \"x\" }}\n",
		"{{ range $i, $e := until 5 }}- {{ $i }}: {{ $e }}\n{{ end }}",
		"{{ secret \"tok\" }}: 1",
		"s: {{ secret \"tok\" | quote }}\n",
		"{{ define \"x\" }}{{ .id }}{{ end }}{{ template \"x\" . }}",
		"{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" $d }}",
		"{{ range 100000000 }}{{ end }}",
		"a: &a [1]\nb: *a\n",
		"{{ setting \"a:b\" \"d\" }} {{ basket \"*\" \"ip\" }}",
	} {
		f.Add(s)
	}
	const plain = "PLAINTEXT-SECRET-VALUE"
	fns := render.Funcs{
		Secret:  func(string) (string, error) { return plain, nil },
		Setting: func(k string) (any, error) { return nil, render.ErrNotSet },
		Basket:  func(string, string) (map[string]any, error) { return map[string]any{"p": "v"}, nil },
	}
	lim := render.Limits{MaxOutput: 64 << 10, MaxSteps: 50_000, Timeout: time.Second}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := render.Parse("f.zy", []byte(src))
		if err != nil {
			var re *render.Error
			if !errors.As(err, &re) || re.File != "f.zy" {
				t.Fatalf("parse error %v (%T) is not an *Error for f.zy", err, err)
			}
			return
		}
		start := time.Now()
		out, err := tp.Execute(context.Background(), render.Data{ID: "p1", Facts: map[string]any{"os": "Debian"}}, fns, lim)
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("execution took %s", d)
		}
		if err != nil {
			var re *render.Error
			if !errors.As(err, &re) || re.File != "f.zy" {
				t.Fatalf("exec error %v (%T) is not an *Error for f.zy", err, err)
			}
			return
		}
		if len(out.Text()) > lim.MaxOutput {
			t.Fatalf("output %d bytes over the cap", len(out.Text()))
		}
		if strings.Contains(string(out.Text()), plain) && !strings.Contains(src, plain) {
			t.Fatalf("plaintext in the text: %q", out.Text())
		}
		if _, err := render.Decode("f.zy", out, 10_000); err != nil {
			var re *render.Error
			if !errors.As(err, &re) || re.File != "f.zy" {
				t.Fatalf("decode error %v (%T) is not an *Error for f.zy", err, err)
			}
			if strings.Contains(err.Error(), plain) && !strings.Contains(src, plain) {
				t.Fatalf("plaintext in a decode error: %v", err)
			}
		}
	})
}
