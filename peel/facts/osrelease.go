package facts

import (
	"bufio"
	"io"
	"strings"
)

// osReleasePaths are tried in order, as specified by os-release(5).
var osReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}

func (c *collector) osRelease() OS {
	for _, p := range osReleasePaths {
		fh, err := c.open(p)
		if err != nil {
			continue
		}
		kv, err := parseOSRelease(fh)
		fh.Close()
		if err != nil && len(kv) == 0 {
			continue
		}
		return osFromRelease(kv)
	}
	return OS{IDLike: []string{}}
}

// osFromRelease maps parsed os-release variables onto OS. Arch and GoArch
// are not part of os-release and are left empty.
func osFromRelease(kv map[string]string) OS {
	return OS{
		ID:         kv["ID"],
		Name:       kv["NAME"],
		Version:    kv["VERSION"],
		VersionID:  kv["VERSION_ID"],
		PrettyName: kv["PRETTY_NAME"],
		IDLike:     nonNil(strings.Fields(kv["ID_LIKE"])),
		Codename:   kv["VERSION_CODENAME"],
	}
}

// parseOSRelease parses the os-release(5) format: newline separated
// VAR=VALUE assignments, where VALUE follows shell quoting rules (single
// quotes, double quotes with backslash escapes, or unquoted with backslash
// escapes). Blank lines, comments and malformed lines are skipped. On a read
// error the variables parsed so far are returned with the error.
func parseOSRelease(r io.Reader) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || !isShellIdent(key) {
			continue
		}
		kv[key] = unquoteShell(val)
	}
	return kv, sc.Err()
}

func isShellIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '_', 'A' <= ch && ch <= 'Z', 'a' <= ch && ch <= 'z':
		case '0' <= ch && ch <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquoteShell evaluates a single shell word without any expansion. Quoted
// and unquoted segments are concatenated; unquoted whitespace ends the word
// (anything after it, typically a comment, is ignored).
func unquoteShell(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch ch {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				b.WriteString(s[i+1:])
				return b.String()
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t':
			return b.String()
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
