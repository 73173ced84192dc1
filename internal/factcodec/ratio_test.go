package factcodec_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/factgen"
)

// Fact documents not in the dictionary shrink at least 8× (internal/factgen's
// generated documents, varied per peel: addresses, MACs, serials, packages).
func TestEncode_RatioOnUnseenDocuments(t *testing.T) {
	var raw, enc int
	now := time.Now()
	for i := 100; i < 400; i++ {
		doc := factgen.JSON(i, peelID(i), now)
		v := factcodec.Encode(doc)
		back, err := factcodec.Decode(v)
		if err != nil || !bytes.Equal(back, doc) {
			t.Fatalf("doc %d does not round-trip: %v", i, err)
		}
		raw += len(doc)
		enc += len(v)
	}
	ratio := float64(raw) / float64(enc)
	t.Logf("300 documents: %d bytes of JSON → %d encoded: %.1f×", raw, enc, ratio)
	if ratio < 8 {
		t.Fatalf("compression %.1f×, want at least 8×", ratio)
	}
}

// Values written by older peels (zstd without a dictionary, tag 0x01) stay
// readable.
func TestDecode_OldFormat(t *testing.T) {
	doc := []byte(`{"os":{"id":"debian"}}`)
	e, _ := zstd.NewWriter(nil)
	old := append([]byte{0x01}, e.EncodeAll(doc, nil)...)
	got, err := factcodec.Decode(old)
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("%s %v", got, err)
	}
}

func peelID(i int) string { return fmt.Sprintf("sim-%06d.dc1.example.com", i) }

func BenchmarkEncode(b *testing.B) {
	doc := factgen.JSON(4711, peelID(4711), time.Now())
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		factcodec.Encode(doc)
	}
}

func BenchmarkDecode(b *testing.B) {
	v := factcodec.Encode(factgen.JSON(4711, peelID(4711), time.Now()))
	for b.Loop() {
		factcodec.Decode(v)
	}
}
