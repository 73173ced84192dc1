package peel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// spool holds returns that could not be stored while the peel was cut off,
// one file per return, so they survive a restart of the peel. It is bounded:
// when full, the oldest return is dropped and counted.
type spool struct {
	dir string
	max int

	mu      sync.Mutex
	dropped int
}

func openSpool(dir string, max int) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &spool{dir: dir, max: max}, nil
}

// put writes one return atomically (temp file, rename).
func (s *spool) put(name string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 {
		names, _ := s.listLocked()
		for len(names) >= s.max {
			os.Remove(filepath.Join(s.dir, names[0]))
			names = names[1:]
			s.dropped++
		}
	}
	tmp := filepath.Join(s.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.dir, name))
}

func (s *spool) listLocked() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".ret") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out) // names start with the jid, which sorts by time
	return out, nil
}

func (s *spool) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.listLocked()
	return n
}

func (s *spool) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, name))
}

func (s *spool) remove(name string) {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
}

func (s *spool) count() int { return len(s.list()) }
