// Package statetreetest generates the state trees of the states
// measurements (docs/states.md, benchmarks.md): the e2e tests that record
// and count them and bench/states use the same tree.
package statetreetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Highstate is a highstate tree of n states (slash path → content):
// top.sls applying svc00…, each svcNN.sls one file.managed of
// dir/svcNN.conf with contents v1, padded with comments to about 2.1 KB
// as a commented state file of a real tree is.
func Highstate(n int, dir string) map[string]string {
	files := map[string]string{}
	top := "base:\n  '*':\n"
	body := strings.Repeat("# padding line of a typical state file with comments\n", 38)
	for i := range n {
		name := fmt.Sprintf("svc%02d", i)
		top += "    - " + name + "\n"
		files[name+".sls"] = fmt.Sprintf("%s%s:\n  file.managed:\n    - name: %s\n    - contents: v1\n", body, name, filepath.Join(dir, name+".conf"))
	}
	files["top.sls"] = top
	return files
}

// Write writes files (slash path → content) under dir, making directories.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
