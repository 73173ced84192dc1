package peel_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
)

// A secure peel without credentials does not start: it would have nothing
// to check the masters' signatures against.
func TestSecure_PeelWithoutCredsRefusesToStart(t *testing.T) {
	cfg := peel.DefaultConfig()
	cfg.ID, cfg.DataDir = "web1", t.TempDir()
	_, err := peel.New(cfg, peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err == nil || !strings.Contains(err.Error(), "nats.creds") {
		t.Fatalf("peel without credentials: %v", err)
	}
	cfg.NATS.Creds = filepath.Join(t.TempDir(), "missing.creds")
	if _, err := peel.New(cfg, peel.Options{Logger: testkit.Logger(), NoHTTP: true}); err == nil || !strings.Contains(err.Error(), "missing.creds") {
		t.Fatalf("missing credentials file: %v", err)
	}
}
