package render_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/zester-io/zester/internal/render"
)

// Inputs names the data paths an output is a function of, and refuses
// (ok false) every template whose output may depend on more.
func TestTemplate_Inputs(t *testing.T) {
	for _, tc := range []struct {
		src   string
		paths string // fmt of the paths; "" when refused
	}{
		{"a: 1\n", "[]"},
		{`a: {{ list "x" "y" | join "," }}`, "[]"},
		{`a: {{ .facts.network.fqdn }}`, "[[facts network fqdn]]"},
		{`a: {{ .id }}`, "[[id]]"},
		{`{{ range .facts.disks }}- {{ . }}{{ $.facts.os }}{{ end }}`, "[[facts disks] [facts os]]"},
		{`{{ range $i, $d := .facts.disks }}{{ $d }}{{ end }}`, "[[facts disks]]"},
		{`a: {{ .facts.role | default "none" }}`, "[[facts role]]"},
		{`a: {{ default "none" .facts.role }}`, "[[facts role]]"},
		{`a: {{ index .facts "network" "fqdn" }}`, "[[facts network fqdn]]"},
		{`a: {{ index .facts .facts.os }}`, "[[facts] [facts os]]"},
		{`a: {{ (.facts.network).fqdn }}`, "[[facts network fqdn]]"},
		{`{{ with .facts.network }}a: {{ .fqdn }}{{ end }}`, "[[facts network]]"},
		{`{{ if eq .facts.os "Debian" }}a: {{ .facts.cpus }}{{ end }}`, "[[facts os] [facts cpus]]"},
		{`{{ $n := .facts.network }}a: {{ $n.fqdn }}`, "[[facts network]]"},
		// Refused: the root as a value, setting, basket, template calls.
		{`a: {{ . }}`, ""},
		{`a: {{ toJson $ }}`, ""},
		{`{{ $r := . }}a: {{ $r.facts.os }}`, ""},
		{`{{ with .facts.network }}{{ .fqdn }}{{ else }}{{ toJson . }}{{ end }}`, ""},
		{`a: {{ setting "b" }}`, ""},
		{`a: {{ setting "b" | default 1 }}`, ""},
		{`a: {{ basket "*" "ipv4" }}`, ""},
		{`{{ define "x" }}b{{ end }}a: {{ template "x" .facts }}`, ""},
	} {
		if got := pathsOf(t, tc.src, (*render.Template).Inputs); got != tc.paths {
			t.Errorf("%s: inputs %q, want %q", tc.src, got, tc.paths)
		}
	}
}

// What Inputs promises: two executions whose input paths hold the same
// values write the same text, whatever else the facts hold.
func TestTemplate_InputsDetermineOutput(t *testing.T) {
	src := `os: {{ .facts.os }}
{{- range .facts.disks }}
- {{ . | upper }}
{{- end }}
fqdn: {{ .facts.network.fqdn | default "none" }}`
	tp, err := render.Parse("t.zy", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	paths, ok := tp.Inputs()
	if !ok || len(paths) != 3 {
		t.Fatalf("inputs %v %v", paths, ok)
	}
	a := render.NormalizeFacts(testFacts)
	b := render.NormalizeFacts(map[string]any{"os": "Debian", "disks": []any{"sda", "sdb"}, "network": map[string]any{"fqdn": "web1.example.com"}, "other": 1.0})
	c := render.NormalizeFacts(map[string]any{"os": "Ubuntu", "disks": []any{"sda", "sdb"}, "network": map[string]any{"fqdn": "web1.example.com"}})
	out := func(f map[string]any) string {
		o, err := tp.Execute(context.Background(), render.Data{ID: "x", Facts: f}, render.Funcs{}, render.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return string(o.Text())
	}
	if out(a) != out(b) {
		t.Errorf("same inputs, different text: %q %q", out(a), out(b))
	}
	if out(a) == out(c) {
		t.Errorf("another os, same text %q", out(c))
	}
	if !slices.ContainsFunc(paths, func(p []string) bool { return slices.Equal(p, []string{"facts", "network", "fqdn"}) }) {
		t.Errorf("the lenient lookup's path is missing: %v", paths)
	}
}

// FactPaths: the fact paths alone; setting and basket do not read facts,
// the whole document (or root) used as a value does.
func TestTemplate_FactPaths(t *testing.T) {
	for _, tc := range []struct{ src, paths string }{
		{"a: 1\n", "[]"},
		{`a: {{ .id }}.{{ setting "domain" }}`, "[]"},
		{`a: {{ setting "x" }} {{ .facts.os }} {{ basket "*" .facts.role }}`, "[[os] [role]]"},
		{`a: {{ index .facts "network" "fqdn" | default "" }}`, "[[network fqdn]]"},
		{`a: {{ toJson .facts }}`, ""},
		{`a: {{ toJson . }}`, ""},
		{`{{ define "x" }}{{ end }}{{ template "x" }}`, ""},
	} {
		if got := pathsOf(t, tc.src, (*render.Template).FactPaths); got != tc.paths {
			t.Errorf("%s: fact paths %q, want %q", tc.src, got, tc.paths)
		}
	}
}

// pathsOf is what of (Inputs or FactPaths) gives for src: its paths, "[]"
// for none, "" when refused.
func pathsOf(t *testing.T, src string, of func(*render.Template) ([][]string, bool)) string {
	t.Helper()
	tp, err := render.Parse("t.zy", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	paths, ok := of(tp)
	switch {
	case !ok:
		return ""
	case paths == nil:
		return "[]"
	}
	return fmt.Sprint(paths)
}
