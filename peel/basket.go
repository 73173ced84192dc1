package peel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/atomicfile"
	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/funcs"
)

// The basket (Salt's mine), the peel's side: it runs the functions its
// entries name (peel.yaml's basket, and those SetBasketFuncs adds) at start,
// every basket_interval (jittered) and when woken (a reconnect, a master's
// request for its facts), and writes an entry to its own key
// names.BasketKey(id, name) only when
//
//   - the value changed (compared as JSON), or
//   - the store no longer holds the revision it wrote (a direct get of its
//     own key: the bucket was wiped and rebuilt, or someone deleted the
//     key), so a rebuilt basket is whole again within one interval.
//
// A function that fails, or whose value is over basket_max_value, is
// reported in the log and as a basket-error event, and the stored value
// stays as it was. Entries that are no longer configured are deleted: the
// names it has written are kept in data_dir/basket.json for that, across
// restarts.

// basketFile lists, in data_dir, the entry names the peel has written.
const basketFile = "basket.json"

// basketCallTimeout bounds one basket function run and one basket.get.
const basketCallTimeout = 30 * time.Second

type basketState struct {
	mu sync.Mutex
	// local are peel.yaml's entries; extra those of SetBasketFuncs (the
	// peel's settings). local wins on a shared name: the host's own file
	// is the last word, as Salt's minion config is over pillar.
	local, extra map[string]BasketSpec
	// written are the entries this peel has in the store, as it wrote them.
	written map[string]writtenEntry
	// stale are names written earlier (basket.json) not configured now.
	stale map[string]bool
	// failing is the last problem reported per entry: the same problem is
	// logged and sent as an event once, not every round (a bad entry in a
	// fleet's settings would otherwise be an event per peel per interval).
	failing map[string]string
	wake    chan struct{}

	publishes, unchanged, problems *metrics.Counter
}

type writtenEntry struct {
	Function string          `json:"function"`
	Value    json.RawMessage `json:"-"`
	Rev      uint64          `json:"-"`
	Updated  time.Time       `json:"updated"`
}

// newBasket prepares the basket state, reading which names were written
// before this start.
func newBasket(cfg Config, set *metrics.Set) (*basketState, error) {
	b := &basketState{
		local: cfg.Basket, extra: map[string]BasketSpec{},
		written: map[string]writtenEntry{}, stale: map[string]bool{}, failing: map[string]string{},
		wake:      make(chan struct{}, 1),
		publishes: set.NewCounter(`zester_peel_basket_publishes_total`),
		unchanged: set.NewCounter(`zester_peel_basket_unchanged_total`),
		problems:  set.NewCounter(`zester_peel_basket_errors_total`),
	}
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, basketFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("data_dir: %w", err)
	default:
		var prev map[string]writtenEntry
		if err := json.Unmarshal(raw, &prev); err != nil {
			return nil, fmt.Errorf("%s: %w (delete it: the peel then forgets which basket entries it wrote)", filepath.Join(cfg.DataDir, basketFile), err)
		}
		for name := range prev {
			if names.ValidateBasketName(name) == nil {
				b.stale[name] = true
			}
		}
	}
	return b, nil
}

// specs are the configured entries now.
func (b *basketState) specs() map[string]BasketSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]BasketSpec, len(b.local)+len(b.extra))
	for n, s := range b.extra {
		out[n] = s
	}
	for n, s := range b.local {
		out[n] = s
	}
	return out
}

// checkBasketFuncs reports entries whose function the registry lacks.
func checkBasketFuncs(where string, specs map[string]BasketSpec, reg *funcs.Registry) error {
	known := reg.Names()
	var errs []error
	for _, name := range sortedKeys(specs) {
		fn := specs[name].Function
		if fn != "" && !slices.Contains(known, fn) {
			errs = append(errs, fmt.Errorf("%s.%s: unknown function %q (known: %s)", where, name, fn, strings.Join(known, ", ")))
		}
	}
	return errors.Join(errs...)
}

// SetBasketFuncs replaces the basket entries that come from outside
// peel.yaml (the peel's settings: a `basket:` map), and wakes the publisher:
// new entries are written, changed ones rewritten, dropped ones deleted.
// peel.yaml's entries win on a shared name. The error names every bad
// entry; nothing changes then.
func (p *Peel) SetBasketFuncs(specs map[string]BasketSpec) error {
	var errs []error
	validateBasketSpecs("settings basket", specs, func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	})
	if err := errors.Join(errors.Join(errs...), checkBasketFuncs("settings basket", specs, p.reg)); err != nil {
		return err
	}
	b := p.basket
	b.mu.Lock()
	b.extra = make(map[string]BasketSpec, len(specs))
	for n, s := range specs {
		b.extra[n] = s
	}
	b.mu.Unlock()
	notify(b.wake)
	return nil
}

// basketLoop publishes the basket at start, every interval (jittered in
// [0.8, 1] of it) and when woken; a round that could not reach the store is
// retried with backoff up to the interval.
func (p *Peel) basketLoop(ctx context.Context) {
	b := p.basket
	iv := p.cfg.BasketInterval.D()
	t := time.NewTimer(0)
	defer t.Stop()
	retry := backoff.New(time.Second, iv)
	for waitWake(ctx, t, b.wake) {
		if !p.nc.IsConnected() {
			t.Reset(time.Second) // a local check; a reconnect wakes it too
			continue
		}
		if err := p.basketRound(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("basket not stored; retrying", "err", err)
			t.Reset(retry.Next())
			continue
		}
		retry.Reset()
		t.Reset(iv - time.Duration(rand.Int64N(int64(iv/5)+1)))
	}
}

// basketRound runs every entry's function once and writes what changed or
// went missing, then deletes the entries no longer configured. It returns
// the store errors (the caller retries); function errors and oversize
// values are reported per entry and do not fail the round.
func (p *Peel) basketRound(ctx context.Context) error {
	b := p.basket
	specs := p.basket.specs()
	var errs []error
	for _, name := range sortedKeys(specs) {
		if err := p.basketEntry(ctx, name, specs[name]); err != nil {
			errs = append(errs, err)
		}
	}
	b.mu.Lock()
	for name := range b.written {
		if _, ok := specs[name]; !ok {
			b.stale[name] = true
		}
	}
	var stale []string
	for name := range b.stale {
		if _, ok := specs[name]; ok {
			delete(b.stale, name) // configured again
			continue
		}
		stale = append(stale, name)
	}
	b.mu.Unlock()
	for _, name := range stale {
		if err := p.basketDelete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		delete(b.stale, name)
		delete(b.written, name)
		b.mu.Unlock()
		p.log.Info("basket entry deleted: no longer configured", "name", name)
	}
	if err := p.saveBasketNames(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// basketEntry runs one entry's function and writes its value if needed.
func (p *Peel) basketEntry(ctx context.Context, name string, spec BasketSpec) error {
	b := p.basket
	fctx, cancel := context.WithTimeout(ctx, min(basketCallTimeout, p.cfg.BasketInterval.D()))
	res, err := p.reg.Run(fctx, p.jobEnv(), spec.Function, spec.Args)
	cancel()
	if err != nil {
		p.basketProblem(name, fmt.Errorf("function %s: %w", spec.Function, err))
		return nil
	}
	val, err := json.Marshal(res)
	if err != nil {
		p.basketProblem(name, fmt.Errorf("function %s: result not encodable: %w", spec.Function, err))
		return nil
	}
	if max := p.cfg.BasketMaxValue.N(); int64(len(val)) > max {
		p.basketProblem(name, fmt.Errorf("function %s: value of %d bytes exceeds basket_max_value (%d bytes); the stored value is left as it was", spec.Function, len(val), max))
		return nil
	}
	key := names.BasketKey(p.cfg.ID, name)
	b.mu.Lock()
	prev, had := b.written[name]
	delete(b.failing, name)
	b.mu.Unlock()
	changed := !had || prev.Function != spec.Function || !bytes.Equal(prev.Value, val)
	if !changed {
		// Unchanged: write only if the store lost what we wrote.
		_, rev, err := peelproto.GetKV(ctxTimeout(ctx, 5*time.Second), p.nc, names.BucketBasket, key)
		switch {
		case err == nil && rev == prev.Rev:
			b.unchanged.Inc()
			return nil
		case err != nil && !errors.Is(err, peelproto.ErrKeyNotFound):
			return fmt.Errorf("basket %s: %w", name, err)
		}
		p.log.Info("basket entry missing from the store (rebuilt or deleted); writing it again", "name", name)
	}
	e := wire.BasketEntry{Peel: p.cfg.ID, Name: name, Function: spec.Function, Value: val, Updated: time.Now().UTC()}
	if !changed {
		e.Updated = prev.Updated
	}
	body, _ := json.Marshal(e)
	rev, err := peelproto.PutKV(ctxTimeout(ctx, 5*time.Second), p.js, names.BucketBasket, key, body)
	if err != nil {
		return fmt.Errorf("basket %s: %w", name, err)
	}
	b.mu.Lock()
	b.written[name] = writtenEntry{Function: spec.Function, Value: val, Rev: rev, Updated: e.Updated}
	b.mu.Unlock()
	b.publishes.Inc()
	return nil
}

// basketDelete deletes one of the peel's entries (a KV delete marker on its
// own key, as kv.Delete writes it).
func (p *Peel) basketDelete(ctx context.Context, name string) error {
	msg := nats.NewMsg(names.KVSubjectPrefix(names.BucketBasket) + names.BasketKey(p.cfg.ID, name))
	msg.Header.Set("KV-Operation", "DEL")
	if _, err := p.js.PublishMsg(ctxTimeout(ctx, 5*time.Second), msg); err != nil {
		return fmt.Errorf("delete basket %s: %w", name, err)
	}
	return nil
}

// saveBasketNames records the names written, for deleting those that are
// dropped from the configuration while the peel is stopped.
func (p *Peel) saveBasketNames() error {
	b := p.basket
	b.mu.Lock()
	keep := make(map[string]writtenEntry, len(b.written)+len(b.stale))
	for n, w := range b.written {
		keep[n] = w
	}
	for n := range b.stale {
		keep[n] = writtenEntry{}
	}
	b.mu.Unlock()
	raw, _ := json.Marshal(keep)
	path := filepath.Join(p.cfg.DataDir, basketFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, raw) {
		return nil
	}
	if err := atomicfile.WriteFile(path, raw, 0o600); err != nil {
		return fmt.Errorf("basket: %w", err)
	}
	return nil
}

// basketProblem reports an entry that could not be published, in the log
// and as a basket-error event (job-events keeps it), once until the problem
// changes or the entry is published again.
func (p *Peel) basketProblem(name string, err error) {
	b := p.basket
	b.problems.Inc()
	b.mu.Lock()
	repeat := b.failing[name] == err.Error()
	b.failing[name] = err.Error()
	b.mu.Unlock()
	if repeat {
		return
	}
	p.log.Warn("basket entry not published", "name", name, "err", err)
	ev, _ := json.Marshal(wire.Event{Kind: "basket-error", Time: time.Now().UTC(), Peel: p.cfg.ID, Detail: fmt.Sprintf("basket entry %s: %v", name, err)})
	if perr := p.nc.Publish(names.PeelEventSubject(p.cfg.ID, "basket-error"), ev); perr != nil {
		p.log.Debug("basket-error event not sent", "err", perr)
	}
}

// jobEnv is the environment of job functions on this peel.
func (p *Peel) jobEnv() *funcs.Env {
	return &funcs.Env{PeelID: p.cfg.ID, MaxOutput: int(p.cfg.MaxOutput.N()), Facts: p.factsFor, Basket: p.basketGet, StateTree: p.stateTree}
}

// basketLookup is {{ basket TARGET NAME }} for the peel's settings
// renderer: entry name of every peel the compound target selects, by id,
// as a master answers it.
func (p *Peel) basketLookup(ctx context.Context, tgt, name string) (map[string]any, error) {
	return p.basketGet(ctx, string(target.KindCompound), tgt, name)
}

// basketGet asks a master's basket.get endpoint, signed with the peel's
// credentials (the masters let peels read every peel's entries).
func (p *Peel) basketGet(ctx context.Context, kind, tgt, name string) (map[string]any, error) {
	if err := names.ValidateBasketName(name); err != nil {
		return nil, err
	}
	// Ready is set once the connection exists (and the facts are out): it
	// orders this read of p.nc after Run's write.
	if !p.Ready() {
		return nil, errors.New("basket.get: the peel is not connected yet")
	}
	body, _ := json.Marshal(wire.BasketGetRequest{Target: wire.Target{Kind: kind, Expr: tgt}, Name: name})
	msg := &nats.Msg{Subject: names.APISubject(names.EndpointBasketGet), Data: body}
	s, err := p.apiSigner()
	if err != nil {
		return nil, err
	}
	if s != nil {
		if err := s.Sign(sig.API, msg, time.Now()); err != nil {
			return nil, err
		}
	}
	resp, err := p.nc.RequestMsgWithContext(ctxTimeout(ctx, basketCallTimeout), msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("basket.get: no master answers on %s: %w", msg.Subject, err)
		}
		return nil, fmt.Errorf("basket.get: %w", err)
	}
	if e := resp.Header.Get(micro.ErrorHeader); e != "" {
		return nil, fmt.Errorf("basket.get: master: %s", e)
	}
	var r wire.BasketGetResponse
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("basket.get: bad answer from master: %w", err)
	}
	out := make(map[string]any, len(r.Values))
	for id, raw := range r.Values {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("basket.get: value of %s: %w", id, err)
		}
		out[id] = v
	}
	return out, nil
}

// apiSigner signs the peel's requests to the master API with its
// credentials: the enrolled identity, or nats.creds; nil for an insecure
// peel without any.
func (p *Peel) apiSigner() (*sig.Signer, error) {
	switch {
	case p.ident != nil:
		tok := p.ident.JWT()
		seed, err := p.ident.kp.Seed()
		if err != nil || tok == "" {
			return nil, fmt.Errorf("basket.get: the peel has no credentials yet")
		}
		creds, err := jwt.FormatUserConfig(tok, seed)
		if err != nil {
			return nil, fmt.Errorf("basket.get: %w", err)
		}
		return sig.NewSigner(creds)
	case p.cfg.NATS.Creds != "":
		return sig.LoadSigner(p.cfg.NATS.Creds)
	}
	return nil, nil
}
