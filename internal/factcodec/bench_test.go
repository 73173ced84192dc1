package factcodec_test

import (
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/factgen"
)

// benchDocs are distinct peels' documents, as a fleet encodes them (one
// document over and over would flatter an encoder that keeps history).
func benchDocs() [][]byte {
	now := time.Now()
	docs := make([][]byte, 64)
	for i := range docs {
		docs[i] = factgen.JSON(4711+i, peelID(4711+i), now)
	}
	return docs
}

func benchEncode(b *testing.B, enc func([]byte) []byte) {
	docs := benchDocs()
	var raw, out int64
	k := 0
	for b.Loop() {
		d := docs[k%len(docs)]
		k++
		raw += int64(len(d))
		out += int64(len(enc(d)))
	}
	b.ReportMetric(float64(raw)/float64(out), "ratio")
}

func BenchmarkEncodeDocs(b *testing.B) { benchEncode(b, factcodec.Encode) }

func BenchmarkEncodeFast(b *testing.B) { benchEncode(b, factcodec.EncodeFast) }

func BenchmarkEncodeOnce(b *testing.B) { benchEncode(b, factcodec.EncodeOnce) }

// BenchmarkEncodeRawNoDict is the baseline: the same level without the
// dictionary.
func BenchmarkEncodeRawNoDict(b *testing.B) {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(128<<10), zstd.WithEncoderConcurrency(1))
	benchEncode(b, func(d []byte) []byte { return e.EncodeAll(d, nil) })
}

func BenchmarkEncodeLevels(b *testing.B) {
	dict := factcodec.DictV1ForTest()
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		b.Run(lv.String(), func(b *testing.B) {
			e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithWindowSize(128<<10), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDictRaw(1, dict))
			benchEncode(b, func(d []byte) []byte { return e.EncodeAll(d, nil) })
		})
	}
}

func BenchmarkFactgenJSON(b *testing.B) {
	now := time.Now()
	k := 0
	for b.Loop() {
		factgen.JSON(k, peelID(k), now)
		k++
	}
}
