package settings

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/nacl/box"
	//lint:ignore SA1019 HSalsa20 is what box.Precompute applies to the X25519 output; calling it here saves box.Precompute's second scalar multiplication (x/crypto's X25519 derives the private key's public half on every call).
	"golang.org/x/crypto/salsa20/salsa"
)

// Sealer seals values to many peels from one sender key (the masters'
// curve key), keeping each peel's precomputed X25519 shared key, so that
// sealing again after a settings change costs a nonce and a secretbox
// (microseconds) instead of two scalar multiplications. Its tokens are the
// format Seal makes and Open opens: the sender field holds the sender's
// public key instead of a one-time key's, and the box is nkeys' xkv1 box,
// which the peel opens with nkeys' Open. A fresh random nonce per seal
// keeps one shared key safe for any number of boxes.
type Sealer struct {
	// priv is the sender's X25519 key, made once: box.Precompute would
	// derive its public key again for every peel (a second scalar
	// multiplication, half of a precompute's cost).
	priv   *ecdh.PrivateKey
	sender []byte // raw public key
	shared sync.Map
	keys   atomic.Int64 // entries of shared
}

// sealerShared is one peel's precomputed key and its key's fingerprint
// (in place: one object a peel for the collector, not two).
type sealerShared struct {
	key [32]byte
	fp  [fpLen]byte
}

// NewSealer makes a Sealer with the curve key pair kp as the sender.
func NewSealer(kp nkeys.KeyPair) (*Sealer, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	prefix, raw, err := nkeys.DecodeSeed(seed)
	if err != nil || prefix != nkeys.PrefixByteCurve || len(raw) != 32 {
		return nil, fmt.Errorf("sealer: not a curve seed")
	}
	pub, _ := kp.PublicKey()
	s := &Sealer{}
	if s.priv, err = ecdh.X25519().NewPrivateKey(raw); err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	if s.sender, err = nkeys.Decode(nkeys.PrefixByteCurve, []byte(pub)); err != nil {
		return nil, err
	}
	return s, nil
}

// Seal makes a token of plaintext for the curve public key pub.
func (s *Sealer) Seal(pub string, plaintext []byte) (string, error) {
	if len(plaintext) > MaxSecret {
		return "", fmt.Errorf("secret of %d bytes: at most %d", len(plaintext), MaxSecret)
	}
	sh, err := s.sharedFor(pub)
	if err != nil {
		return "", err
	}
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	payload := make([]byte, 0, fpLen+senderLen+len(nkeys.XKeyVersionV1)+24+len(plaintext)+box.Overhead)
	payload = append(append(payload, sh.fp[:]...), s.sender...)
	payload = append(append(payload, nkeys.XKeyVersionV1...), nonce[:]...)
	payload = box.SealAfterPrecomputation(payload, plaintext, &nonce, &sh.key)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(payload), nil
}

func (s *Sealer) sharedFor(pub string) (*sealerShared, error) {
	if v, ok := s.shared.Load(pub); ok {
		return v.(*sealerShared), nil
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteCurve, []byte(pub))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("curve public key %q: %w", pub, err)
	}
	sh := &sealerShared{}
	sum := sha256.Sum256(raw) // Fingerprint's, from the key decoded above
	copy(sh.fp[:], sum[:fpLen])
	peer, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("curve public key %q: %w", pub, err)
	}
	// box.Precompute's key, with one X25519 multiplication per peel (kept
	// for its next seals): box.Precompute goes through curve25519.X25519,
	// which makes an ecdh.PrivateKey of the sender's scalar on every call,
	// a base-point multiplication as costly as the exchange itself. The
	// sender's key was made once in NewSealer. ECDH fails on a low-order
	// point (an all-zero shared secret), which box.Precompute would accept.
	dh, err := s.priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("curve public key %q: %w", pub, err)
	}
	var zeros [16]byte
	salsa.HSalsa20(&sh.key, &zeros, (*[32]byte)(dh), &salsa.Sigma)
	if v, loaded := s.shared.LoadOrStore(pub, sh); loaded {
		return v.(*sealerShared), nil // made at the same time by another caller
	}
	s.keys.Add(1)
	return sh, nil
}

// Warm precomputes the shared key of pub ahead of its first seal (a master
// does this for its peels while idle after start, so that the first
// settings change after a restart costs what later ones cost).
func (s *Sealer) Warm(pub string) error {
	_, err := s.sharedFor(pub)
	return err
}

// Has reports whether pub's shared key is precomputed.
func (s *Sealer) Has(pub string) bool {
	_, ok := s.shared.Load(pub)
	return ok
}

// Len is the number of precomputed shared keys.
func (s *Sealer) Len() int { return int(s.keys.Load()) }

// Forget drops a peel's precomputed key (its curve key changed, or it
// left this master's partitions).
func (s *Sealer) Forget(pub string) {
	if _, ok := s.shared.LoadAndDelete(pub); ok {
		s.keys.Add(-1)
	}
}

// SealValuesJSON is SealValues of the values given as ValuesJSON (id is
// theirs, for the error).
func (s *Sealer) SealValuesJSON(peelCurve, id string, valuesJSON []byte) (string, error) {
	tok, err := s.Seal(peelCurve, valuesJSON)
	if err != nil {
		return "", fmt.Errorf("seal the secrets of %s: %w", id, err)
	}
	return tok, nil
}

// SealValues is the package's SealValues with this sealer.
func (s *Sealer) SealValues(peelCurve string, v *Values) (string, error) {
	return sealValuesWith(s.Seal, peelCurve, v)
}
