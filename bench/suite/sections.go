package suite

import (
	"os"
	"strings"
)

// benchmarks.md is written by more than one command: the matrix rewrites the
// file but keeps the sections the others wrote, marked begin … end.

// spliceChaos replaces the chaos section of the file at path (or appends
// it), keeping everything else.
func spliceChaos(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(b)
	if i := strings.Index(s, chaosBegin); i >= 0 {
		if j := strings.Index(s[i:], chaosEnd); j >= 0 {
			s = s[:i] + strings.TrimSuffix(section, "\n") + s[i+j+len(chaosEnd):]
			return os.WriteFile(path, []byte(s), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s += "\n"
	}
	return os.WriteFile(path, []byte(s+section), 0o644)
}

// Sections measured by other commands (a heavy test, a loadgen scenario)
// are marked with keptBegin … keptEnd; a matrix run writes them again as
// they are, like the chaos section.
const (
	keptBegin = "<!-- kept: "
	keptEnd   = "<!-- end kept -->"
)

// keptSections is the chaos section and every kept section of the file at
// path ("" when none), so the matrix run can write them again.
func keptSections(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	var out strings.Builder
	for _, m := range [][2]string{{keptBegin, keptEnd}, {chaosBegin, chaosEnd}} {
		rest := s
		for {
			i := strings.Index(rest, m[0])
			if i < 0 {
				break
			}
			j := strings.Index(rest[i:], m[1])
			if j < 0 {
				break
			}
			out.WriteString("\n" + rest[i:i+j+len(m[1])] + "\n")
			rest = rest[i+j+len(m[1]):]
		}
	}
	return out.String()
}
