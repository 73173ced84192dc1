package peel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zester-io/zester/internal/atomicfile"
)

// seenSet is the set of job ids this peel has accepted, each kept until its
// deadline, in memory and in a file of data_dir. A job id is written (and
// synced) before the job runs, so a dispatch replayed after the peel
// restarted is refused as well as one replayed while it runs: a signed
// dispatch can run at most once, whoever sends it again.
//
// The file is append-only, one "<jid> <deadline in Unix nanoseconds>" line a
// job; it is rewritten without the expired lines at start and whenever it
// has grown to twice the entries live at the last rewrite (at least
// seenCompactMin lines), so its size stays proportional to the live jobs.
type seenSet struct {
	path string

	mu    sync.Mutex
	f     *os.File
	live  map[string]time.Time // jid → deadline
	lines int
	// next is the line count at which the file is rewritten.
	next int
}

// seenFile is the set's file name in data_dir.
const seenFile = "seen-jobs"

// seenCompactMin is the least number of lines before a rewrite.
const seenCompactMin = 1024

func openSeen(dir string, now time.Time) (*seenSet, error) {
	s := &seenSet{path: filepath.Join(dir, seenFile), live: map[string]time.Time{}}
	f, err := os.Open(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("seen jobs: %w", err)
	default:
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			jid, dl, ok := strings.Cut(sc.Text(), " ")
			ns, err := strconv.ParseInt(dl, 10, 64)
			if !ok || err != nil || jid == "" {
				// A torn last line (the peel died while writing it):
				// that job never started.
				continue
			}
			if d := time.Unix(0, ns); d.After(now) {
				s.live[jid] = d
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("seen jobs: %s: %w", s.path, err)
		}
	}
	if err := s.rewriteLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// add records jid until deadline. It reports false when jid is in the set
// already. The entry is on disk when add returns true; when it cannot be
// written the job must not run (err).
func (s *seenSet) add(jid string, deadline, now time.Time) (bool, error) {
	if jid == "" || strings.ContainsAny(jid, " \t\r\n") {
		return false, fmt.Errorf("seen jobs: job id %q", jid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.live[jid]; ok && d.After(now) {
		return false, nil
	}
	if s.f == nil {
		return false, fmt.Errorf("seen jobs: %s: closed (the peel is stopping)", s.path)
	}
	if _, err := fmt.Fprintf(s.f, "%s %d\n", jid, deadline.UnixNano()); err != nil {
		return false, fmt.Errorf("seen jobs: %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return false, fmt.Errorf("seen jobs: %s: %w", s.path, err)
	}
	s.live[jid] = deadline
	s.lines++
	if s.lines >= s.next {
		for k, d := range s.live {
			if !d.After(now) {
				delete(s.live, k)
			}
		}
		if err := s.rewriteLocked(); err != nil {
			// The old file is still complete; try again later.
			s.next = s.lines + seenCompactMin
		}
	}
	return true, nil
}

// has reports whether jid was accepted and its deadline has not passed.
func (s *seenSet) has(jid string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.live[jid]
	return ok && d.After(now)
}

// rewriteLocked replaces the file with the live entries (temp file, sync,
// rename) and reopens it for appending.
func (s *seenSet) rewriteLocked() error {
	var buf bytes.Buffer
	for jid, d := range s.live {
		fmt.Fprintf(&buf, "%s %d\n", jid, d.UnixNano())
	}
	if err := atomicfile.WriteFile(s.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("seen jobs: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("seen jobs: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.lines = f, len(s.live)
	s.next = max(seenCompactMin, 2*len(s.live))
	return nil
}

func (s *seenSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
