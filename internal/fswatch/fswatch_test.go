package fswatch_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/fswatch"
)

// Writes under the directory call back; so does a file in a directory made
// after the watch started; a missing directory is an error at once.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 64)
	ended := make(chan error, 1)
	go func() {
		ended <- fswatch.Watch(ctx, dir, 50*time.Millisecond, func() { calls <- struct{}{} }, nil)
	}()
	// Until a call comes, write again: the watch may not be set up yet.
	seen := func(what string, write func()) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			write()
			select {
			case <-calls:
				return
			case err := <-ended:
				t.Fatalf("%s: the watch ended: %v", what, err)
			case <-deadline:
				t.Fatalf("%s: no call", what)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	seen("a file written", func() { os.WriteFile(filepath.Join(dir, "a.zy"), []byte("x"), 0o644) })
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The directory's own call, and any left from the writes above, so
	// that the next call is the new file's (a short drain can only make
	// this check weaker, never fail it).
	for quiet := false; !quiet; {
		select {
		case <-calls:
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	seen("a file in a new directory", func() { os.WriteFile(filepath.Join(dir, "sub", "b.zy"), []byte("x"), 0o644) })
	if err := fswatch.Watch(ctx, filepath.Join(dir, "missing"), time.Millisecond, func() {}, nil); err == nil {
		t.Error("a missing directory: no error")
	}
}
