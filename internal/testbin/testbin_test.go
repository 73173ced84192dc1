package testbin

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPath_NATSServer: the binary is built into the cache once, runs, and a
// second call gives the same file.
func TestPath_NATSServer(t *testing.T) {
	bin, err := Path(NATSServer)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(bin)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("%s: %v %v", bin, st, err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nats-server") {
		t.Fatalf("%s --version: %v %s", bin, err, out)
	}
	if again, err := Path(NATSServer); err != nil || again != bin {
		t.Fatalf("second Path: %q %v, first %q", again, err, bin)
	}
	// A fresh lookup (as a second test binary makes) finds the cached file.
	if again, err := build(NATSServer); err != nil || again != bin {
		t.Fatalf("cached build: %q %v, first %q", again, err, bin)
	}
}

// TestPath_Refuses: this module's own commands change with the work tree, so
// they are not cached by version; a package that does not exist fails the
// build with an error naming it.
func TestPath_Refuses(t *testing.T) {
	if _, err := Path("github.com/zester-io/zester/cmd/zester"); err == nil || !strings.Contains(err.Error(), "not a package of a versioned dependency") {
		t.Errorf("own command: %v", err)
	}
	if _, err := Path("github.com/nats-io/natscli/nosuchcmd"); err == nil || !strings.Contains(err.Error(), "nosuchcmd") {
		t.Errorf("missing package: %v", err)
	}
}
