package statetree

import (
	"bytes"
	"strings"
	"testing"
)

// contents is a pack's worth of contents by digest.
func contents(cs ...string) map[string][]byte {
	m := map[string][]byte{}
	for _, c := range cs {
		m[digest([]byte(c))] = []byte(c)
	}
	return m
}

// A pack decodes to the contents it was made of, and every malformed one
// is refused naming what is wrong.
func TestDecodePack_RoundTripAndRefusals(t *testing.T) {
	in := contents("top.sls body", "web.sls body", "")
	b, err := encodePack(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodePack(b)
	if err != nil || len(out) != len(in) {
		t.Fatalf("round trip: %d contents, %v", len(out), err)
	}
	for d, c := range in {
		if !bytes.Equal(out[d], c) {
			t.Fatalf("content %.12s: %q, want %q", d, out[d], c)
		}
	}
	raw := func(s string) []byte { return zenc().EncodeAll([]byte(s), nil) }
	entry := func(d string, c string) string {
		b, _ := encodePack(map[string][]byte{d: []byte(c)})
		r, _ := zdec().DecodeAll(b, nil)
		return string(r[len(packMagic):])
	}
	a := digest([]byte("a"))
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not zstd", []byte("plain text"), "does not decompress"},
		{"no header", raw("zpk2"), "not a pack"},
		{"truncated digest", raw(packMagic + "short"), "truncated after 0 contents"},
		{"truncated content", raw(packMagic + entry(a, "a")[:33]), "truncated"},
		{"content twice", raw(packMagic + entry(a, "a") + entry(a, "a")), "twice"},
		{"content under another digest", raw(packMagic + entry(a, "b")), "is corrupt"},
	} {
		if _, err := decodePack(c.in); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "pack refused") {
			t.Errorf("%s: %v, want a refusal containing %q", c.name, err, c.want)
		}
	}
}

// FuzzDecodePack: no input panics, and every content of an accepted pack
// has the SHA-256 it is stored under, and packs again to the same contents.
func FuzzDecodePack(f *testing.F) {
	if b, err := encodePack(contents("a", "b")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := decodePack(b)
		if err != nil {
			return
		}
		for d, c := range out {
			if digest(c) != d {
				t.Fatalf("accepted content %.12s with sha256 %.12s", d, digest(c))
			}
		}
		again, err := encodePack(out)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodePack(again); err != nil || len(back) != len(out) {
			t.Fatalf("re-packed: %d contents, %v", len(back), err)
		}
	})
}
