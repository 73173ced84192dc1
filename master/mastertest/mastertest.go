// Package mastertest starts real masters for tests, in the shape of Nomad's
// TestServer: against a NATS URL, with a temporary data layout, stopped by
// t.Cleanup.
package mastertest

import (
	"testing"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/topology"
)

// Handle is a running test master.
type Handle struct {
	*master.Master
	*testkit.Daemon
}

// Config returns a master config for tests against url, in insecure mode:
// the topology launchers start servers without authentication, which is what
// most tests exercise (jobs, failover, scale). Tests of the secure default
// use StartSecure and Secure.Config instead.
func Config(id string, urls ...string) master.Config {
	c := master.DefaultConfig()
	c.Insecure = true
	c.ID = id
	c.HTTP = ""
	c.NATS.URL = config.URLs(urls)
	c.Heartbeat = config.Dur(500 * time.Millisecond)
	c.DeadAfter = config.Dur(1500 * time.Millisecond)
	return c
}

// TopologyConfig is Config for a master on the hub of tp, with the replicas
// and placement its buckets need there.
func TopologyConfig(id string, tp *topology.Topology) master.Config {
	c := Config(id, tp.HubURLs()...)
	c.NATS.Replicas = tp.Replicas()
	c.NATS.Placement = tp.Placement()
	return c
}

// Start runs a master with cfg and waits until it is ready.
func Start(t testing.TB, cfg master.Config) *Handle {
	t.Helper()
	return StartWith(t, cfg, master.Options{})
}

// StartWith is Start with options (a PKI, metrics); the logger and NoHTTP
// default as in Start.
func StartWith(t testing.TB, cfg master.Config, opts master.Options) *Handle {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testkit.Logger().With("master", cfg.ID)
	}
	opts.NoHTTP = opts.NoHTTP || cfg.HTTP == ""
	m, err := master.New(cfg, opts)
	if err != nil {
		t.Fatalf("master %s: %v", cfg.ID, err)
	}
	h := &Handle{Master: m, Daemon: testkit.RunDaemon(t, "master "+cfg.ID, m.Run)}
	// Generous: a fresh R3 cluster on a loaded 2-core CI machine creates ten
	// replicated streams before the master can join.
	h.AwaitReady(t, 90*time.Second, m.Ready)
	return h
}
