package pki

import (
	"crypto/ed25519"

	"github.com/nats-io/nkeys"
)

// fastSigner is an nkeys.KeyPair whose Sign and PublicKey use an ed25519
// key derived once: nkeys derives it from the seed on every call of either,
// which costs about as much as the signature itself, and jwt calls both for
// every JWT a master signs (one per enrolled peel and per renewal;
// BenchmarkIssuePeel).
type fastSigner struct {
	nkeys.KeyPair
	priv ed25519.PrivateKey
	pub  string
}

// newFastSigner wraps kp; a key pair whose seed cannot be read (none here)
// is returned as it is.
func newFastSigner(kp nkeys.KeyPair) nkeys.KeyPair {
	seed, err := kp.Seed()
	if err != nil {
		return kp
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return kp
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return kp
	}
	return &fastSigner{KeyPair: kp, priv: ed25519.NewKeyFromSeed(raw), pub: pub}
}

func (f *fastSigner) PublicKey() (string, error) { return f.pub, nil }

func (f *fastSigner) Sign(input []byte) ([]byte, error) { return ed25519.Sign(f.priv, input), nil }

func (f *fastSigner) Wipe() {
	clear(f.priv)
	f.KeyPair.Wipe()
}
