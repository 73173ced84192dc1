package topology

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/zester-io/zester/internal/testbin"
)

func TestMain(m *testing.M) {
	// Gateways normally wait a second before soliciting; in-process
	// superclusters form much faster with a short delay.
	server.SetGatewaysSolicitDelay(10 * time.Millisecond)
	// Generated configs hash the system user's password; the cheapest
	// bcrypt cost keeps the many Generate calls here quick (the server
	// checks any cost the same way).
	sysPasswordCost = bcrypt.MinCost
	os.Exit(m.Run())
}

// natsServerBinary is the stock nats-server of go.mod, built once per
// version for every test binary that needs one (testbin).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Path(testbin.NATSServer)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
