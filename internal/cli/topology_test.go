package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTopologyGen_WritesFilesAndNamesBadFlags(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := Main([]string{"topology", "gen", "--kind", "leaf", "--routes", "h1:6222,h2:6222,h3:6222", "--leafs", "2", "--out", dir}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"leaf-1.conf", "leaf-2.conf"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.Contains(string(b), "leafnodes") {
			t.Errorf("%s: %v", f, err)
		}
	}
	out.Reset()
	errb.Reset()
	code = Main([]string{"topology", "gen", "--kind", "supercluster", "--gateway", "hub", "--out", dir}, &out, &errb)
	if code != 3 || !strings.Contains(errb.String(), "--gateway") {
		t.Fatalf("bad gateway: exit %d %s", code, errb.String())
	}
}
