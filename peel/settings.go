package peel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/atomicfile"
	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/wire"
)

// The peel's settings (docs/settings.md, "On the peel"). The masters keep
// two entries for it: its sanitized templates (settings-files, key = id)
// and its secret values sealed to its curve key (secrets, key = id). The
// peel fetches both with direct gets (the only reads its credentials
// allow), opens the values with its curve seed, renders the templates with
// its own facts, and keeps the last good render.
//
// The cache (settingsCacheFile in data_dir, 0600, replaced atomically) holds
// the two entries as stored: the values stay sealed in it, so no plaintext
// is ever on disk; at start the peel renders from it before NATS answers,
// so a peel cut off from the masters still has its settings. Plaintext is
// only in memory, and leaves it only in the return of a settings.get or
// settings.items with reveal=true from an admin's job.
type peelSettings struct {
	curve    nkeys.KeyPair
	curvePub string
	cache    string
	kick     chan struct{}

	// basket answers {{ basket TARGET NAME }} in the local render (the
	// basket's peel-side lookup); nil makes it an error.
	basket func(ctx context.Context, target, name string) (map[string]any, error)

	mu sync.RWMutex
	// bundle and sealed are the entries the last good render used, as
	// stored; res is that render.
	bundle, sealed []byte
	res            *settings.Result
	lastErr        string
	// basketJSON is the settings' basket map last handed to the basket.
	basketJSON []byte
}

func newPeelSettings(dataDir string) *peelSettings {
	return &peelSettings{cache: filepath.Join(dataDir, settingsCacheFile), kick: make(chan struct{}, 1)}
}

// settingsCacheFile is the cache's name in data_dir.
const settingsCacheFile = "settings.json"

// settingsCache is the cache file's content: the two entries as stored.
type settingsCache struct {
	Bundle json.RawMessage `json:"bundle"`
	Sealed string          `json:"secrets,omitempty"`
}

// initSettings takes the peel's curve key (the enrolled identity's, else
// peel.xk in data_dir, made on first start) and renders the cache, if any.
func (p *Peel) initSettings() error {
	s := p.settings
	if p.ident != nil {
		s.curve = p.ident.curve
	} else {
		if err := os.MkdirAll(p.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		kp, err := loadOrCreateSeed(filepath.Join(p.cfg.DataDir, fileCurve), nkeys.CreateCurveKeys, nkeys.FromCurveSeed)
		if err != nil {
			return err
		}
		s.curve = kp
	}
	s.curvePub, _ = s.curve.PublicKey()
	b, err := os.ReadFile(s.cache)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("settings cache: %w", err)
	}
	var c settingsCache
	if err := json.Unmarshal(b, &c); err != nil {
		p.log.Warn("settings cache unreadable; waiting for the masters", "file", s.cache, "err", err)
		return nil
	}
	f, err := p.localFacts(context.Background())
	if err != nil {
		p.log.Warn("settings cache not rendered: no facts", "err", err)
		return nil
	}
	if err := p.renderSettings(context.Background(), c.Bundle, []byte(c.Sealed), f); err != nil {
		p.log.Warn("settings cache does not render; waiting for the masters", "err", err)
	}
	return nil
}

// withCurve adds the peel's curve public key to its fact document (fact
// "curve"): what the masters seal its values to when it has no enrollment
// record.
func withCurve(doc []byte, pub string) []byte {
	if pub == "" || len(doc) < 2 || doc[0] != '{' || doc[len(doc)-1] != '}' {
		return doc
	}
	q, _ := json.Marshal(pub)
	out := make([]byte, 0, len(doc)+len(q)+10)
	out = append(out, doc[:len(doc)-1]...)
	if len(doc) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"curve":`...)
	out = append(out, q...)
	return append(out, '}')
}

// localFacts are the facts the peel last published, or freshly collected
// ones when it has not published yet (at start, or cut off from NATS).
func (p *Peel) localFacts(ctx context.Context) (map[string]any, error) {
	p.factsMu.Lock()
	f := p.lastFacts
	p.factsMu.Unlock()
	if f != nil {
		return f, nil
	}
	_, m, err := collectFacts(ctx, p.cfg.ID, p.settings.curvePub)
	return m, err
}

// settingsLoop fetches and renders the peel's settings when a master says
// they changed, after every (re)connect and facts publish, and every facts
// interval; a failed fetch is retried with backoff.
func (p *Peel) settingsLoop(ctx context.Context) {
	retry := backoff.New(time.Second, p.cfg.FactsInterval.D())
	t := time.NewTimer(p.cfg.FactsInterval.D())
	defer t.Stop()
	for waitWake(ctx, t, p.settings.kick) {
		if !p.nc.IsConnected() {
			t.Reset(retry.Next())
			continue
		}
		if err := p.refreshSettings(ctx); err != nil {
			p.log.Warn("settings", "err", err)
			t.Reset(retry.Next())
			continue
		}
		retry.Reset()
		t.Reset(p.cfg.FactsInterval.D())
	}
}

// refreshSettings fetches the two entries and renders them when they, or
// the facts, differ from the last good render's.
func (p *Peel) refreshSettings(ctx context.Context) error {
	bundle, _, err := peelproto.GetKV(ctxTimeout(ctx, 5*time.Second), p.nc, names.BucketSettingsFiles, names.SettingsFilesKey(p.cfg.ID))
	if errors.Is(err, peelproto.ErrKeyNotFound) {
		return nil // nothing rendered for this peel (yet): keep what it has
	}
	if err != nil {
		return err
	}
	sealed, _, err := peelproto.GetKV(ctxTimeout(ctx, 5*time.Second), p.nc, names.BucketSecrets, names.SecretsKey(p.cfg.ID))
	if err != nil && !errors.Is(err, peelproto.ErrKeyNotFound) {
		return err
	}
	f, err := p.localFacts(ctx)
	if err != nil {
		return err
	}
	p.settings.mu.RLock()
	same := bytes.Equal(bundle, p.settings.bundle) && bytes.Equal(sealed, p.settings.sealed)
	p.settings.mu.RUnlock()
	if err := p.renderSettings(ctx, bundle, sealed, f); err != nil {
		return err
	}
	if same {
		return nil
	}
	c, _ := json.Marshal(settingsCache{Bundle: bundle, Sealed: string(sealed)})
	if err := atomicfile.WriteFile(p.settings.cache, c, 0o600); err != nil {
		return fmt.Errorf("settings cache: %w", err)
	}
	return nil
}

// renderSettings renders a bundle with the sealed values and the facts; on
// success it becomes the peel's settings. On failure the last good render
// stays, and the error (which never holds a plaintext: rendered lines are
// quoted masked) is returned.
func (p *Peel) renderSettings(ctx context.Context, bundle, sealed []byte, f map[string]any) error {
	s := p.settings
	var b settings.Bundle
	if err := json.Unmarshal(bundle, &b); err != nil {
		return s.failed(fmt.Errorf("settings-files entry: %w", err))
	}
	if b.ID != p.cfg.ID {
		return s.failed(fmt.Errorf("settings-files entry holds the settings of %q", b.ID))
	}
	var vals *settings.Values
	if len(sealed) > 0 {
		var err error
		if vals, err = settings.OpenValues(s.curve, p.cfg.ID, sealed); err != nil {
			return s.failed(err)
		}
	}
	t, err := settings.LoadBundle(&b)
	if err != nil {
		return s.failed(err)
	}
	opts := settings.Options{Context: ctx, Secret: settings.RefOpener(vals)}
	if s.basket != nil {
		opts.Basket = func(tgt, name string) (map[string]any, error) { return s.basket(ctx, tgt, name) }
	} else {
		opts.Basket = func(string, string) (map[string]any, error) { return nil, errors.New("basket not available yet") }
	}
	res, err := t.Compile(p.cfg.ID, f, opts)
	if err != nil {
		return s.failed(err)
	}
	if h, _ := res.SettingsHash(); h != b.Settings {
		// The masters rendered with other facts (this peel's newer ones
		// are on their way): the local render is the current one.
		p.log.Debug("local settings differ from the masters' render (facts changed since)", "files", res.Files)
	}
	s.mu.Lock()
	s.bundle, s.sealed, s.res, s.lastErr = bundle, sealed, res, ""
	s.mu.Unlock()
	p.settingsBasket(res)
	return nil
}

// settingsBasket hands the settings' `basket:` map (name → function, or
// {function, args}) to the basket publisher when it changed.
func (p *Peel) settingsBasket(res *settings.Result) {
	v, _ := res.Get("basket")
	j, _ := json.Marshal(v)
	s := p.settings
	s.mu.Lock()
	same := bytes.Equal(j, s.basketJSON)
	s.basketJSON = j
	s.mu.Unlock()
	if same || p.basket == nil {
		return
	}
	specs := map[string]BasketSpec{}
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		p.log.Warn("settings: basket is not a map of entry name to function; ignored")
		return
	}
	for name, e := range m {
		switch x := e.(type) {
		case string:
			specs[name] = BasketSpec{Function: x}
		case map[string]any:
			fn, _ := x["function"].(string)
			spec := BasketSpec{Function: fn}
			if a, ok := x["args"]; ok {
				spec.Args, _ = json.Marshal(a)
			}
			specs[name] = spec
		default:
			specs[name] = BasketSpec{} // named as bad below
		}
	}
	if err := p.SetBasketFuncs(specs); err != nil {
		p.log.Warn("settings: basket entries refused", "err", err)
	}
}

func (s *peelSettings) failed(err error) error {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
	return err
}

// settingsFor serves settings.get and settings.items.
func (p *Peel) settingsFor(_ context.Context, reveal bool) (map[string]any, error) {
	res, err := p.settings.result()
	if err != nil {
		return nil, err
	}
	if reveal {
		return res.Revealed(), nil
	}
	return res.Masked(), nil
}

// revealRoles may see secrets in plaintext through settings.get: admin
// only (an operator runs jobs, a readonly user cannot run one at all).
var revealRoles = []string{string(pki.RoleAdmin)}

// mayReveal says whether a job may reveal secrets: its dispatch, signed by
// a master (admit verified it), names a requester role that may. In
// insecure mode nothing is signed, so nothing is revealed.
func (p *Peel) mayReveal(d wire.Dispatch) bool {
	if p.trust.insecure {
		return false
	}
	for _, r := range revealRoles {
		if d.Role == r {
			return true
		}
	}
	return false
}

// Settings returns the peel's current settings, secrets masked (nil before
// the first good render). The basket reads its "basket:" map from here.
func (p *Peel) Settings() map[string]any {
	if p.settings == nil {
		return nil
	}
	p.settings.mu.RLock()
	res := p.settings.res
	p.settings.mu.RUnlock()
	if res == nil {
		return nil
	}
	return res.Masked()
}
