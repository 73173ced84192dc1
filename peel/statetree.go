package peel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zester-io/zester/internal/statetree"
)

// stateTreePinKey carries a job's state-tree version (wire.Dispatch.StateTree)
// from runJob to stateTree through the function's context: the functions'
// Env is the same for every job.
type stateTreePinKey struct{}

func withStateTreePin(ctx context.Context, version string) context.Context {
	if version == "" {
		return ctx
	}
	return context.WithValue(ctx, stateTreePinKey{}, version)
}

// stateTree is funcs.Env.StateTree: it brings the masters' tree to
// <data_dir>/state-tree (only the contents this peel lacks) and records
// the version a run uses in <data_dir>/state-tree/version. A job's run
// uses the version the job was created with, so that one job runs one
// tree on every peel however the tree changes during it; a scheduled or
// unpinned run uses the current one.
func (p *Peel) stateTree(ctx context.Context) (string, string, error) {
	if p.nc == nil || !p.nc.IsConnected() {
		return "", "", errors.New("not connected to NATS")
	}
	base := filepath.Join(p.cfg.DataDir, "state-tree")
	pin, _ := ctx.Value(stateTreePinKey{}).(string)
	dir, st, err := statetree.FetchVersion(ctx, p.nc, statetree.DirCache(base), pin)
	if err != nil {
		return "", "", err
	}
	if st.PackRefused != nil {
		// The run goes on from per-file gets, each checked: the pack
		// is a shortcut, a bad one only costs gets.
		p.log.Warn("state tree pack refused", "version", st.Version, "err", st.PackRefused)
	}
	p.log.Debug("state tree fetched", "version", st.Version, "pinned", pin != "", "files", st.Files, "gets", st.Gets, "bytes", st.Bytes, "pack", st.Pack)
	if err := os.WriteFile(filepath.Join(base, "version"), []byte(st.Version+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("record the state tree version: %w", err)
	}
	return dir, st.Version, nil
}
