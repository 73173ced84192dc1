package statetree

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed after anything under dir changes, once per burst:
// when debounce has passed with no further event (an editor's save or a
// git checkout is many events). New directories are watched as they
// appear. It returns when ctx ends, or at once if dir cannot be watched.
func Watch(ctx context.Context, dir string, debounce time.Duration, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	add := func(root string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return w.Add(p)
		})
	}
	if err := add(dir); err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				_ = add(ev.Name) // not a directory, or gone again: nothing to watch
			}
			timer.Reset(debounce)
		case <-w.Errors:
			// An overflow loses events: publish anyway, a scan is cheap.
			timer.Reset(debounce)
		case <-timer.C:
			changed()
		}
	}
}
