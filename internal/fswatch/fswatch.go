// Package fswatch calls back once per burst of changes under a directory
// tree: the settings_dir and state_dir watchers of the masters.
package fswatch

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed after anything under dir changes, once per burst:
// when debounce has passed with no further event (an editor's save is a
// write, a rename and a chmod; a git checkout is many files). Directories
// whose names start with a dot (.git) are not watched; new directories are
// watched as they appear. A watch error (the kernel's queue overflowed:
// events lost) goes to onErr when it is not nil and counts as a change. It
// blocks until ctx ends, and returns at once with the error when dir cannot
// be watched.
func Watch(ctx context.Context, dir string, debounce time.Duration, changed func(), onErr func(error)) error {
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
	defer timer.Stop()
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
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if onErr != nil {
				onErr(err)
			}
			timer.Reset(debounce)
		case <-timer.C:
			changed()
		}
	}
}
