// Package docscheck keeps the operator docs honest. It holds tests only and
// sits above both daemons because docs/configuration.md documents both.
package docscheck

// These tests keep docs/configuration.md honest: every complete example in it
// must be accepted by the daemons' own parsers, every key of master.Config and
// peel.Config must be in its reference table (and nothing else may be), and
// every default the tables state must be the default the code sets.

import (
	"encoding"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/peel"
)

const docsConfigPath = "../../docs/configuration.md"

// docsConfigFile is configuration.md split into what the tests need.
type docsConfigFile struct {
	text     string
	examples []docsExample
	// rows are the reference table rows per section ("master.yaml",
	// "peel.yaml"): key → default cell.
	rows map[string]map[string]docsRow
}

type docsExample struct {
	daemon string // "master.yaml" or "peel.yaml"
	line   int    // of the marker, 1-based
	body   string
}

type docsRow struct {
	line int
	def  string
}

func readDocsConfig(t *testing.T) *docsConfigFile {
	t.Helper()
	b, err := os.ReadFile(docsConfigPath)
	if err != nil {
		t.Fatalf("read %s: %v", docsConfigPath, err)
	}
	d := &docsConfigFile{text: string(b), rows: map[string]map[string]docsRow{}}
	lines := strings.Split(d.text, "\n")
	section := ""
	inFence := false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if h, ok := strings.CutPrefix(l, "## "); ok {
			section = ""
			for _, s := range []string{"master.yaml", "peel.yaml"} {
				if strings.HasPrefix(h, s) {
					section = s
				}
			}
			continue
		}
		if m, ok := strings.CutPrefix(l, "<!-- "); ok {
			daemon, ok := strings.CutSuffix(m, " example -->")
			if !ok {
				continue
			}
			if daemon != "master.yaml" && daemon != "peel.yaml" {
				t.Fatalf("%s:%d: unknown example marker %q", docsConfigPath, i+1, l)
			}
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
				j++
			}
			if j >= len(lines) || strings.TrimSpace(lines[j]) != "```yaml" {
				t.Fatalf("%s:%d: %s example marker not followed by a ```yaml block", docsConfigPath, i+1, daemon)
			}
			var body []string
			k := j + 1
			for ; k < len(lines) && strings.TrimSpace(lines[k]) != "```"; k++ {
				body = append(body, lines[k])
			}
			if k >= len(lines) {
				t.Fatalf("%s:%d: %s example block is not closed", docsConfigPath, i+1, daemon)
			}
			d.examples = append(d.examples, docsExample{daemon: daemon, line: i + 1, body: strings.Join(body, "\n") + "\n"})
			i = k
			continue
		}
		// A reference row: | `key` | type | default | meaning |
		if section == "" || !strings.HasPrefix(l, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) < 4 {
			t.Fatalf("%s:%d: reference row with %d cells, want key, type, default, meaning", docsConfigPath, i+1, len(cells))
		}
		key := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if d.rows[section] == nil {
			d.rows[section] = map[string]docsRow{}
		}
		if prev, dup := d.rows[section][key]; dup {
			t.Errorf("%s:%d: key %s of %s listed twice (first at line %d)", docsConfigPath, i+1, key, section, prev.line)
		}
		d.rows[section][key] = docsRow{line: i + 1, def: strings.TrimSpace(cells[2])}
	}
	return d
}

// docsLeaf is one configuration key found by walking a Config struct.
type docsLeaf struct {
	key string
	val reflect.Value // the default
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// docsWalk lists the dotted yaml keys of a config struct with their default
// values. Nested structs give dotted keys (nats.embedded.listen); a struct
// that reads itself from text (config.Duration, config.ByteSize) is a leaf.
func docsWalk(prefix string, v reflect.Value) []docsLeaf {
	var out []docsLeaf
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if opts == "inline" {
			out = append(out, docsWalk(prefix, v.Field(i))...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := prefix + name
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
			out = append(out, docsWalk(key+".", fv)...)
			continue
		}
		out = append(out, docsLeaf{key: key, val: fv})
	}
	return out
}

func docsLeaves(t *testing.T) map[string][]docsLeaf {
	t.Helper()
	return map[string][]docsLeaf{
		"master.yaml": docsWalk("", reflect.ValueOf(master.DefaultConfig())),
		"peel.yaml":   docsWalk("", reflect.ValueOf(peel.DefaultConfig())),
	}
}

func TestDocs_ConfigExamples_Parse(t *testing.T) {
	d := readDocsConfig(t)
	count := map[string]int{}
	for _, ex := range d.examples {
		count[ex.daemon]++
		var err error
		switch ex.daemon {
		case "master.yaml":
			_, err = master.ParseConfig([]byte(ex.body))
		case "peel.yaml":
			_, err = peel.ParseConfig([]byte(ex.body))
		}
		if err != nil {
			t.Errorf("%s:%d: %s example rejected:\n%v\n--- example ---\n%s", docsConfigPath, ex.line, ex.daemon, err, ex.body)
		}
	}
	for _, daemon := range []string{"master.yaml", "peel.yaml"} {
		if count[daemon] == 0 {
			t.Errorf("%s: no complete %s example (a ```yaml block after <!-- %s example -->)", docsConfigPath, daemon, daemon)
		}
	}
}

func TestDocs_ConfigReference_CoversEveryKey(t *testing.T) {
	d := readDocsConfig(t)
	for daemon, leaves := range docsLeaves(t) {
		inCode := map[string]bool{}
		for _, l := range leaves {
			inCode[l.key] = true
			if !strings.Contains(d.text, "`"+l.key+"`") {
				t.Errorf("%s: key %s of %s (from the struct tags) is not mentioned as `%s`", docsConfigPath, l.key, daemon, l.key)
			}
			if _, ok := d.rows[daemon][l.key]; !ok {
				t.Errorf("%s: key %s has no row in the %s reference table", docsConfigPath, l.key, daemon)
			}
		}
		for key, row := range d.rows[daemon] {
			if !inCode[key] {
				t.Errorf("%s:%d: the %s table documents %s, which the code does not have", docsConfigPath, row.line, daemon, key)
			}
		}
	}
}

func TestDocs_ConfigReference_DefaultsMatchCode(t *testing.T) {
	d := readDocsConfig(t)
	host, _ := os.Hostname()
	for daemon, leaves := range docsLeaves(t) {
		for _, l := range leaves {
			row, ok := d.rows[daemon][l.key]
			if !ok {
				continue // reported by CoversEveryKey
			}
			if err := docsCheckDefault(row.def, l.val, host); err != nil {
				t.Errorf("%s:%d: %s %s: documented default %q: %v", docsConfigPath, row.line, daemon, l.key, row.def, err)
			}
		}
	}
}

// docsCheckDefault compares a default cell with the code's default. A cell
// holds a literal in backticks (`1s`, `512KiB`, `nats://127.0.0.1:4222`), or
// words for a value without one: "host name" for the id, anything else (such
// as "empty" or "unset") for the zero value.
func docsCheckDefault(cell string, v reflect.Value, host string) error {
	lit, hasLit := docsBackticked(cell)
	if !hasLit {
		if strings.Contains(cell, "host name") {
			if v.Kind() != reflect.String || v.String() != host {
				return fmt.Errorf("the code's default is %v, not the host name %q", v.Interface(), host)
			}
			return nil
		}
		if !v.IsZero() {
			return fmt.Errorf("no literal, but the code's default is %v", docsShow(v))
		}
		return nil
	}
	switch x := v.Interface().(type) {
	case config.Duration:
		return docsSame(lit, x.D(), config.ParseDuration, "%s")
	case config.ByteSize:
		return docsSame(lit, x.N(), config.ParseByteSize, "%d bytes")
	case config.URLs:
		return docsSame(lit, x.String(), docsVerbatim, "%q")
	case string:
		return docsSame(lit, x, docsVerbatim, "%q")
	case bool:
		return docsSame(lit, x, strconv.ParseBool, "%v")
	case int:
		return docsSame(lit, x, strconv.Atoi, "%d")
	case []string:
		// A list: its elements, comma separated.
		return docsSame(lit, strings.Join(x, ", "), docsVerbatim, "%q")
	default:
		return fmt.Errorf("cannot compare a literal with a %T default", x)
	}
}

// docsSame parses the documented literal lit with parse and compares it with
// the code's default def, shown with verb when they differ.
func docsSame[T comparable](lit string, def T, parse func(string) (T, error), verb string) error {
	want, err := parse(lit)
	if err != nil {
		return err
	}
	if want != def {
		return fmt.Errorf("the code's default is "+verb, def)
	}
	return nil
}

// docsVerbatim is the parser of a literal that is its own value.
func docsVerbatim(s string) (string, error) { return s, nil }

func docsBackticked(cell string) (string, bool) {
	_, rest, ok := strings.Cut(cell, "`")
	if !ok {
		return "", false
	}
	lit, _, ok := strings.Cut(rest, "`")
	return lit, ok
}

func docsShow(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case config.Duration:
		return x.D().String()
	case config.ByteSize:
		return strconv.FormatInt(x.N(), 10) + " bytes"
	}
	return fmt.Sprintf("%v", v.Interface())
}

// The shipped examples/ files must stay valid too.
func TestDocs_ExampleFiles_Parse(t *testing.T) {
	for _, f := range []struct {
		path  string
		parse func([]byte) error
	}{
		{"../../examples/master.yaml", func(b []byte) error { _, err := master.ParseConfig(b); return err }},
		{"../../examples/peel.yaml", func(b []byte) error { _, err := peel.ParseConfig(b); return err }},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if err := f.parse(b); err != nil {
			t.Errorf("%s: %v", filepath.Clean(f.path), err)
		}
	}
}
