package suite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The chaos section is appended once, replaced in place by the next chaos
// run, and read back whole so that a matrix run can write it again.
func TestSpliceChaos_ReplacesOnlyItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	os.WriteFile(path, []byte("# Zester benchmarks\n\nmatrix tables\n"), 0o644)
	first := chaosBegin + "\nrun 1\n" + chaosEnd + "\n"
	if err := spliceChaos(path, first); err != nil {
		t.Fatal(err)
	}
	second := chaosBegin + "\nrun 2\n" + chaosEnd + "\n"
	if err := spliceChaos(path, second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	if !strings.HasPrefix(got, "# Zester benchmarks\n\nmatrix tables\n") || strings.Contains(got, "run 1") || strings.Count(got, chaosBegin) != 1 || !strings.Contains(got, "run 2") {
		t.Fatalf("after two chaos runs:\n%s", got)
	}
	if sec := keptSections(path); strings.TrimSpace(sec) != strings.TrimSpace(second) {
		t.Fatalf("section read back %q, want %q", sec, second)
	}
	if sec := keptSections(filepath.Join(t.TempDir(), "none.md")); sec != "" {
		t.Fatalf("section of a missing file: %q", sec)
	}
}

// Sections written by other commands survive a matrix run, in file order,
// the chaos section last.
func TestKeptSections_AllMarkedSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	body := "# Zester benchmarks\n\ntables\n\n" +
		keptBegin + "presence -->\n## Presence\nA\n" + keptEnd + "\n\nmore tables\n\n" +
		keptBegin + "enroll -->\n## Enroll\nB\n" + keptEnd + "\n\n" +
		chaosBegin + "\n## Chaos\nC\n" + chaosEnd + "\n"
	os.WriteFile(path, []byte(body), 0o644)
	got := keptSections(path)
	a, b, c := strings.Index(got, "## Presence"), strings.Index(got, "## Enroll"), strings.Index(got, "## Chaos")
	if a < 0 || b < a || c < b || strings.Contains(got, "tables") {
		t.Fatalf("kept sections:\n%s", got)
	}
}
