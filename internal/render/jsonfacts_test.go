package render_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/render"
)

// ParseFacts gives what NormalizeFacts(json.Unmarshal) gives, and fails
// where json.Unmarshal fails, naming the byte.
func TestParseFacts(t *testing.T) {
	for _, doc := range []string{
		`{"os":"Debian","cpus":4,"mem":7.5,"big":12345678901234567,"neg":-3,"exp":1e3,"z":-0,"f":false,"t":true,"n":null}`,
		`{"nested":{"a":[1,"x",{"b":[]},{}],"c":"é\u00e9\ud83d\ude00"}, "esc":"a\"b\\c\/d\b\f\n\r\t"}`,
		` {"dup":1,"dup":2} `,
		`{"lone":"\ud800x","bad":"` + "\xff\xfe" + `ok","pair_bad":"\ud800\u0041"}`,
		`{}`,
	} {
		var want map[string]any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		got, err := render.ParseFacts([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if !reflect.DeepEqual(got, render.NormalizeFacts(want)) {
			t.Errorf("%s:\n got %#v\nwant %#v", doc, got, render.NormalizeFacts(want))
		}
	}
	for _, doc := range []string{``, `[]`, `null`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`, `{"a":1.}`, `{"a":"` + "\x01" + `"}`, `{"a":"\x"}`, `{"a":1} x`, `{"a":tru}`, `{"a":"\u12"}`, `{"a":1e999}`, `{"a":[1 2]}`} {
		if _, err := render.ParseFacts([]byte(doc)); err == nil || !strings.Contains(err.Error(), "byte") {
			t.Errorf("%q: %v, want an error naming the byte", doc, err)
		}
	}
}

// FuzzParseFacts: on any input, ParseFacts agrees with encoding/json and
// NormalizeFacts (a document encoding/json reads as an object ParseFacts
// reads the same; one it refuses ParseFacts refuses). Seeds in
// testdata/fuzz/FuzzParseFacts.
func FuzzParseFacts(f *testing.F) {
	for _, s := range []string{
		`{"os":"Debian","num_cpus":4,"mem":7.5,"l":[1,2.5,"x",null,true,{"a":{}}]}`,
		`{"s":"\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t"}`,
		`{"n":-0,"e":1E+2,"big":9007199254740993,"f":0.1e-3}`,
		"{\"bad\":\"\xff\"}",
		`{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var want map[string]any
		werr := json.Unmarshal(doc, &want)
		got, err := render.ParseFacts(doc)
		switch {
		case werr != nil || want == nil:
			if err == nil && werr != nil {
				t.Fatalf("%q: ParseFacts read what encoding/json refuses (%v): %#v", doc, werr, got)
			}
		case err != nil:
			t.Fatalf("%q: %v; encoding/json reads %#v", doc, err, want)
		case !reflect.DeepEqual(got, render.NormalizeFacts(want)):
			t.Fatalf("%q:\n got %#v\nwant %#v", doc, got, render.NormalizeFacts(want))
		}
	})
}
