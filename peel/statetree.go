package peel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zester-io/zester/internal/statetree"
)

// stateTree is funcs.Env.StateTree: it brings the masters' current tree to
// <data_dir>/state-tree (only the contents this peel lacks) and records
// the version a run uses in <data_dir>/state-tree/version.
func (p *Peel) stateTree(ctx context.Context) (string, string, error) {
	if p.nc == nil || !p.nc.IsConnected() {
		return "", "", errors.New("not connected to NATS")
	}
	base := filepath.Join(p.cfg.DataDir, "state-tree")
	dir, st, err := statetree.Fetch(ctx, p.nc, base)
	if err != nil {
		return "", "", err
	}
	p.log.Debug("state tree fetched", "version", st.Version, "files", st.Files, "gets", st.Gets, "bytes", st.Bytes)
	if err := os.WriteFile(filepath.Join(base, "version"), []byte(st.Version+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("record the state tree version: %w", err)
	}
	return dir, st.Version, nil
}
