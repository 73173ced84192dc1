package topology

import (
	"fmt"
	"regexp"

	"github.com/nats-io/nats-server/v2/server"
)

// Compression modes nats-server v2.15 accepts for routes and leaf-node links
// (gateways have no compression setting).
var compressionModes = []string{
	server.CompressionOff,
	server.CompressionAccept,
	server.CompressionS2Uncompressed,
	server.CompressionS2Fast,
	server.CompressionS2Better,
	server.CompressionS2Best,
	server.CompressionS2Auto,
}

func validCompression(mode string) bool {
	for _, m := range compressionModes {
		if mode == m {
			return true
		}
	}
	return false
}

// Names of servers, clusters, gateways and JetStream domains: one subject
// token, no spaces or wildcards.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func validName(s string) bool { return nameRE.MatchString(s) }

func checkName(option, s string) error {
	if !validName(s) {
		return fmt.Errorf("%s: %q is not a valid name (letters, digits, '-' and '_')", option, s)
	}
	return nil
}
