package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
)

// The CLI retries what is safe to retry (connecting, binding buckets,
// reads, watches, and job.run, which is idempotent through the client's
// job id) while a JetStream leader is elected or a server comes back.
const (
	// retryBase and retryCap bound the backoff ceiling: 100 ms doubling to
	// 2 s. An election takes about 2 s, so the CLI tries several times
	// within one and at most every ~2 s after.
	retryBase = 100 * time.Millisecond
	retryCap  = 2 * time.Second
	// defaultBudget is how long a command keeps retrying one step when
	// nothing else bounds it: the masters' default job timeout.
	defaultBudget = 30 * time.Second
	// absentBudget is how long an answer that says "nobody is there" (no
	// master answers, the bucket does not exist) is retried: long enough
	// for a master or server that is restarting, short enough that an
	// operator without a master hears it at once.
	absentBudget = 5 * time.Second
	// attemptTimeout bounds one JetStream or API request.
	attemptTimeout = 5 * time.Second
)

// cliBackoff spaces the CLI's retries: full jitter, so that many clients
// retrying after the same fault do not retry in step.
var cliBackoff = backoff.New(retryBase, retryCap)

// backoffDelay is the wait before retry number attempt (0-based).
func backoffDelay(attempt int) time.Duration { return cliBackoff.Delay(attempt) }

// errClass says whether an error is worth another attempt.
type errClass int

const (
	// transient: an election, a timeout, a server going or coming back.
	transient errClass = iota
	// absent: a definite "nobody is there" answer (no responders, no such
	// bucket) that a restarting master or server can still turn around.
	absent
	// permanent: retrying cannot help (refused, bad request, permissions).
	permanent
)

// permanentErr marks an error that a retry loop must not retry.
type permanentErr struct{ err error }

func (p *permanentErr) Error() string { return p.err.Error() }
func (p *permanentErr) Unwrap() error { return p.err }

func stop(err error) error { return &permanentErr{err} }

func classify(err error) errClass {
	var pe *permanentErr
	var ae *jetstream.APIError
	switch {
	case errors.As(err, &pe),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrAuthorization),
		errors.Is(err, nats.ErrPermissionViolation),
		errors.Is(err, jetstream.ErrInvalidKey),
		errors.Is(err, jetstream.ErrInvalidBucketName),
		errors.Is(err, jetstream.ErrBadBucket):
		return permanent
	case errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrBucketNotFound),
		errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return absent
	case errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500:
		return permanent
	}
	return transient
}

// retry runs op until it succeeds, fails permanently, or the budget is
// spent, and returns op's last error wrapped with what was tried, through
// which server, how often and for how long. Each attempt gets its own
// timeout (attempt, at most what is left of the budget). The first retry
// is announced once on stderr, so an operator knows why the command waits.
func (a *app) retry(ctx context.Context, what string, budget, attempt time.Duration, op func(context.Context) error) error {
	if budget <= 0 {
		budget = defaultBudget
	}
	start := time.Now()
	until := start.Add(budget)
	var err error
	announced := false
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, min(attempt, max(time.Until(until), 10*time.Millisecond)))
		err = op(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return stopped(ctx, what, err)
		}
		class := classify(err)
		limit := until
		if class == absent {
			limit = start.Add(min(absentBudget, budget))
		}
		wait := backoffDelay(n)
		if class == permanent || time.Now().Add(wait).After(limit) {
			if class == permanent {
				return withCode(ExitError, fmt.Errorf("%s%s: %w", what, a.via(), err))
			}
			return withCode(ExitError, fmt.Errorf("%s%s: %w; %d attempts over %s", what, a.via(), err, n+1, time.Since(start).Round(100*time.Millisecond)))
		}
		if !announced {
			announced = true
			fmt.Fprintf(a.errOut, "zester: %s: %v; retrying for up to %s\n", what, err, time.Until(limit).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return stopped(ctx, what, err)
		case <-time.After(wait):
		}
	}
}

// stopped reports a retry loop ended by its context: Ctrl-C, or job wait's
// --timeout.
func stopped(ctx context.Context, what string, last error) error {
	if c := context.Cause(ctx); errors.Is(c, errGaveUp) {
		return withCode(ExitMissing, fmt.Errorf("%s: %v; last error: %w", what, c, last))
	}
	return withCode(ExitError, fmt.Errorf("%s: interrupted; last error: %w", what, last))
}

// via names the NATS server the CLI talks to, for error messages: " (via
// server n2 at nats://…)", or nothing before the CLI is connected.
func (a *app) via() string {
	if a.nc == nil {
		return ""
	}
	return " (via " + a.where() + ")"
}

// where names the NATS server the CLI talks to.
func (a *app) where() string {
	if a.nc.IsConnected() {
		name := a.nc.ConnectedServerName()
		if name == "" {
			return a.nc.ConnectedUrlRedacted()
		}
		return fmt.Sprintf("server %s at %s", name, a.nc.ConnectedUrlRedacted())
	}
	s := fmt.Sprintf("no server: %s to %s", a.nc.Status(), config.Redact(a.natsURL))
	if le := a.nc.LastError(); le != nil {
		s += fmt.Sprintf(", last connection error: %v", le)
	}
	return s
}
