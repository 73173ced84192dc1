package peelproto

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/wire"
)

func TestBeatCodec_SameAsJSON(t *testing.T) {
	beats := []wire.Beat{
		{Instance: NewInstance()},
		{Instance: "a3b8beb5b0bc239f", Interval: wire.Duration(10 * time.Second)},
		{Instance: "a3b8beb5b0bc239f", Bye: true},
		{Instance: "x", Bye: true, Interval: wire.Duration(90 * time.Minute)},
		{Instance: "has space", Interval: wire.Duration(time.Second)}, // not plain: encoding/json
		{Instance: `quo"te<&>`, Bye: true},
		{Instance: "ünï", Interval: wire.Duration(1500 * time.Millisecond)},
		{Instance: "a3b8beb5b0bc239f", Interval: wire.Duration(10 * time.Second), Conn: 1},
		{Instance: "a3b8beb5b0bc239f", Bye: true, Conn: 4294967295},
		{Instance: "has space", Conn: 7},
		{},
	}
	for _, b := range beats {
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got := encodeBeat(b)
		if !bytes.Equal(got, want) {
			t.Errorf("encodeBeat(%+v) = %s, encoding/json %s", b, got, want)
		}
		var d wire.Beat
		if err := decodeBeat(got, &d); err != nil || d != b {
			t.Errorf("decodeBeat(%s) = %+v, %v; want %+v", got, d, err, b)
		}
	}
}

func TestDecodeBeat_OtherFormsAndErrors(t *testing.T) {
	ok := map[string]wire.Beat{
		`{"iv":"10s","i":"ab"}`:              {Instance: "ab", Interval: wire.Duration(10 * time.Second)},
		`{ "i" : "ab" }`:                     {Instance: "ab"},
		`{"i":"ab","bye":false}`:             {Instance: "ab"},
		`{"i":"a\u0062","extra":1}`:          {Instance: "ab"},
		`{"i":"ab","bye":true,"iv":"1m0s"} `: {Instance: "ab", Bye: true, Interval: wire.Duration(time.Minute)},
		`{"c":3,"i":"ab"}`:                   {Instance: "ab", Conn: 3},
		`{"i":"ab","c":0}`:                   {Instance: "ab"},
	}
	for in, want := range ok {
		var b wire.Beat
		if err := decodeBeat([]byte(in), &b); err != nil || b != want {
			t.Errorf("decodeBeat(%s) = %+v, %v; want %+v", in, b, err, want)
		}
	}
	for _, in := range []string{`{"i":"ab","iv":"soon"}`, `{"i":"ab","c":007}`, `{"i":"ab","c":4294967296}`, `{"i":"ab","c":-1}`, `{"i":"ab","c":"1"}`, `{"i":"ab"`, `{"i":"ab"}}`, ``, `[]`} {
		var b wire.Beat
		if err := decodeBeat([]byte(in), &b); err == nil {
			t.Errorf("decodeBeat(%s) = %+v, want an error", in, b)
		}
	}
}

// FuzzDecodeBeat: the fast path never disagrees with encoding/json.
func FuzzDecodeBeat(f *testing.F) {
	f.Add([]byte(`{"i":"a3b8beb5b0bc239f","iv":"10s"}`))
	f.Add([]byte(`{"i":"x","bye":true}`))
	f.Add([]byte(`{"i":"x","bye":true,"iv":"1h2m3.5s"}`))
	f.Add([]byte(`{"i":"x","iv":"-5µs"}`))
	f.Add([]byte(`{"i":"x","iv":"soon"}`))
	f.Add([]byte(`{"i":"x","iv":"10s","c":12}`))
	f.Add([]byte(`{"i":"x","c":0}`))
	f.Add([]byte(`{"i":"x","c":007}`))
	f.Add([]byte(`{"i":"x","c":4294967296}`))
	f.Add([]byte(`{"i":"x","bye":true,"c":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, slow wire.Beat
		if !fastDecodeBeat(data, &fast) {
			return
		}
		if err := json.Unmarshal(data, &slow); err != nil || slow != fast {
			t.Fatalf("%q: fast %+v, encoding/json %+v %v", data, fast, slow, err)
		}
	})
}

func BenchmarkBeatCodec(b *testing.B) {
	beat := wire.Beat{Instance: NewInstance(), Interval: wire.Duration(10 * time.Second)}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			encodeBeat(beat)
		}
	})
	data := encodeBeat(beat)
	b.Run("decode", func(b *testing.B) {
		var d wire.Beat
		for b.Loop() {
			if err := decodeBeat(data, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
