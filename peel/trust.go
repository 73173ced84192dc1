package peel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/wire"
)

// What a peel accepts from the masters (docs/security.md, "Signed jobs"):
// a dispatch runs only when a master of the peel's own PKI signed it, its
// deadline has not passed and its job id was not accepted before; a control
// message acts only when a master signed it within controlMaxAge. Everything
// else is refused, counted by reason and reported in an event.

// controlMaxAge bounds the age of a control message (and the clock skew
// between master and peel it tolerates).
const controlMaxAge = 5 * time.Minute

// Refusal reasons of the peel itself, beside sig.Reasons.
const (
	reasonNoDeadline = "no_deadline"
	reasonExpired    = "past_deadline"
	reasonMalformed  = "malformed"
	reasonSeenSet    = "seen_set_unwritable"
)

// errNoTrust is the start-up error of a secure peel that has nothing to
// learn its masters' keys from.
var errNoTrust = errors.New("config key nats.creds: empty: a peel runs only dispatches signed by a master of its PKI, and learns which from its credentials (zester pki peel add ID, or enroll_creds to enroll and get them); set insecure: true only for a lab without a PKI")

// trust is the peel's side of signed messages.
type trust struct {
	insecure bool
	// v checks the masters' signatures; nil until the peel has
	// credentials (insecure without any, or enrolling).
	v atomic.Pointer[sig.Verifier]

	refusedDispatch map[string]*metrics.Counter
	refusedControl  map[string]*metrics.Counter

	evMu     sync.Mutex
	evLast   map[string]time.Time // reason → last event published
	evHidden map[string]int       // reason → refusals since, not reported
}

// newTrust builds the trust of a peel from its configuration: the issuer of
// its credentials' JWT is the key the masters' JWT must be issued by.
func newTrust(cfg Config, set *metrics.Set) (*trust, error) {
	t := &trust{
		insecure:        cfg.Insecure,
		refusedDispatch: map[string]*metrics.Counter{},
		refusedControl:  map[string]*metrics.Counter{},
		evLast:          map[string]time.Time{},
		evHidden:        map[string]int{},
	}
	for _, r := range append(sig.Reasons(), reasonNoDeadline, reasonExpired, reasonMalformed, reasonSeenSet) {
		t.refusedDispatch[r] = set.GetOrCreateCounter(fmt.Sprintf(`zester_peel_dispatch_refused_total{reason=%q}`, r))
	}
	for _, r := range sig.Reasons() {
		t.refusedControl[r] = set.GetOrCreateCounter(fmt.Sprintf(`zester_peel_control_refused_total{reason=%q}`, r))
	}
	if cfg.NATS.Creds == "" {
		if cfg.EnrollCreds != "" {
			// The trust comes with the JWT enrollment issues (creds.go):
			// until then no dispatch is accepted.
			return t, nil
		}
		if !cfg.Insecure {
			return nil, errNoTrust
		}
		return t, nil
	}
	b, err := os.ReadFile(cfg.NATS.Creds)
	if err != nil {
		return nil, fmt.Errorf("config key nats.creds: %w", err)
	}
	tr, err := sig.TrustFromCreds(b)
	if err != nil {
		return nil, fmt.Errorf("config key nats.creds: %s: %w", cfg.NATS.Creds, err)
	}
	t.v.Store(sig.NewVerifier(tr))
	return t, nil
}

// setTrustJWT replaces the trust with the issuer of a new user JWT of this
// peel (credentials renewed or received at enrollment).
func (t *trust) setTrustJWT(tok string) error {
	tr, err := sig.TrustFromUserJWT(tok)
	if err != nil {
		return err
	}
	if v := t.v.Load(); v != nil {
		v.SetTrust(tr)
		return nil
	}
	t.v.Store(sig.NewVerifier(tr))
	return nil
}

var masterSigner = sig.Options{Roles: []string{sig.RoleMaster}}

// verify checks a message's master signature. An insecure peel accepts an
// unsigned message, and a signed one without checking when it has no
// trust; a secure peel without trust yet (enrolling) accepts nothing.
func (t *trust) verify(p sig.Purpose, msg *nats.Msg, o sig.Options) error {
	v := t.v.Load()
	if v == nil {
		if t.insecure {
			return nil // nothing to check against
		}
		return fmt.Errorf("%w: the peel has no credentials yet, so no master key to check against", sig.ErrUntrusted)
	}
	_, err := v.VerifyMsg(p, msg, time.Now(), o)
	if err != nil && t.insecure && errors.Is(err, sig.ErrUnsigned) {
		return nil
	}
	return err
}

// refuseDispatch counts a refused dispatch and reports it (rate-limited).
func (p *Peel) refuseDispatch(reason, subject, jid string, err error) {
	if c := p.trust.refusedDispatch[reason]; c != nil {
		c.Inc()
	}
	p.refusalEvent("dispatch-refused", reason, subject, jid, err)
}

// refuseControl counts a refused control message and reports it.
func (p *Peel) refuseControl(reason, subject string, err error) {
	if c := p.trust.refusedControl[reason]; c != nil {
		c.Inc()
	}
	p.refusalEvent("control-refused", reason, subject, "", err)
}

// refusalEvent publishes at most one event per kind and reason a second on
// the peel's event subject (stored in job-events), with the number of
// refusals it stands for: a flood of forged messages to a partition must not
// become a flood of events from every peel in it.
func (p *Peel) refusalEvent(kind, reason, subject, jid string, err error) {
	t := p.trust
	key := kind + "/" + reason
	now := time.Now()
	t.evMu.Lock()
	if now.Sub(t.evLast[key]) < time.Second {
		t.evHidden[key]++
		t.evMu.Unlock()
		return
	}
	hidden := t.evHidden[key]
	t.evLast[key], t.evHidden[key] = now, 0
	t.evMu.Unlock()
	detail := fmt.Sprintf("reason=%s subject=%s: %v", reason, subject, err)
	if hidden > 0 {
		detail += fmt.Sprintf(" (and %d more refused since the last report)", hidden)
	}
	p.log.Warn("refused a message from the masters' subjects", "kind", kind, "reason", reason, "subject", subject, "jid", jid, "err", err)
	b, _ := json.Marshal(wire.Event{JID: jid, Kind: kind, Time: now.UTC(), Peel: p.cfg.ID, Detail: detail})
	if p.nc != nil {
		if perr := p.nc.Publish(names.PeelEventSubject(p.cfg.ID, kind), b); perr != nil {
			p.log.Debug("refusal event not sent", "err", perr)
		}
	}
}

// admit decides whether a dispatch runs: it is well formed, addressed to
// this peel, signed by a master (unless insecure), before its deadline, and
// its job id was not accepted before. The order keeps the cost of traffic
// for other peels low: a dispatch that does not name this peel is dropped
// before its signature is checked.
func (p *Peel) admit(msg *nats.Msg) (wire.Dispatch, bool) {
	var d wire.Dispatch
	if err := json.Unmarshal(msg.Data, &d); err != nil || d.JID == "" {
		if err == nil {
			err = errors.New("no job id")
		}
		p.met.badDispatch.Inc()
		p.refuseDispatch(reasonMalformed, msg.Subject, "", err)
		return d, false
	}
	if !peelproto.Addressed(&d, p.cfg.ID) {
		return d, false
	}
	if err := p.trust.verify(sig.Dispatch, msg, masterSigner); err != nil {
		p.refuseDispatch(sig.Reason(err), msg.Subject, d.JID, err)
		return d, false
	}
	now := time.Now()
	keep := d.Deadline
	switch {
	case d.Deadline.IsZero() && !p.trust.insecure:
		// A signed dispatch without a deadline could be replayed forever
		// once its id leaves the seen set.
		p.refuseDispatch(reasonNoDeadline, msg.Subject, d.JID, errors.New("dispatch has no deadline"))
		return d, false
	case d.Deadline.IsZero():
		keep = now.Add(time.Hour)
	case !d.Deadline.After(now):
		p.refuseDispatch(reasonExpired, msg.Subject, d.JID, fmt.Errorf("deadline %s has passed (peel clock %s)", d.Deadline.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano)))
		return d, false
	}
	fresh, err := p.jobsSeen.add(d.JID, keep, now)
	if err != nil {
		// Running it without a record would let a replay after a restart
		// run it again: refuse, and say so in a return.
		p.refuseDispatch(reasonSeenSet, msg.Subject, d.JID, err)
		p.deliver(&wire.Return{JID: d.JID, Peel: p.cfg.ID, Function: d.Function, Started: now.UTC(),
			Error: &wire.Error{Code: "refused", Msg: "the peel cannot record the job as seen, so it does not run it: " + err.Error()}})
		return d, false
	}
	if !fresh {
		// A re-sent dispatch (the masters send again to peels that have
		// not answered) or a replay: it ran, or runs, once.
		p.met.dupDispatch.Inc()
		return d, false
	}
	return d, true
}
