// Package atomicfile replaces a file so that a reader, or the next start
// after a crash, sees either the old content or the new, never a torn file:
// a temporary file in the same directory is written, synced and renamed over
// the old one, and the directory is synced so the rename itself is durable.
// The PKI, the settings key rotation and the peel's credentials and seen-jobs
// set all rely on it.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data, with permissions mode.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
