package master

import (
	"context"
	"errors"
	"fmt"

	"github.com/zester-io/zester/internal/obs"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/topology"
)

// RunEmbeddedOnly runs the embedded nats-server of cfg without a master, so
// an operator can restore streams (which needs the master stopped) on the
// same store, ports and monitoring address.
func RunEmbeddedOnly(ctx context.Context, cfg Config) error {
	if len(cfg.NATS.URL) != 0 {
		return errors.New("--nats-only: nats.url is set; there is no embedded server to run")
	}
	log := obs.StderrLogger(cfg.LogLevel)
	e := cfg.NATS.Embedded
	// The same server as the master's: operator mode and TLS, so that a
	// maintenance run opens no unauthenticated listener either.
	var p *pki.PKI
	if cfg.Insecure {
		log.Warn("INSECURE: insecure: true in master.yaml: the nats-server accepts any client")
	} else {
		var err error
		if p, _, err = pki.LoadOrInit(cfg.PKIDir, pki.InitOptions{Partitions: cfg.Partitions}); err != nil {
			return fmt.Errorf("config key pki_dir: %w", err)
		}
	}
	tune, err := embeddedTune(cfg, p)
	if err != nil {
		return fmt.Errorf("embedded nats-server: %w", err)
	}
	srv, err := topology.StartServer(topology.ServerConfig{Name: cfg.ID, Listen: e.Listen, Monitor: e.Monitor, StoreDir: e.StoreDir,
		Logger: log.With("component", "nats-server"), Tune: tune})
	if err != nil {
		return fmt.Errorf("embedded nats-server: %w", err)
	}
	log.Info("embedded nats-server only (no master)", "url", srv.ClientURL(), "store_dir", e.StoreDir, "operator_mode", p != nil)
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
