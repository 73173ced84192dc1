package topology

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// binDir holds binaries built once for the whole test run.
var binDir string

func TestMain(m *testing.M) {
	// Gateways normally wait a second before soliciting; in-process
	// superclusters form much faster with a short delay.
	server.SetGatewaysSolicitDelay(10 * time.Millisecond)
	// Generated configs hash the system user's password; the cheapest
	// bcrypt cost keeps the many Generate calls here quick (the server
	// checks any cost the same way).
	sysPasswordCost = bcrypt.MinCost
	dir, err := os.MkdirTemp("", "topology-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// natsServerBinary builds the stock nats-server from the module graph once.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		bin := filepath.Join(binDir, "nats-server")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		if out, err := cmd.CombinedOutput(); err != nil {
			natsServerErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
			return
		}
		t.Logf("built nats-server in %v", time.Since(start).Round(time.Millisecond))
		natsServerBin = bin
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerBin
}
