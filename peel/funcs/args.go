package funcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/wire"
)

// decodeArgs decodes the job arguments raw into dst, a pointer to a struct
// with json tags. Empty or null arguments leave dst untouched. A JSON array
// is mapped positionally onto the fields named in positional; so is the
// array under wire.ArgsKey of an object, whose other keys name their
// fields (Salt's convention, `state.apply web test=true`). Unknown fields,
// wrong JSON types, an argument given both ways and trailing data are
// reported as CodeBadArgs errors that name the offending argument.
func decodeArgs(raw json.RawMessage, dst any, positional ...string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	switch raw[0] {
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			// Decoded below for the error that names the argument.
			break
		}
		pos, mixed := obj[wire.ArgsKey]
		if !mixed {
			break
		}
		delete(obj, wire.ArgsKey)
		if err := placePositional(obj, pos, positional); err != nil {
			return err
		}
		var err error
		if raw, err = json.Marshal(obj); err != nil {
			return badArgs("invalid JSON arguments: %v", err)
		}
	case '[':
		obj := map[string]json.RawMessage{}
		if err := placePositional(obj, raw, positional); err != nil {
			return err
		}
		var err error
		if raw, err = json.Marshal(obj); err != nil {
			return badArgs("invalid JSON arguments: %v", err)
		}
	default:
		return badArgs("arguments must be a JSON object or array, got %s", jsonKind(raw))
	}

	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return translateDecodeError(err, dst)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badArgs("invalid JSON arguments: trailing data after the arguments object")
	}
	return nil
}

// DecodeArgs is decodeArgs for functions registered from outside this
// package (the state functions), so every function reads the same three
// forms: object, array, and object with wire.ArgsKey.
func DecodeArgs(raw json.RawMessage, dst any, positional ...string) error {
	return decodeArgs(raw, dst, positional...)
}

// placePositional puts the elements of the JSON array arr into obj under
// the names in positional, in order; null elements are left out. A name
// obj already holds was given twice.
func placePositional(obj map[string]json.RawMessage, arr json.RawMessage, positional []string) error {
	if t := bytes.TrimSpace(arr); len(t) == 0 || t[0] != '[' {
		return badArgs("positional arguments (%s) must be a JSON array, got %s", wire.ArgsKey, jsonKind(t))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(arr, &elems); err != nil {
		return badArgs("invalid JSON arguments: %v", err)
	}
	if len(elems) > len(positional) {
		if len(positional) == 0 {
			return badArgs("takes no positional arguments, got %d", len(elems))
		}
		return badArgs("too many positional arguments: got %d, at most %d (%s)",
			len(elems), len(positional), strings.Join(positional, ", "))
	}
	for i, e := range elems {
		if bytes.Equal(bytes.TrimSpace(e), []byte("null")) {
			continue
		}
		// encoding/json matches names case-insensitively: so does this.
		for k := range obj {
			if strings.EqualFold(k, positional[i]) {
				return badArgs("argument %q given twice: as positional argument %d and by name", positional[i], i+1)
			}
		}
		obj[positional[i]] = e
	}
	return nil
}

func translateDecodeError(err error, dst any) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := argPath(dst, te.Field)
		if field == "" {
			return badArgs("arguments: expected %s, got %s", describeType(te.Type), te.Value)
		}
		return badArgs("argument %q: expected %s, got %s", field, describeType(te.Type), te.Value)
	case errors.As(err, &se):
		return badArgs("invalid JSON arguments: %v", err)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		known := fieldNames(dst)
		if len(known) == 0 {
			return badArgs("unknown argument %q (function takes no arguments)", name)
		}
		return badArgs("unknown argument %q (accepted: %s)", name, strings.Join(known, ", "))
	}
	return badArgs("invalid arguments: %s", strings.TrimPrefix(msg, "json: "))
}

// argPath is the argument a decode error's field path names: without the
// Go names of embedded structs (procArgs.env is env), whose fields are the
// outer struct's arguments.
func argPath(dst any, field string) string {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for t != nil && t.Kind() == reflect.Struct {
		head, rest, ok := strings.Cut(field, ".")
		f, found := t.FieldByName(head)
		if !ok || !found || !f.Anonymous {
			break
		}
		field, t = rest, f.Type
	}
	return field
}

// fieldNames lists the json names of the fields of the struct dst points to.
func fieldNames(dst any) []string {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	return structFieldNames(t)
}

// structFieldNames lists the json names of struct type t's fields; an
// untagged embedded struct's fields are t's (as encoding/json reads them),
// listed in its place.
func structFieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			names = append(names, structFieldNames(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

var durationType = reflect.TypeOf(Duration(0))

// describeType names a Go type in JSON terms for error messages.
func describeType(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	if t == durationType {
		return "a duration (Go duration string like \"30s\" or number of seconds)"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + describeType(t.Elem())
	case reflect.Map:
		return "object of " + describeType(t.Elem())
	case reflect.Struct:
		return "object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "number"
}

// Duration is a job argument holding a duration. In JSON it is either a Go
// duration string ("1m30s", "300ms") or a number of seconds (1.5, or the
// string "1.5").
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	bad := func(v string) error {
		return &json.UnmarshalTypeError{Value: v, Type: durationType}
	}
	var secs float64
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return bad("string")
		}
		s = strings.TrimSpace(s)
		if v, err := time.ParseDuration(s); err == nil {
			if v < 0 {
				return bad(fmt.Sprintf("negative duration %q", s))
			}
			*d = Duration(v)
			return nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad(fmt.Sprintf("string %q", s))
		}
		secs = v
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		if err := json.Unmarshal(b, &secs); err != nil {
			return bad("number " + string(b))
		}
	default:
		return bad(jsonKind(b))
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > float64(math.MaxInt64/int64(time.Second)) {
		return bad(fmt.Sprintf("out of range number %v", secs))
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler (as a Go duration string).
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}
