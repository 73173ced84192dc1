package factcodec

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	doc := []byte(`{"os":{"id":"debian","version_id":"12"},"network":{"addresses":["10.0.0.1","10.0.0.2"]}}`)
	got, err := Decode(Encode(doc))
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("%s %v", got, err)
	}
	// The one-shot encoder of a peel writes what the kept one writes.
	if once := EncodeOnce(doc); !bytes.Equal(once, Encode(doc)) {
		t.Fatalf("EncodeOnce %x, Encode %x", once, Encode(doc))
	}
	// Plain JSON, as put by hand with the nats CLI, reads as is.
	if got, err := Decode(doc); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("plain JSON: %v", err)
	}
}

func TestDecode_CorruptIsNamed(t *testing.T) {
	enc := Encode([]byte(`{"a":1}`))
	for name, v := range map[string][]byte{
		"empty":     nil,
		"tag":       {0x7f, 1, 2},
		"truncated": enc[:len(enc)-3],
		"garbage":   append([]byte{formatZstd}, []byte("not zstd at all")...),
	} {
		if _, err := Decode(v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]byte(`{"os":{"id":"debian"}}`)))
	f.Add([]byte(`{"x":1}`))
	f.Add([]byte{formatZstd, 0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, v []byte) {
		out, err := Decode(v)
		if err == nil && len(out) > MaxDecoded {
			t.Fatalf("decoded %d bytes, over the bound", len(out))
		}
	})
}

// A peel's encoder is garbage once EncodeOnce returns: nothing of its
// tables (megabytes with the dictionary) stays on the heap.
func TestEncodeOnce_KeepsNothing(t *testing.T) {
	doc := []byte(`{"os":{"id":"debian","version_id":"12"},"kernel":"6.1.0-13-amd64"}`)
	EncodeOnce(doc) // package-level state, if any, is set up now
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := EncodeOnce(doc)
	peak := new(runtime.MemStats)
	runtime.ReadMemStats(peak)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 256<<10 {
		t.Fatalf("heap grew by %d bytes after EncodeOnce", grown)
	}
	if peak.TotalAlloc-before.TotalAlloc < 1<<20 {
		t.Fatalf("EncodeOnce allocated only %d bytes: the test no longer sees the encoder", peak.TotalAlloc-before.TotalAlloc)
	}
	if back, err := Decode(v); err != nil || !bytes.Equal(back, doc) {
		t.Fatalf("%s %v", back, err)
	}
}

// EncodeFast writes the format Encode writes: any reader decodes it.
func TestEncodeFast_SameFormat(t *testing.T) {
	doc := []byte(`{"os":{"id":"debian","version_id":"12"},"network":{"addresses":["10.0.0.1","10.0.0.2"]}}`)
	v := EncodeFast(doc)
	if v[0] != Encode(doc)[0] {
		t.Fatalf("tag %x, Encode's %x", v[0], Encode(doc)[0])
	}
	if got, err := Decode(v); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("%s %v", got, err)
	}
}
