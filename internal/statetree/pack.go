package statetree

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A pack is every content of one tree version in one value, so that a
// cold peel fetches a tree in two gets (the manifest and the pack) rather
// than one get per file. Its layout, before zstd compression:
//
//	"zpk1" then, per content in digest order:
//	32 bytes: the content's SHA-256 | uvarint: its length | its bytes
//
// The manifest names the pack's SHA-256 and size (PackInfo): a peel checks
// the value it got against that digest before decompressing it, and each
// content against its own digest and the manifest's, so a corrupt or
// forged pack is refused whole and nothing of it is cached.

// packMagic starts every decompressed pack.
const packMagic = "zpk1"

// MaxPackDecoded bounds a pack's decompressed size: a publisher makes no
// pack of a larger tree, and a decoder refuses a pack that inflates past
// it (a compression bomb), whatever its manifest says.
const MaxPackDecoded = 64 << 20

// PackInfo is a manifest's note of its version's pack.
type PackInfo struct {
	Digest string `json:"sha256"` // of the pack value as stored (compressed)
	Size   int64  `json:"size"`
}

var (
	zenc = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			panic(err) // only bad options fail
		}
		return e
	})
	// zdec is shared: DecodeAll is safe for concurrent use (the simulated
	// fleet decodes for thousands of peels in one process).
	zdec = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxPackDecoded))
		if err != nil {
			panic(err) // only bad options fail
		}
		return d
	})
)

// encodePack packs content (digest → bytes), compressed.
func encodePack(content map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(packMagic)
	var n [binary.MaxVarintLen64]byte
	for _, d := range slices.Sorted(maps.Keys(content)) {
		raw, err := hex.DecodeString(d)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("state tree pack: bad digest %q", d)
		}
		buf.Write(raw)
		buf.Write(n[:binary.PutUvarint(n[:], uint64(len(content[d])))])
		buf.Write(content[d])
	}
	if buf.Len() > MaxPackDecoded {
		return nil, fmt.Errorf("state tree pack: %d bytes, over the %d a pack may hold", buf.Len(), MaxPackDecoded)
	}
	return zenc().EncodeAll(buf.Bytes(), nil), nil
}

// errPack is wrapped by every refusal of a pack.
var errPack = errors.New("state tree pack refused")

// decodePack decompresses and splits a pack into its contents by hex
// digest, checking each against its digest. A pack that does not
// decompress, is truncated, names a content twice or holds a content whose
// SHA-256 is not the one it is stored under is refused.
func decodePack(b []byte) (map[string][]byte, error) {
	raw, err := zdec().DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: does not decompress: %w", errPack, err)
	}
	if !bytes.HasPrefix(raw, []byte(packMagic)) {
		return nil, fmt.Errorf("%w: not a pack (no %q header)", errPack, packMagic)
	}
	raw = raw[len(packMagic):]
	out := map[string][]byte{}
	for len(raw) > 0 {
		if len(raw) < sha256.Size {
			return nil, fmt.Errorf("%w: truncated after %d contents", errPack, len(out))
		}
		d := hex.EncodeToString(raw[:sha256.Size])
		raw = raw[sha256.Size:]
		size, n := binary.Uvarint(raw)
		if n <= 0 || size > uint64(len(raw)-n) {
			return nil, fmt.Errorf("%w: content %.12s: truncated", errPack, d)
		}
		c := raw[n : n+int(size) : n+int(size)]
		raw = raw[n+int(size):]
		if _, dup := out[d]; dup {
			return nil, fmt.Errorf("%w: content %.12s twice", errPack, d)
		}
		if got := digest(c); got != d {
			return nil, fmt.Errorf("%w: content %.12s is corrupt (its sha256 is %.12s)", errPack, d, got)
		}
		out[d] = c
	}
	return out, nil
}

// openPack checks a pack value got for m against m.Pack and returns the
// contents of want (digests m names), all of them or an error: a pack
// missing one of them is refused whole.
func openPack(m Manifest, b []byte, want []string) (map[string][]byte, error) {
	if got := digest(b); int64(len(b)) != m.Pack.Size || got != m.Pack.Digest {
		return nil, fmt.Errorf("%w: %d bytes with sha256 %.12s, the manifest says %d bytes with sha256 %.12s", errPack, len(b), got, m.Pack.Size, m.Pack.Digest)
	}
	all, err := decodePack(b)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(want))
	for _, d := range want {
		c, ok := all[d]
		if !ok {
			return nil, fmt.Errorf("%w: content %.12s of the manifest is not in it", errPack, d)
		}
		out[d] = c
	}
	return out, nil
}
