package statetree

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dustin/go-humanize"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
)

// checkPack gets m's pack and checks it holds every content of m, each
// matching its digest.
func checkPack(ctx context.Context, nc *nats.Conn, m Manifest) error {
	b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreePackKey(m.Version))
	if errors.Is(err, peelproto.ErrKeyNotFound) {
		return fmt.Errorf("the pack its manifest names is missing")
	}
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	want := map[string]bool{}
	for _, e := range m.Files {
		want[e.Digest] = true
	}
	_, err = openPack(m, b, slices.Collect(maps.Keys(want)))
	return err
}

// Check checks the bucket's current tree as zester check does: its
// manifest, every content it names (present, matching its digest), and its
// pack when it names one (present, whole, every content right). It
// returns a one-line description of the tree, and every problem found; a
// bucket with no tree published is no problem. A master restarted over
// the bucket writes a missing or corrupt pack again; a missing content is
// written again by a rebuild of the bucket from states_dir.
func Check(ctx context.Context, nc *nats.Conn) (string, []error) {
	v, err := Current(ctx, nc)
	if err != nil {
		return "", []error{fmt.Errorf("state tree version: %w", err)}
	}
	if v == "" {
		return "no state tree published", nil
	}
	m, err := currentManifest(ctx, nc)
	if err != nil {
		return "", []error{fmt.Errorf("state tree %.12s: %w", v, err)}
	}
	var size int64
	var problems []error
	for _, path := range slices.Sorted(maps.Keys(m.Files)) {
		e := m.Files[path]
		size += e.Size
		c, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeFileKey(e.Digest))
		switch {
		case errors.Is(err, peelproto.ErrKeyNotFound):
			problems = append(problems, fmt.Errorf("state tree %.12s: %s: content %.12s is missing", v, path, e.Digest))
		case err != nil:
			problems = append(problems, fmt.Errorf("state tree %.12s: %s: %w", v, path, err))
		case digest(c) != e.Digest:
			problems = append(problems, fmt.Errorf("state tree %.12s: %s: content %.12s is corrupt", v, path, e.Digest))
		}
	}
	detail := fmt.Sprintf("tree %.12s: %d files, %s", v, len(m.Files), humanize.IBytes(uint64(size)))
	if m.Pack == nil {
		return detail + ", no pack (peels fetch it file by file)", problems
	}
	if err := checkPack(ctx, nc, m); err != nil {
		problems = append(problems, fmt.Errorf("state tree %.12s: %w", v, err))
	}
	return detail + ", pack " + humanize.IBytes(uint64(m.Pack.Size)), problems
}
