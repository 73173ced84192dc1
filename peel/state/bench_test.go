package state_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/peel/state"
)

// benchTree writes a state tree of n file.managed states spread over
// files .sls files (plus top.sls) and returns its directory.
func benchTree(b *testing.B, n, files int) string {
	dir := b.TempDir()
	var top strings.Builder
	top.WriteString("base:\n  '*':\n")
	per := n / files
	for f := 0; f < files; f++ {
		var s strings.Builder
		for i := f * per; i < (f+1)*per; i++ {
			fmt.Fprintf(&s, "conf %d:\n  file.managed:\n    - name: /etc/bench/%d/f%d.conf\n    - contents: \"state {{ .id }} %d\"\n    - mode: \"0644\"\n    - makedirs: true\n", i, f, i, i)
			if i > f*per {
				fmt.Fprintf(&s, "    - require:\n      - file: conf %d\n", i-1)
			}
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d.sls", f)), []byte(s.String()), 0o644)
		fmt.Fprintf(&top, "    - s%d\n", f)
	}
	os.WriteFile(filepath.Join(dir, "top.sls"), []byte(top.String()), 0o644)
	return dir
}

// BenchmarkHighstate500 compiles and applies a 500-state highstate of
// file.managed into a temporary root: compile only, first apply (every
// file written), second apply (nothing to do), against writing the same
// 500 files with os.WriteFile; for trees of 1, 50 and 500 .sls files.
func BenchmarkHighstate500(b *testing.B) {
	const n = 500
	ctx := context.Background()
	for _, files := range []int{1, 50, 500} {
		dir := benchTree(b, n, files)
		fsys := os.DirFS(dir)
		opt := state.Options{ID: "bench1", Facts: peelFacts}
		b.Run(fmt.Sprintf("files=%d/compile", files), func(b *testing.B) {
			for b.Loop() {
				if _, err := state.CompileHighstate(ctx, fsys, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("files=%d/compile+apply-first", files), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				b.StartTimer()
				p, err := state.CompileHighstate(ctx, fsys, opt)
				if err != nil {
					b.Fatal(err)
				}
				if r := p.Apply(ctx, state.RunOptions{Options: opt, Root: root, Tree: fsys}); r.Failed() || len(r) != n {
					b.Fatalf("%d results, failed %v", len(r), r.Failed())
				}
			}
		})
		b.Run(fmt.Sprintf("files=%d/compile+apply-second", files), func(b *testing.B) {
			root := b.TempDir()
			p, _ := state.CompileHighstate(ctx, fsys, opt)
			p.Apply(ctx, state.RunOptions{Options: opt, Root: root, Tree: fsys})
			for b.Loop() {
				p, err := state.CompileHighstate(ctx, fsys, opt)
				if err != nil {
					b.Fatal(err)
				}
				if r := p.Apply(ctx, state.RunOptions{Options: opt, Root: root, Tree: fsys}); r.Summarize().Changed != 0 {
					b.Fatal("second apply changed something")
				}
			}
		})
	}
	// Baselines: the same files with os.WriteFile, and written as
	// file.managed writes them (temporary file, fsync, rename: durable
	// across a crash).
	raw := map[string]func(path string, data []byte) error{
		"raw-os.WriteFile": func(path string, data []byte) error { return os.WriteFile(path, data, 0o644) },
		"raw-atomic-fsync": func(path string, data []byte) error {
			f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
			if err != nil {
				return err
			}
			f.Write(data)
			f.Sync()
			f.Close()
			return os.Rename(f.Name(), path)
		},
	}
	for _, name := range []string{"raw-os.WriteFile", "raw-atomic-fsync"} {
		write := raw[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				b.StartTimer()
				for i := 0; i < n; i++ {
					d := filepath.Join(root, "etc/bench", fmt.Sprint(i/10))
					os.MkdirAll(d, 0o755)
					if err := write(filepath.Join(d, fmt.Sprintf("f%d.conf", i)), []byte(fmt.Sprintf("state bench1 %d\n", i))); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
