// Package factcodec encodes fact documents for the facts bucket: JSON,
// compressed with zstd and a raw dictionary of representative fact documents,
// behind a one-byte format tag so the encoding can change without breaking
// older readers.
//
// Dictionaries are immutable and versioned: dict/facts-v<N>.json is compiled
// into every peel and master; the zstd frame carries the dictionary id, so a
// reader knows every version it was built with, and a value made with a
// dictionary it does not know is reported as such. Encode always uses the
// newest.
package factcodec

import (
	_ "embed"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Format tags.
const (
	formatZstd     byte = 0x01 // zstd, no dictionary (kept readable forever)
	formatZstdDict byte = 0x02 // zstd with a raw dictionary; its id is in the frame
)

// dictV1 is nine representative fact documents (eight generated in the shape
// of peel/facts across OS families, one collected from a real host).
//
//go:embed dict/facts-v1.json
var dictV1 []byte

const dictV1ID = 1

// MaxDecoded bounds a decoded fact document, so a corrupt or hostile value
// cannot make a reader allocate without limit.
const MaxDecoded = 8 << 20

var (
	encOnce, fastOnce, decOnce sync.Once
	enc, fastEnc               *zstd.Encoder
	dec                        *zstd.Decoder
)

// encoderWindow bounds how far back a match may reach. Fact documents are
// a few KiB to some tens of KiB, so 128 KiB loses nothing against the
// level's default of 8 MiB, and each encoder's history buffer shrinks by as
// much (the frame records the window; readers need no change).
const encoderWindow = 128 << 10

func newEncoder(concurrency int) *zstd.Encoder {
	return newEncoderLevel(zstd.SpeedBetterCompression, concurrency)
}

func newEncoderLevel(level zstd.EncoderLevel, concurrency int) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithWindowSize(encoderWindow),
		zstd.WithEncoderConcurrency(concurrency), zstd.WithEncoderDictRaw(dictV1ID, dictV1))
	if err != nil {
		panic(err)
	}
	return e
}

func setupDecoder() {
	decOnce.Do(func() {
		var err error
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDecoded),
			zstd.WithDecoderDictRaw(dictV1ID, dictV1))
		if err != nil {
			panic(err)
		}
	})
}

// Encode compresses a JSON fact document with an encoder kept for the
// process (one per CPU), for callers that encode often (load generators,
// the CLI over a fleet).
func Encode(doc []byte) []byte {
	encOnce.Do(func() { enc = newEncoder(runtime.GOMAXPROCS(0)) })
	return encodeWith(enc, doc)
}

// EncodeFast is Encode at zstd's fastest level, for a load generator that
// encodes a whole simulated fleet's documents: the same format, tag and
// dictionary (every reader decodes it as Encode's), values about 10 %
// larger (ratio ~7.8× against ~8.6× on internal/factgen's documents), and
// about 8× cheaper. Encode's level resets the encoder's dictionary tables
// (a 4 MiB long-match table copied per EncodeAll, klauspost/compress
// betterFastEncoderDict.Reset: ~250 µs a document, half of it memmove); the
// fastest level's table is 256 KiB (~30 µs a document). BenchmarkEncode*
// in bench_test.go measure both beside zstd without a dictionary.
func EncodeFast(doc []byte) []byte {
	fastOnce.Do(func() { fastEnc = newEncoderLevel(zstd.SpeedFastest, runtime.GOMAXPROCS(0)) })
	return encodeWith(fastEnc, doc)
}

// EncodeOnce is Encode with an encoder made for this call and dropped
// after it, for a process that encodes now and then (the peel, once per
// facts interval): the encoder's tables (about 8 MiB with the dictionary)
// are garbage once it returns instead of resident for the process's life.
// The output is the same format and size as Encode's.
func EncodeOnce(doc []byte) []byte {
	e := newEncoder(1)
	defer e.Close()
	return encodeWith(e, doc)
}

func encodeWith(e *zstd.Encoder, doc []byte) []byte {
	out := make([]byte, 1, len(doc)/6+16)
	out[0] = formatZstdDict
	return e.EncodeAll(doc, out)
}

// ErrCorrupt is returned for values that are not a fact document.
var ErrCorrupt = errors.New("corrupt fact value")

// Decode returns the JSON fact document of an encoded value.
func Decode(v []byte) ([]byte, error) { return DecodeAppend(nil, v) }

// DecodeAppend is Decode appending the document to dst (a buffer the
// caller reuses); a plain JSON value is returned as it is, not copied.
func DecodeAppend(dst, v []byte) ([]byte, error) {
	setupDecoder()
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	switch v[0] {
	case formatZstd, formatZstdDict:
		out, err := dec.DecodeAll(v[1:], dst)
		if err != nil {
			if errors.Is(err, zstd.ErrUnknownDictionary) {
				return nil, fmt.Errorf("%w: made with a fact dictionary this build does not have (a newer peel?): %v", ErrCorrupt, err)
			}
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return out, nil
	case '{':
		// Plain JSON, as an operator might `nats kv put` by hand.
		return v, nil
	default:
		return nil, fmt.Errorf("%w: unknown format tag 0x%02x", ErrCorrupt, v[0])
	}
}
