// Package factcodec encodes fact documents for the facts bucket: JSON,
// compressed with zstd, behind a one-byte format tag so the encoding can
// change without breaking older readers.
package factcodec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Format tags.
const (
	formatZstd byte = 0x01
)

// MaxDecoded bounds a decoded fact document, so a corrupt or hostile value
// cannot make a reader allocate without limit.
const MaxDecoded = 8 << 20

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	dec     *zstd.Decoder
)

func setup() {
	encOnce.Do(func() {
		var err error
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDecoded))
		if err != nil {
			panic(err)
		}
	})
}

// Encode compresses a JSON fact document.
func Encode(doc []byte) []byte {
	setup()
	out := make([]byte, 1, len(doc)/3+16)
	out[0] = formatZstd
	return enc.EncodeAll(doc, out)
}

// ErrCorrupt is returned for values that are not a fact document.
var ErrCorrupt = errors.New("corrupt fact value")

// Decode returns the JSON fact document of an encoded value.
func Decode(v []byte) ([]byte, error) {
	setup()
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	switch v[0] {
	case formatZstd:
		out, err := dec.DecodeAll(v[1:], nil)
		if err != nil {
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
