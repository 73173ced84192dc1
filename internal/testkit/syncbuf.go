package testkit

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a test reads while another goroutine (a
// CLI run, a daemon's logger, a child process) writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
