package funcs

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fuzzArgTargets are argument structs of the registered functions, with
// their positional names, covering every kind of field decodeArgs meets.
var fuzzArgTargets = []struct {
	name       string
	new        func() any
	positional []string
}{
	{"none", func() any { return &noArgs{} }, nil},
	{"cmd.run", func() any { return &cmdArgs{} }, []string{"cmd", "cwd"}},
	{"cmd.script", func() any { return &scriptArgs{} }, []string{"script", "interpreter"}},
	{"file.read", func() any {
		return &struct {
			Path     string `json:"path"`
			MaxBytes *int64 `json:"max_bytes"`
		}{}
	}, []string{"path"}},
	{"test.sleep", func() any {
		return &struct {
			Seconds *Duration `json:"seconds"`
		}{}
	}, []string{"seconds"}},
}

// FuzzDecodeArgs: job arguments come from whoever submits the job. For each
// argument struct, decoding either fails with a CodeBadArgs error, one that
// names a field of the struct when it blames an argument, or succeeds with a
// value that encodes back to arguments decoding to the same value.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `1`,
		`{"cmd":"ls -l","cwd":"/tmp","env":{"A":"b"},"timeout":"30s","stdin":"hi"}`,
		`["ls", "/tmp"]`, `["ls", null]`, `["a","b","c"]`,
		`{"argv":["a",1]}`, `{"env":{"A":1}}`, `{"timeout":-1}`, `{"timeout":"1.5"}`,
		`{"seconds":1e400}`, `{"max_bytes":"7"}`, `{"nope":1}`, `{} {}`, `{"cmd":"x"}x`,
		`{"_args":["ls"],"cwd":"/tmp"}`, `{"_args":["ls"],"cmd":"x"}`, `{"_args":["ls"],"CMD":"x"}`,
		`{"_args":"ls"}`, `{"_args":[null,"/"],"cmd":"x"}`, `{"_args":[]}`, `{"_args":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, tg := range fuzzArgTargets {
			dst := tg.new()
			err := decodeArgs(raw, dst, tg.positional...)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) || fe.Code != CodeBadArgs {
					t.Fatalf("%s: %q: error %v (%T), want a %s *Error", tg.name, raw, err, err, CodeBadArgs)
				}
				known := fieldNames(dst)
				for _, prefix := range []string{"argument ", "unknown argument "} {
					rest, ok := strings.CutPrefix(fe.Msg, prefix)
					if !ok || !strings.HasPrefix(rest, `"`) {
						continue
					}
					q, err := strconv.QuotedPrefix(rest)
					if err != nil {
						t.Fatalf("%s: %q: message %q: argument name does not parse: %v", tg.name, raw, fe.Msg, err)
					}
					name, _ := strconv.Unquote(q)
					top, _, _ := strings.Cut(name, ".")
					if isKnown := slices.Contains(known, top); isKnown == (prefix == "unknown argument ") {
						t.Fatalf("%s: %q: message %q: %q vs fields %v", tg.name, raw, fe.Msg, name, known)
					}
				}
				continue
			}
			again, err := json.Marshal(dst)
			if err != nil {
				t.Fatalf("%s: %q decoded to %+v that does not encode: %v", tg.name, raw, dst, err)
			}
			dst2 := tg.new()
			if err := decodeArgs(again, dst2, tg.positional...); err != nil {
				t.Fatalf("%s: %q → %s does not decode: %v", tg.name, raw, again, err)
			}
			if !reflect.DeepEqual(dst, dst2) {
				t.Fatalf("%s: %q → %+v → %s → %+v", tg.name, raw, dst, again, dst2)
			}
			// An array means the same under _args of an object.
			if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "[") {
				dst3 := tg.new()
				mixed := `{"_args":` + trimmed + `}`
				if err := decodeArgs([]byte(mixed), dst3, tg.positional...); err != nil || !reflect.DeepEqual(dst, dst3) {
					t.Fatalf("%s: %q → %+v, but %s → %+v, %v", tg.name, raw, dst, mixed, dst3, err)
				}
			}
		}
	})
}

// FuzzDuration: a duration argument that decodes is not negative and
// survives its own encoding; one that does not is a type error naming the
// duration type (translateDecodeError turns it into the message).
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"30s"`, `"1m30s"`, `1.5`, `"1.5"`, `0`, `-1`, `"-1s"`, `1e30`, `"NaN"`, `null`, `true`, `"x"`, `" 2h "`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d Duration
		if err := d.UnmarshalJSON(raw); err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) || te.Type != durationType {
				t.Fatalf("%q: error %v (%T), want a duration type error", raw, err, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q decoded to negative %v", raw, d)
		}
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var d2 Duration
		if err := d2.UnmarshalJSON(b); err != nil || d2 != d {
			t.Fatalf("%q → %v → %s → %v %v", raw, d, b, d2, err)
		}
	})
}
