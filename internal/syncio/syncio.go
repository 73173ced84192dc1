// Package syncio holds the writers that goroutines share: a Writer that
// passes each Write on whole, never interleaved with another's (the CLI's
// concurrent batch slices print through one), and a Buffer that may be read
// while others write it (tests read a daemon's log or a command's output
// while it runs).
package syncio

import (
	"bytes"
	"io"
	"sync"
)

// Writer serialises writes to an io.Writer.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes p to the underlying writer with the lock held.
func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Locked runs f with the lock held, so that what f writes elsewhere (a
// progress line on another stream, say) does not cut into a Write.
func (l *Writer) Locked(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// Buffer is a bytes.Buffer whose String may be called while other
// goroutines Write. The zero value is an empty buffer.
type Buffer struct {
	lock Writer // only its lock: Buffer writes to b
	b    bytes.Buffer
}

// Write appends p to the buffer.
func (s *Buffer) Write(p []byte) (n int, err error) {
	s.lock.Locked(func() { n, err = s.b.Write(p) })
	return n, err
}

// String returns what was written so far.
func (s *Buffer) String() (out string) {
	s.lock.Locked(func() { out = s.b.String() })
	return out
}
