package pkg

import (
	"strings"
	"testing"
)

// FuzzPackageOutput: the package tools' output is parsed as it comes.
// apkSplit gives back the string it split; tabPairs and the dpkg/apk line
// readers only report names that were asked for.
func FuzzPackageOutput(f *testing.F) {
	f.Add("musl-1.2.4-r2 x86_64 {musl} (MIT) [installed]\nbusybox-1.36.1-r5\n", "musl")
	f.Add("a\t1.0\nb\t\nno tab\n", "a")
	f.Add("py3-a-b-0.1_git2-r10\n-r1\n1-r1\n", "py3-a-b")
	f.Fuzz(func(t *testing.T, out, name string) {
		for _, l := range strings.Split(out, "\n") {
			for _, w := range strings.Fields(l) {
				if n, v, ok := apkSplit(w); ok && (n+"-"+v != w || n == "" || !apkVersion.MatchString(v)) {
					t.Fatalf("apkSplit(%q) = %q, %q", w, n, v)
				}
			}
		}
		for _, m := range []map[string]string{apkLines(out, []string{name}), keep(tabPairs(out), []string{name})} {
			for n := range m {
				if n != name {
					t.Fatalf("asked for %q, got %q", name, n)
				}
			}
		}
	})
}
