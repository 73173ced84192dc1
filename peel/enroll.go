package peel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/peel/facts"
)

// Enrollment, the peel's side (the exchange is described in package
// internal/enroll). The peel connects with the bootstrap credential
// (peel.yaml enroll_creds), proves it holds its nkey, and repeats until a
// master accepts it: by policy or token at once, or when an operator runs
// `zester enroll accept`, which also wakes it.

func (c *Config) validateEnroll(bad func(key, format string, a ...any)) {
	if c.EnrollCreds != "" && c.NATS.Creds != "" {
		bad("enroll_creds", "set either enroll_creds (enroll and use the credentials the masters issue) or nats.creds (fixed credentials), not both")
	}
	if c.EnrollToken != "" {
		if c.EnrollCreds == "" {
			bad("enroll_token", "needs enroll_creds")
		} else if err := enroll.CheckTokenFormat(c.EnrollToken); err != nil {
			bad("enroll_token", "%v", err)
		}
	}
}

// enroll runs the exchange until the peel is accepted (its JWT stored) or
// ctx ends. Refusals are logged and retried with a growing delay: an
// operator may resolve them (delete a conflicting record, accept a
// rejected one).
func (p *Peel) enroll(ctx context.Context) error {
	nc, err := nats.Connect(p.cfg.NATS.URL.String(),
		nats.Name("zester-peel "+p.cfg.ID+" (enrolling)"),
		nats.UserCredentials(p.cfg.EnrollCreds),
		// Every holder of enroll.creds may read below this prefix, and
		// nowhere else.
		nats.CustomInboxPrefix(names.EnrollInboxPrefix),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(backoff.New(time.Second, 30*time.Second).Delay),
		nats.IgnoreAuthErrorAbort(),
	)
	if err != nil {
		return fmt.Errorf("enroll: connect %s with %s: %w", config.Redact(p.cfg.NATS.URL.String()), p.cfg.EnrollCreds, err)
	}
	defer nc.Close()
	wake := make(chan struct{}, 1)
	if _, err := nc.Subscribe(names.EnrollWakeSubject(p.cfg.ID), func(*nats.Msg) { notify(wake) }); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	claim := enroll.Claim{ID: p.cfg.ID, Token: p.cfg.EnrollToken, Peel: Version, Facts: claimedFacts(ctx)}
	claim.Curve, _ = p.ident.curve.PublicKey()
	p.log.Info("enrolling", "nkey", p.ident.pub, "token", claim.Token != "")
	waiting := false
	// A fleet refused or kept waiting at once must not retry in step.
	wait := backoff.New(time.Second, time.Minute)
	for attempt := 1; ; attempt++ {
		res, err := enroll.Exchange(ctxTimeout(ctx, 15*time.Second), nc, p.ident.kp, claim)
		var ref *enroll.Refusal
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil && res.State == enroll.StateAccepted:
			if err := p.storeJWT(res.JWT); err != nil {
				return fmt.Errorf("enroll: %w", err)
			}
			p.log.Info("enrolled: the masters accepted this peel", "expires", time.Unix(p.ident.uc.Expires, 0).UTC())
			return nil
		case err == nil:
			if !waiting {
				p.log.Warn("waiting for an operator to accept this peel", "run", "zester enroll accept "+p.cfg.ID, "nkey", p.ident.pub)
				waiting = true
			}
			// A pending request is answered again at each attempt: the
			// delay may grow, the wake message cuts it short.
		case errors.As(err, &ref):
			p.log.Error("enrollment refused", "code", ref.Code, "reason", ref.Msg, "attempt", attempt)
		default:
			p.log.Warn("enrollment attempt failed", "err", err, "attempt", attempt)
		}
		t := time.NewTimer(wait.Next())
		woke := waitWake(ctx, t, wake)
		t.Stop()
		if !woke {
			return ctx.Err()
		}
	}
}

// claimedFacts are the fact groups a peel sends with its enrollment request,
// for auto-accept targets (G@os:id:debian, S@10.0.0.0/8): small, and claimed
// only.
func claimedFacts(ctx context.Context) map[string]any {
	f, err := facts.Collect(ctxTimeout(ctx, 10*time.Second))
	if err != nil {
		return nil
	}
	m, err := f.Map()
	if err != nil {
		return nil
	}
	out := map[string]any{}
	for _, k := range []string{"os", "kernel", "host", "virtualization"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	if n, ok := m["network"].(map[string]any); ok {
		out["network"] = map[string]any{"addresses": n["addresses"]}
	}
	return out
}
