package syncio

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Concurrent writers, each writing lines of its own letter: every line
// arrives whole (one letter, full length, none lost), and String may be read
// meanwhile; -race checks the locking.
func TestWriterAndBuffer_ConcurrentWritesStayWhole(t *testing.T) {
	var under bytes.Buffer
	var buf Buffer
	w := NewWriter(&under)
	var wg sync.WaitGroup
	for g := range 8 {
		line := []byte(strings.Repeat(string(rune('a'+g)), 100) + "\n")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				w.Write(line)
				buf.Write(line)
				_ = buf.String()
			}
		}()
	}
	wg.Wait()
	for name, got := range map[string]string{"Writer": under.String(), "Buffer": buf.String()} {
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 800 {
			t.Fatalf("%s: %d lines, want 800", name, len(lines))
		}
		for _, l := range lines {
			if len(l) != 100 || strings.Count(l, l[:1]) != 100 {
				t.Fatalf("%s: a line cut into another: %q", name, l)
			}
		}
	}
}
