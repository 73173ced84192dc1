package render_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/target"
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
		checkFiltered(t, doc, got, err)
		checkKeysFiltered(t, doc, got, err)
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

// filterPaths are the paths the filtered parse of the tests keeps.
var filterPaths = [][]string{{"os"}, {"network", "dns", "nameservers"}, {"network", "addresses"}, {"l", "0"}, {"a"}, {"s"}}

// checkFiltered: ParseFactsFiltered fails where ParseFacts fails, and
// every path of the filter looks up the same in both results.
func checkFiltered(t *testing.T, doc []byte, full map[string]any, fullErr error) {
	t.Helper()
	got, err := render.ParseFactsFiltered(doc, render.NewFactFilter(filterPaths))
	if (err == nil) != (fullErr == nil) {
		t.Fatalf("%q: filtered %v, whole %v", doc, err, fullErr)
	}
	if err != nil {
		return
	}
	for _, p := range filterPaths {
		for n := 1; n <= len(p); n++ {
			a, aok := (target.MapSubject{Facts: got}).Fact(p[:n])
			b, bok := (target.MapSubject{Facts: full}).Fact(p[:n])
			if n < len(p) {
				// Above a path's end only the kind is the same (the
				// filtered map holds fewer keys).
				_, am := a.(map[string]any)
				_, bm := b.(map[string]any)
				if aok != bok || am != bm {
					t.Fatalf("%q: %v: filtered %#v %v, whole %#v %v", doc, p[:n], a, aok, b, bok)
				}
				continue
			}
			if aok != bok || !reflect.DeepEqual(a, b) {
				t.Fatalf("%q: %v: filtered %#v %v, whole %#v %v", doc, p, a, aok, b, bok)
			}
		}
	}
}

// keysPaths are the paths of the keys filter of the tests: one ends where
// others go on.
var keysPaths = append([][]string{{"network"}, {"l"}}, filterPaths...)

// checkKeysFiltered: ParseFactsFiltered with NewFactKeysFilter fails where
// ParseFacts fails, and at every path of the filter finds what ParseFacts
// finds, an object with the same keys where that is an object.
func checkKeysFiltered(t *testing.T, doc []byte, full map[string]any, fullErr error) {
	t.Helper()
	got, err := render.ParseFactsFiltered(doc, render.NewFactKeysFilter(keysPaths))
	if (err == nil) != (fullErr == nil) {
		t.Fatalf("%q: keys-filtered %v, whole %v", doc, err, fullErr)
	}
	if err != nil {
		return
	}
	keys := func(m map[string]any) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, p := range keysPaths {
		for n := 1; n <= len(p); n++ {
			a, aok := (target.MapSubject{Facts: got}).Fact(p[:n])
			b, bok := (target.MapSubject{Facts: full}).Fact(p[:n])
			am, aIsMap := a.(map[string]any)
			bm, bIsMap := b.(map[string]any)
			switch {
			case aok != bok || aIsMap != bIsMap:
				t.Fatalf("%q: %v: keys-filtered %#v %v, whole %#v %v", doc, p[:n], a, aok, b, bok)
			case n < len(p):
			case aIsMap:
				if !slices.Equal(keys(am), keys(bm)) {
					t.Fatalf("%q: %v: keys-filtered keys %q, whole %q", doc, p, keys(am), keys(bm))
				}
			case !reflect.DeepEqual(a, b):
				t.Fatalf("%q: %v: keys-filtered %#v, whole %#v", doc, p, a, b)
			}
		}
	}
}

// The filtered parse keeps the paths and drops the rest.
func TestParseFactsFiltered(t *testing.T) {
	doc := []byte(`{"os":"Debian","big":{"x":[1,2,{"y":"\u00e9"}]},"network":{"dns":{"nameservers":["10.0.0.2"],"search":["a"]},"addresses":"10.0.0.5","mtu":1500},"l":["first",2],"s":"x"}`)
	got, err := render.ParseFactsFiltered(doc, render.NewFactFilter(filterPaths))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"os": "Debian", "network": map[string]any{"dns": map[string]any{"nameservers": []any{"10.0.0.2"}}, "addresses": "10.0.0.5"}, "l": []any{"first", int64(2)}, "s": "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	full, err := render.ParseFacts(doc)
	checkFiltered(t, doc, full, err)
	for _, bad := range []string{`{"big":[1,}`, `{"big":{"x" 1}}`, `{"big":"\q"}`, `{"big":tru}`, `{"big":[1 2]}`, `{"big":"` + "\x01" + `"}`} {
		if _, err := render.ParseFactsFiltered([]byte(bad), render.NewFactFilter(filterPaths)); err == nil {
			t.Errorf("%s: read, want an error", bad)
		}
	}
	if render.NewFactFilter([][]string{{"a"}, {}}) != nil {
		t.Error("an empty path keeps everything: the nil filter")
	}
}

// AppendFactsJSON's text parses back to what it was made of, filtered or
// not: numbers keep their kind (int64, float64), strings their bytes.
func TestAppendFactsJSON_RoundTrip(t *testing.T) {
	docs := []string{
		`{"os":"Debian","cpus":4,"mem":7.5,"big":12345678901234567,"huge":1e300,"tiny":-2.5e-300,"neg":-3,"exp":1e3,"whole":12.0,"z":-0,"f":false,"t":true,"n":null}`,
		`{"nested":{"a":[1,"x",{"b":[]},{}],"c":"é\u00e9\ud83d\ude00"}, "esc":"a\"b\\c\/d\b\f\n\r\t\u0001\u001f\u007f<&>"}`,
		`{"lone":"\ud800x","bad":"` + "\xff\xfe" + `ok","pair_bad":"\ud800\u0041","k\"ey\\":{"\n":1}}`,
		`{"nine":9007199254740993,"max":9007199254740991,"neg_max":-9007199254740991,"frac":0.1}`,
		`{}`,
	}
	filters := []*render.FactFilter{nil, render.NewFactFilter([][]string{{"os"}, {"nested", "a"}, {"esc"}, {"nine"}, {"bad"}})}
	for _, doc := range docs {
		for _, f := range filters {
			want, err := render.ParseFactsFiltered([]byte(doc), f)
			if err != nil {
				t.Fatal(err)
			}
			b, ok := render.AppendFactsJSON(nil, want)
			if !ok {
				t.Fatalf("%s: not encoded", doc)
			}
			got, err := render.ParseFactsFiltered(b, f)
			if err != nil {
				t.Fatalf("%s: %s: %v", doc, b, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s\n got %#v\nwant %#v", doc, b, got, want)
			}
		}
	}
	// What no parser makes is refused, not encoded into something else.
	for _, v := range []any{float64(3), "\xff", map[string]any{"\xff": 1}, []any{int(1)}, struct{}{}} {
		if _, ok := render.AppendFactsJSON(nil, map[string]any{"v": v}); ok {
			t.Errorf("%#v encoded", v)
		}
	}
}

// FuzzAppendFactsJSON: any document ParseFacts takes comes back equal from
// AppendFactsJSON's text.
func FuzzAppendFactsJSON(f *testing.F) {
	f.Add(`{"a":1,"b":[1.5,"x",null,true,{"c":-0.0}],"d":"\u0000\""}`)
	f.Add(`{"n":123456789012345678901234567890,"e":1E-7}`)
	f.Fuzz(func(t *testing.T, doc string) {
		want, err := render.ParseFacts([]byte(doc))
		if err != nil {
			return
		}
		b, ok := render.AppendFactsJSON(nil, want)
		if !ok {
			t.Fatalf("%q: not encoded", doc)
		}
		got, err := render.ParseFacts(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %s: %v\n got %#v\nwant %#v", doc, b, err, got, want)
		}
	})
}
