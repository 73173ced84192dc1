package facts

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// addFixtures seeds a fuzz corpus with every file of a testdata directory.
func addFixtures(f *testing.F, dir string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseOSRelease(f *testing.F) {
	addFixtures(f, "os-release")
	for _, s := range []string{
		"", "=", "A=", "ID='unterminated", `ID="unterminated`, `ID="a\`, `ID=\`,
		"ID=a\x00b", "ID=\"multi\nline\"", "#ID=x", "ID='a'\"b\"c\\ d e", "ID_LIKE=\"a\tb  c\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kv, err := parseOSRelease(bytes.NewReader(data))
		if err != nil {
			return // e.g. a line longer than the scanner limit
		}
		for k, v := range kv {
			if !isShellIdent(k) {
				t.Errorf("invalid key %q", k)
			}
			if strings.Contains(v, "\n") {
				t.Errorf("value of %s spans lines: %q", k, v)
			}
		}
		os := osFromRelease(kv)
		if os.IDLike == nil {
			t.Error("IDLike is nil")
		}
		// Parsing is deterministic.
		kv2, _ := parseOSRelease(bytes.NewReader(data))
		if len(kv) != len(kv2) {
			t.Error("non-deterministic parse")
		}
	})
}

func FuzzParseMounts(f *testing.F) {
	addFixtures(f, "mounts")
	for _, s := range []string{
		"", "a b c", "a b c d", `\040 \134 \0 d`, "dev /mnt\\040x ext4 ro,noatime 0 0\n",
		"# comment line here", "a b c ,,,", "a\tb\tc\td\te\tf\tg",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		all, err := parseMounts(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, m := range all {
			if m.Device == "" || m.MountPoint == "" || m.FSType == "" || len(m.Options) == 0 {
				t.Errorf("incomplete mount %+v", m)
			}
			if m.ReadOnly != slices.Contains(m.Options, "ro") {
				t.Errorf("read_only=%v with options %v", m.ReadOnly, m.Options)
			}
		}
		for mp, m := range filterMounts(all, true) {
			if mp != m.MountPoint || pseudoFS[m.FSType] {
				t.Errorf("bad filtered mount %q: %+v", mp, m)
			}
		}
	})
}

func FuzzUnescapeMountField(f *testing.F) {
	for _, s := range []string{"", "plain", `a\040b`, `\134\134`, `\777`, `\`, `\0`, `\01`, `x\012y`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := unescapeMountField(s)
		if len(got) > len(s) {
			t.Errorf("unescape grew %q to %q", s, got)
		}
		if !strings.Contains(s, `\`) && got != s {
			t.Errorf("unescape changed %q to %q", s, got)
		}
	})
}

func FuzzParseCPUInfo(f *testing.F) {
	addFixtures(f, "cpuinfo")
	for _, s := range []string{"", "processor: 0", "processor : x\n\nprocessor : 1", "core id: 1\nphysical id: 0\ncpu cores: 9999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseCPUInfo(bytes.NewReader(data))
		if err != nil {
			return
		}
		if info.Count < 0 || info.Cores < 0 || info.Sockets < 0 {
			t.Errorf("negative counts: %+v", info)
		}
		if utf8.Valid(data) && !utf8.ValidString(info.Model) {
			t.Errorf("model %q not valid UTF-8 from valid input", info.Model)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	addFixtures(f, "meminfo")
	f.Fuzz(func(t *testing.T, data []byte) {
		kv, err := parseMeminfo(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = memoryFromMeminfo(kv)
	})
}
