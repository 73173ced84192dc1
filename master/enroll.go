package master

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
)

// Enrollment, the masters' side (the exchange is described in package
// internal/enroll). Every master serves it in one queue group; any master
// may handle any step, because all state is in JetStream:
//
//   - enroll-challenges (memory, 5 min TTL): the outstanding nonce of each id,
//     marked used by the one proof that answers it (compare-and-set);
//   - enrollments: the record of each peel (key: id, 10 revisions of history),
//     the token entries (_token.<sha256>), the key index (_key.<nkey>: one
//     key, one id) and the revocation list (_revocations);
//   - job-events: an audit event for every decision, with who decided.
//
// Revocation must reach the NATS servers within seconds and must survive
// the next re-signing of the account JWT by any master, though each master
// holds its own copy of the PKI directory. So the list of revoked keys is
// shared state in the enrollments bucket: a revocation is a compare-and-set
// on that list; every master watches it, merges it into its account JWT
// (pki.MergeRevocations) and hands the result to the servers — the embedded
// server directly, others with the system user's credentials on
// $SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE. The key is revoked in the
// account JWT before the record says revoked, so a crash in between fails
// closed.

// EnrollConfig is the enroll: section of master.yaml.
type EnrollConfig struct {
	// AutoAccept lists targets (the -C compound language) that accept a
	// new peel without an operator's decision. They match the id and facts
	// the peel claims (not verified): see docs/security.md.
	AutoAccept []string `yaml:"auto_accept"`
	// CredsExpiry is the validity of an issued peel JWT; peels renew at two
	// thirds of it.
	CredsExpiry config.Duration `yaml:"creds_expiry"`
	// ChallengeTTL is how long a challenge may be answered (at most the
	// enroll-challenges bucket's TTL, 5 minutes).
	ChallengeTTL config.Duration `yaml:"challenge_ttl"`
}

func defaultEnrollConfig() EnrollConfig {
	return EnrollConfig{CredsExpiry: config.Dur(30 * 24 * time.Hour), ChallengeTTL: config.Dur(5 * time.Minute)}
}

func (c *EnrollConfig) validate(bad func(key, format string, a ...any), nodegroups map[string]string) {
	if _, err := enroll.NewPolicy(c.AutoAccept, nodegroups); err != nil {
		bad("enroll.auto_accept", "%v", err)
	}
	if d := c.CredsExpiry.D(); d < 10*time.Second || d > 366*24*time.Hour {
		bad("enroll.creds_expiry", "%s: want 10s to 366 days", d)
	}
	if d := c.ChallengeTTL.D(); d < time.Second || d > 5*time.Minute {
		bad("enroll.challenge_ttl", "%s: want 1s to 5m (the enroll-challenges bucket keeps entries 5 minutes)", d)
	}
}

// enrollWorkers bounds the requests handled at once (each is a few KV round
// trips): an enrollment storm queues instead of spawning a goroutine per
// request.
const enrollWorkers = 16

type enrollService struct {
	m      *Master
	p      *pki.PKI
	cfg    EnrollConfig
	policy *enroll.Policy
	log    *slog.Logger

	kvRec, kvCh jetstream.KeyValue
	work        chan *nats.Msg
	quit        chan struct{}
	subs        []*nats.Subscription
	wg          sync.WaitGroup

	// Revocations applied to the servers: the revision of _revocations last
	// handed to them, and the error of that attempt.
	revMu      sync.Mutex
	revApplied uint64
	revErr     error
	revChanged chan struct{} // closed and replaced on every change

	sysMu       sync.Mutex
	sysNC       *nats.Conn
	warnedNoSys atomic.Bool

	refused limiter

	requests, accepted, pending, refusals, renewals, badReply *metrics.Counter
}

// startEnroll serves enrollment when the master has a PKI (pki_dir; an
// insecure master has none and enrolls nobody).
func (m *Master) startEnroll(ctx context.Context) error {
	if m.pki == nil {
		m.log.Info("enrollment off: insecure, no PKI")
		return nil
	}
	pol, err := enroll.NewPolicy(m.cfg.Enroll.AutoAccept, m.cfg.Nodegroups)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	set := m.opts.Metrics
	s := &enrollService{
		m: m, p: m.pki, cfg: m.cfg.Enroll, policy: pol,
		log:        m.log.With("component", "master.enroll"),
		work:       make(chan *nats.Msg, 4096),
		quit:       make(chan struct{}),
		revChanged: make(chan struct{}),
		refused:    limiter{perSecond: 20},
		requests:   set.NewCounter(`zester_master_enroll_requests_total`),
		accepted:   set.NewCounter(`zester_master_enroll_accepted_total`),
		pending:    set.NewCounter(`zester_master_enroll_pending_total`),
		refusals:   set.NewCounter(`zester_master_enroll_refused_total`),
		renewals:   set.NewCounter(`zester_master_enroll_renewals_total`),
		badReply:   set.NewCounter(`zester_master_enroll_bad_reply_total`),
	}
	if s.kvRec, err = m.js.KeyValue(ctx, names.BucketEnrollments); err != nil {
		return fmt.Errorf("enroll: bucket %s: %w", names.BucketEnrollments, err)
	}
	if s.kvCh, err = m.js.KeyValue(ctx, names.BucketEnrollChallenges); err != nil {
		return fmt.Errorf("enroll: bucket %s: %w", names.BucketEnrollChallenges, err)
	}
	if err := s.watchRevocations(ctx); err != nil {
		return err
	}
	for _, subj := range []string{names.SubjectEnroll, names.SubjectEnrollRenewAll, names.SubjectEnrollAdminAll} {
		sub, err := m.nc.QueueSubscribe(subj, names.EnrollQueue, s.enqueue)
		if err != nil {
			return fmt.Errorf("enroll: subscribe %s: %w", subj, err)
		}
		sub.SetPendingLimits(-1, 64<<20)
		s.subs = append(s.subs, sub)
	}
	for range enrollWorkers {
		s.wg.Add(1)
		go s.worker()
	}
	m.enroll.Store(s)
	go func() {
		<-m.done
		s.stop()
	}()
	s.log.Info("enrollment on", "auto_accept", len(m.cfg.Enroll.AutoAccept), "creds_expiry", s.cfg.CredsExpiry.D())
	return nil
}

func (s *enrollService) stop() {
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	close(s.quit)
	s.wg.Wait()
	s.sysMu.Lock()
	if s.sysNC != nil {
		s.sysNC.Close()
	}
	s.sysMu.Unlock()
}

func (s *enrollService) enqueue(msg *nats.Msg) {
	select {
	case s.work <- msg:
	case <-s.quit:
	}
}

func (s *enrollService) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.quit:
			return
		case msg := <-s.work:
			s.handle(msg)
		}
	}
}

func (s *enrollService) handle(msg *nats.Msg) {
	// The server checks the requester's right to publish the subject, never
	// its reply subject: a reply that is not an inbox would let anyone who
	// may ask (any holder of enroll.creds) make the master write there.
	if !names.IsInbox(msg.Reply) {
		s.badReply.Inc()
		s.log.Debug("enrollment request whose reply is not an inbox: dropped", "subject", msg.Subject, "reply", msg.Reply)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s.requests.Inc()
	switch {
	case msg.Subject == names.SubjectEnroll:
		s.onEnroll(ctx, msg)
	case strings.HasPrefix(msg.Subject, names.EnrollRenewSubject("")):
		s.onRenew(ctx, msg)
	default:
		s.onAdmin(ctx, msg)
	}
}

func respond(msg *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	msg.Respond(b)
}

// refuse answers with a refusal and, for refusals that matter to security,
// records an event (rate limited: a holder of enroll.creds could otherwise
// flood job-events, whose old entries a full stream discards).
func (s *enrollService) refuse(msg *nats.Msg, id, nkey string, r *enroll.Refusal) {
	s.refusals.Inc()
	respond(msg, enroll.Reply{Error: r})
	switch r.Code {
	case enroll.CodeBadRequest, enroll.CodeNoChallenge, enroll.CodeChallengeExpired, enroll.CodeUnavailable, enroll.CodeRejected, enroll.CodeNotEnrolled:
		s.log.Debug("enrollment refused", "peel", id, "code", r.Code, "msg", r.Msg)
		return
	}
	s.log.Warn("enrollment refused", "peel", id, "nkey", nkey, "code", r.Code, "msg", r.Msg)
	if s.refused.allow(time.Now()) {
		s.event(enroll.Event{Kind: enroll.EvRefused, Peel: id, NKey: nkey, Code: r.Code, Detail: r.Msg})
	}
}

func unavailable(err error) *enroll.Refusal {
	return enroll.Refuse(enroll.CodeUnavailable, "the master could not complete the request (%v): try again", err)
}

// event appends an audit event to job-events.
func (s *enrollService) event(ev enroll.Event) {
	ev.Master = s.m.cfg.ID
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	subj := names.EnrollEventSubject(ev.Peel, ev.Kind)
	if ev.Peel == "" {
		subj = names.EnrollTokenEventSubject(ev.Kind)
	}
	b, _ := json.Marshal(ev)
	if _, err := s.m.js.PublishAsync(subj, b); err != nil {
		s.m.met.errors.Inc()
		s.log.Warn("enrollment event", "peel", ev.Peel, "kind", ev.Kind, "err", err)
	}
}

// --- decisions ------------------------------------------------------------

// limiter allows perSecond events a second.
type limiter struct {
	perSecond int
	mu        sync.Mutex
	second    int64
	n         int
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := now.Unix(); s != l.second {
		l.second, l.n = s, 0
	}
	l.n++
	return l.n <= l.perSecond
}
