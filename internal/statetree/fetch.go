package statetree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
)

// FetchStats says what one Fetch moved.
type FetchStats struct {
	Version string
	Files   int   // files in the tree
	Gets    int   // direct gets: the manifest and each content fetched
	Bytes   int64 // payload bytes of those gets (manifest and contents)
}

// Fetch brings the bucket's current tree to dir (a peel's
// <data_dir>/state-tree): contents it lacks into dir/content/<digest>,
// each checked against its digest, then the tree itself into
// dir/trees/<version>, read-only, which it returns. Every content is in
// hand before the tree is written, so a missing or corrupt content fails
// the fetch, naming the path, and nothing runs from it. A version already
// materialised is reused.
func Fetch(ctx context.Context, nc *nats.Conn, dir string) (string, FetchStats, error) {
	v, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeVersionKey)
	if errors.Is(err, peelproto.ErrKeyNotFound) {
		return "", FetchStats{}, errors.New("the masters have published no state tree (master.yaml states_dir)")
	}
	if err != nil {
		return "", FetchStats{}, err
	}
	st := FetchStats{Version: string(v), Gets: 1, Bytes: int64(len(v))}
	if len(v) != 64 || strings.Trim(string(v), hexDigits) != "" {
		return "", st, fmt.Errorf("state tree version %q: not a sha256", v)
	}
	tree := filepath.Join(dir, "trees", st.Version)
	if _, err := os.Stat(tree); err == nil {
		return tree, st, nil // materialised whole (renamed into place)
	}
	b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeManifestKey(st.Version))
	st.Gets++
	if err != nil {
		return "", st, fmt.Errorf("state tree %.12s: manifest: %w", st.Version, err)
	}
	st.Bytes += int64(len(b))
	m, err := parseManifest(b)
	if err == nil && m.Version != st.Version {
		err = fmt.Errorf("state tree manifest %.12s: holds version %.12s", st.Version, m.Version)
	}
	if err != nil {
		return "", st, err
	}
	st.Files = len(m.Files)
	cache := filepath.Join(dir, "content")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", st, fmt.Errorf("state tree cache: %w", err)
	}
	paths := slices.Sorted(maps.Keys(m.Files))
	for _, path := range paths {
		e := m.Files[path]
		cached := filepath.Join(cache, e.Digest)
		if _, err := os.Stat(cached); err == nil {
			continue
		}
		c, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeFileKey(e.Digest))
		st.Gets++
		switch {
		case errors.Is(err, peelproto.ErrKeyNotFound):
			return "", st, fmt.Errorf("state tree %s: %s: content %s is missing from the %s bucket; nothing ran", m.Version[:12], path, e.Digest[:12], names.BucketStateTree)
		case err != nil:
			return "", st, fmt.Errorf("state tree %s: %s: %w", m.Version[:12], path, err)
		}
		st.Bytes += int64(len(c))
		if got := digest(c); got != e.Digest {
			return "", st, fmt.Errorf("state tree %s: %s: content %s is corrupt (its sha256 is %s); nothing ran", m.Version[:12], path, e.Digest[:12], got[:12])
		}
		if err := writeAtomic(cached, c, 0o400); err != nil {
			return "", st, fmt.Errorf("state tree cache: %w", err)
		}
	}
	if err := materialise(cache, tree, m, paths); err != nil {
		return "", st, fmt.Errorf("state tree %s: %w", m.Version[:12], err)
	}
	return tree, st, nil
}

// materialise writes the tree to a temporary directory and renames it to
// tree, so a tree directory is always whole; files are 0444 and
// directories 0555: a run reads the tree, never writes it.
func materialise(cache, tree string, m Manifest, paths []string) error {
	if err := os.MkdirAll(filepath.Dir(tree), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(tree), ".tmp-")
	if err == nil {
		err = func() error {
			for _, path := range paths {
				b, err := os.ReadFile(filepath.Join(cache, m.Files[path].Digest))
				if err != nil {
					return err
				}
				dst := filepath.Join(tmp, filepath.FromSlash(path))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(dst, b, 0o444); err != nil {
					return err
				}
			}
			return filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					err = os.Chmod(p, 0o555)
				}
				return err
			})
		}()
	}
	if err == nil {
		err = os.Rename(tmp, tree)
		if _, serr := os.Stat(tree); err != nil && serr == nil {
			err = nil // another run materialised the same version first
		}
	}
	if err != nil && tmp != "" {
		removeTree(tmp)
	}
	return err
}

// removeTree removes a read-only tree.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
