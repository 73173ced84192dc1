// Package testbin builds the third-party commands that tests run as real
// processes (the nats CLI, nats-server) once per module version and machine,
// not once per test binary: `go test ./...` runs many test binaries, several
// in parallel, and each used to build its own copy in its TestMain.
//
// A binary is cached under the user cache directory, keyed by the main
// package's module path and version (from go.mod, so go.sum pins the source),
// the Go version and the target. Only packages of dependency modules qualify:
// this module's own commands change with the work tree and are built by the
// tests that run them.
package testbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Main packages of go.mod's modules that tests run.
const (
	NATSCLI    = "github.com/nats-io/natscli/nats"
	NATSServer = "github.com/nats-io/nats-server/v2"
)

type result struct {
	path string
	err  error
}

var (
	mu    sync.Mutex
	built = map[string]result{}
)

// Path returns the path of the binary of main package pkg, building it into
// the cache when it is not there yet. A failed build is an error naming the
// package with the go command's output; the result, good or bad, is kept for
// the life of the test binary.
func Path(pkg string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if r, ok := built[pkg]; ok {
		return r.path, r.err
	}
	p, err := build(pkg)
	built[pkg] = result{p, err}
	return p, err
}

func build(pkg string) (string, error) {
	out, err := exec.Command("go", "list", "-f", "{{if .Module}}{{.Module.Path}}@{{.Module.Version}} {{.Module.Main}}{{end}}", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w%s", pkg, err, stderr(err))
	}
	mod, isMain, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if mod == "" || strings.HasSuffix(mod, "@") || isMain == "true" {
		return "", fmt.Errorf("testbin: %s is not a package of a versioned dependency module (%q)", pkg, out)
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{pkg, mod, runtime.Version(), runtime.GOOS, runtime.GOARCH}, "\n")))
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	dir := filepath.Join(root, "zester", "testbin", hex.EncodeToString(sum[:8]))
	bin := filepath.Join(dir, path.Base(pkg))
	if pkg == NATSServer {
		bin = filepath.Join(dir, "nats-server")
	}
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	// Test binaries of other packages may build the same binary at the same
	// time: each builds under its own name and renames it into place, so
	// that a binary at bin is always complete (the rename is atomic; the last
	// one wins, and they are the same program).
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	if out, err := exec.Command("go", "build", "-o", tmp, pkg).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s (%s): %w\n%s", pkg, mod, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("testbin: %w", err)
	}
	return bin, nil
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return "\n" + string(ee.Stderr)
	}
	return ""
}
