package peel

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/zester-io/zester/internal/settings"
)

// {{ setting "a:b" }} in state templates (docs/states.md, "Templates").
// A state run reads the peel's last good render, secrets included: they
// come into the template as secrets, so the file gets the plaintext and
// the runner masks it in every comment and diff of the return (the same
// masking as {{ secret }}). That is Salt's pillar in a template, and what
// a config file with a password needs; the plaintext never leaves the
// host.

// result is the last good render, or why there is none.
func (s *peelSettings) result() (*settings.Result, error) {
	s.mu.RLock()
	res, why := s.res, s.lastErr
	s.mu.RUnlock()
	if res == nil {
		if why == "" {
			why = "the masters have not rendered any for this peel yet (is settings_dir set, and does top.zy match it?)"
		}
		return nil, fmt.Errorf("no settings: %s", why)
	}
	return res, nil
}

// callSettings is {{ setting }} for zester-peel call, which has no
// connection: the entries the daemon keeps in data_dir (settings.json,
// values sealed to peel.xk), rendered here with the host's facts, as the
// daemon renders them at its start. Warnings go to w.
func callSettings(cfg Config, w io.Writer) func() (*settings.Result, error) {
	return func() (*settings.Result, error) {
		cache := filepath.Join(cfg.DataDir, settingsCacheFile)
		if _, err := os.Stat(cache); err != nil {
			return nil, fmt.Errorf("no settings: %w (the peel keeps its settings there once the masters rendered them)", err)
		}
		log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
		p := &Peel{cfg: cfg, log: log, settings: newPeelSettings(cfg.DataDir)}
		if err := p.initSettings(); err != nil {
			return nil, err
		}
		return p.settings.result()
	}
}
