package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
)

// DirPeels holds the public JWT of every peel pre-provisioned with AddPeel
// (the inventory for revocation).
const DirPeels = "peels"

// Partitions is the partition count baked into the account JWT's peel
// mapping (InitOptions.Partitions). Peel permissions name the partition, so
// credentials issued for another count would not work.
func (p *PKI) Partitions() (int, error) {
	ac, _ := p.Account()
	src, _ := names.PartitionMapping(1)
	for _, wm := range ac.Mappings[jwt.Subject(src)] {
		_, rest, ok := strings.Cut(string(wm.Subject), "{{partition(")
		if !ok {
			continue
		}
		num, _, ok := strings.Cut(rest, ",")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		if _, dst := names.PartitionMapping(n); dst == string(wm.Subject) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("pki: %s: no peel partition mapping for %s", filepath.Join(p.Dir, FileAccountJWT), src)
}

// AddPeel pre-provisions a peel: a new nkey and a user JWT with
// PeelPermissions for id (partitions from the account JWT), valid for expiry
// (0: forever). It returns the credentials file content, for peel.yaml
// nats.creds on that host, and records the public JWT in DIR/peels/ID.jwt; a
// second peel of the same id is refused (revoke the first and remove its
// file to reissue). This is for hosts provisioned ahead of time; enrollment
// issues the same JWT to peels that ask.
func (p *PKI) AddPeel(id string, expiry time.Duration) ([]byte, error) {
	if err := names.ValidateID(id); err != nil {
		return nil, fmt.Errorf("peel: %w", err)
	}
	n, err := p.Partitions()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(p.Dir, DirPeels)
	rec := filepath.Join(dir, id+".jwt")
	if _, err := os.Lstat(rec); err == nil {
		return nil, fmt.Errorf("peel %s: %s exists: credentials for this id were issued already (revoke them and remove the file to reissue)", id, rec)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("peel %s: %w", id, err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("peel %s: %w", id, err)
	}
	pub, _ := kp.PublicKey()
	tok, err := p.IssuePeel(PeelSpec{ID: id, Partitions: n}, pub, expiry)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, fmt.Errorf("peel %s: %w", id, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("peel %s: %w", id, err)
	}
	if err := writeNew(rec, []byte(tok+"\n")); err != nil {
		return nil, fmt.Errorf("peel %s: %w", id, err)
	}
	return creds, nil
}
