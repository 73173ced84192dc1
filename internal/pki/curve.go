package pki

import (
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// LoadMasterCurve reads the masters' curve key (master.xk) from a PKI
// directory alone, without the rest of the PKI: what zester secrets and
// zester settings render --reveal need on an operator's machine. The file
// must not be readable by every local user.
func LoadMasterCurve(dir string) (nkeys.KeyPair, error) {
	return readSeed(dir, FileMasterCurve, nkeys.PrefixByteCurve)
}

// ReadCurveSeed reads a curve seed file (as master.xk), with the same
// checks.
func ReadCurveSeed(path string) (nkeys.KeyPair, error) {
	return readSeed(filepath.Dir(path), filepath.Base(path), nkeys.PrefixByteCurve)
}

// CreateCurveSeed writes a new curve seed to path (0600, never over an
// existing file) and returns its public key: the next masters' key for
// zester secrets rotate-key.
func CreateCurveSeed(path string) (string, error) {
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	if err := writeNew(path, append(seed, '\n')); err != nil {
		return "", err
	}
	return kp.PublicKey()
}
