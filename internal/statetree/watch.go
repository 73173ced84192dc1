package statetree

import (
	"context"
	"time"

	"github.com/zester-io/zester/internal/fswatch"
)

// Watch calls changed after anything under dir changes, once per burst:
// when debounce has passed with no further event (an editor's save or a
// git checkout is many events). New directories are watched as they
// appear. It returns when ctx ends, or at once if dir cannot be watched.
// An overflow loses events: it counts as a change (a scan is cheap).
func Watch(ctx context.Context, dir string, debounce time.Duration, changed func()) error {
	return fswatch.Watch(ctx, dir, debounce, changed, nil)
}
