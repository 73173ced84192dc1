package master

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/statetree"
)

// stateTreeDebounce is how long states_dir must be quiet after a change
// before the tree is published again.
const stateTreeDebounce = 300 * time.Millisecond

// startStateTree publishes states_dir to the state-tree bucket now and
// after every change under it, for the peels without a local tree
// (docs/states.md). A master without a states_dir publishes nothing.
func (m *Master) startStateTree(ctx context.Context) {
	dir := m.cfg.StatesDir
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("state tree not published: states_dir is not a directory", "states_dir", dir, "err", err)
		}
		return
	}
	pub := &statetree.Publisher{NC: m.nc, JS: m.js, Dir: dir}
	changed := make(chan struct{}, 1)
	changed <- struct{}{}
	go func() {
		// One publisher goroutine: Publish is not reentrant, and a burst
		// of changes during a publish is one more publish.
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.done:
				return
			case <-changed:
			}
			// Retry ends only with ctx; each failure is logged in it.
			_ = backoff.Retry(ctx, backoff.New(200*time.Millisecond, 30*time.Second), func(ctx context.Context) error {
				st, err := pub.Publish(ctx)
				if err == nil && (st.Manifest || st.Written > 0) {
					m.log.Info("state tree published", "version", st.Version, "files", st.Files, "written", st.Written, "bytes", st.WrittenBytes, "pack_bytes", st.PackBytes)
				}
				if err == nil && st.NoPack != "" {
					m.log.Warn("state tree published without a pack: cold peels fetch it file by file", "version", st.Version, "reason", st.NoPack)
				}
				if err != nil {
					m.log.Warn("state tree publish failed; retrying", "states_dir", dir, "err", err)
				}
				return err
			})
		}
	}()
	go func() {
		err := statetree.Watch(ctx, dir, stateTreeDebounce, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		if err != nil {
			m.log.Error("states_dir not watched: changes reach the peels at the next master start", "states_dir", dir, "err", err)
		}
	}()
}

// stateTreePin is the state-tree version a job of fn runs (wire.Job.StateTree):
// the bucket's current one for a state function, "" for any other or when
// no tree is published. A failed read leaves the job unpinned (its peels
// read the current version as they run) rather than refusing it.
func (m *Master) stateTreePin(ctx context.Context, fn string) string {
	if !statetree.Pinned(fn) {
		return ""
	}
	v, err := statetree.Current(ctx, m.nc)
	if err != nil {
		m.log.Warn("state tree version not read: the job is not pinned to one", "function", fn, "err", err)
	}
	return v
}
