package peel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustOpenSeen opens the seen set in dir at now, failing the test on an
// error.
func mustOpenSeen(t *testing.T, dir string, now time.Time) *seenSet {
	t.Helper()
	s, err := openSeen(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The seen set survives a restart for jobs whose deadline has not passed,
// forgets the others, and skips a torn last line.
func TestSeenSet_PersistsLiveJobsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s := mustOpenSeen(t, dir, now)
	for _, c := range []struct {
		jid      string
		deadline time.Time
	}{{"live", now.Add(time.Hour)}, {"expired", now.Add(time.Second)}} {
		if fresh, err := s.add(c.jid, c.deadline, now); err != nil || !fresh {
			t.Fatalf("add %s: %v %v", c.jid, fresh, err)
		}
	}
	if fresh, err := s.add("live", now.Add(time.Hour), now); err != nil || fresh {
		t.Fatalf("second add of live: fresh=%v err=%v", fresh, err)
	}
	if _, err := s.add("bad id\n", now.Add(time.Hour), now); err == nil {
		t.Fatal("a job id with a newline was written")
	}
	s.close()
	// The peel died while writing a line.
	f, _ := os.OpenFile(filepath.Join(dir, seenFile), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("torn 17")
	f.Close()

	later := now.Add(time.Minute)
	s = mustOpenSeen(t, dir, later)
	defer s.close()
	if !s.has("live", later) || s.has("expired", later) {
		t.Fatalf("after reopen: live %v expired %v", s.has("live", later), s.has("expired", later))
	}
	if fresh, _ := s.add("live", now.Add(time.Hour), later); fresh {
		t.Fatal("a job accepted before the restart was accepted again")
	}
	if fresh, err := s.add("expired", now.Add(time.Hour), later); err != nil || !fresh {
		t.Fatalf("an expired id is forgotten: %v %v", fresh, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, seenFile))
	if strings.Contains(string(b), "torn") || strings.Count(string(b), "\n") != 2 {
		t.Fatalf("file after reopen (compacted, then one add):\n%s", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, seenFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
}

// Compaction keeps the file bounded by the live entries.
func TestSeenSet_Compacts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s := mustOpenSeen(t, dir, now)
	defer s.close()
	for i := 0; i < 2*seenCompactMin+10; i++ {
		at := now.Add(time.Duration(i) * time.Millisecond)
		if _, err := s.add("j"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+time.Duration(i).String(), at.Add(time.Millisecond), at); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, seenFile))
	if n := strings.Count(string(b), "\n"); n > 20 {
		t.Fatalf("%d lines for entries that expire at once", n)
	}
}
