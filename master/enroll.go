package master

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
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

// --- the peel's exchange -------------------------------------------------

func (s *enrollService) onEnroll(ctx context.Context, msg *nats.Msg) {
	req, claim, err := enroll.DecodeRequest(msg.Data)
	if err != nil {
		s.refuse(msg, "", "", enroll.Refuse(enroll.CodeBadRequest, "%v", err))
		return
	}
	switch req.Op {
	case enroll.OpHello:
		s.hello(ctx, msg, req)
	case enroll.OpProve:
		s.prove(ctx, msg, req, claim)
	}
}

// hello stores a fresh challenge for the id and key. A record that would
// refuse the key anyway (another key, rejected, revoked) is refused at once.
func (s *enrollService) hello(ctx context.Context, msg *nats.Msg, req *enroll.Request) {
	rec, _, err := s.record(ctx, req.ID)
	if err != nil {
		s.refuse(msg, req.ID, req.NKey, unavailable(err))
		return
	}
	if next, ref := enroll.CheckRecord(rec, &enroll.Claim{ID: req.ID, NKey: req.NKey}); next == enroll.Refused {
		s.refuse(msg, req.ID, req.NKey, ref)
		return
	}
	now := time.Now().UTC()
	ch := enroll.Challenge{ID: req.ID, NKey: req.NKey, Nonce: enroll.NewNonce(), Created: now, Expires: now.Add(s.cfg.ChallengeTTL.D())}
	b, _ := json.Marshal(ch)
	// A newer hello supersedes an outstanding challenge: a peel that lost
	// the reply asks again.
	if _, err := s.kvCh.Put(ctx, req.ID, b); err != nil {
		s.refuse(msg, req.ID, req.NKey, unavailable(err))
		return
	}
	respond(msg, enroll.Reply{Nonce: ch.Nonce, Expires: ch.Expires})
}

func (s *enrollService) prove(ctx context.Context, msg *nats.Msg, req *enroll.Request, claim *enroll.Claim) {
	id := claim.ID
	now := time.Now().UTC()
	var ch *enroll.Challenge
	var chRev uint64
	e, err := s.kvCh.Get(ctx, id)
	switch {
	case err == nil:
		if ch, err = enroll.DecodeChallenge(e.Value()); err != nil {
			s.refuse(msg, id, claim.NKey, unavailable(err))
			return
		}
		chRev = e.Revision()
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		s.refuse(msg, id, claim.NKey, unavailable(err))
		return
	}
	if ref := enroll.CheckProof(ch, req, claim, now); ref != nil {
		s.refuse(msg, id, claim.NKey, ref)
		return
	}
	used := *ch
	used.Used = true
	b, _ := json.Marshal(used)
	if _, err := s.kvCh.Update(ctx, id, b, chRev); err != nil {
		if isCASConflict(err) {
			s.refuse(msg, id, claim.NKey, enroll.Refuse(enroll.CodeChallengeReplayed, "the challenge for %q was answered concurrently by another proof (replayed)", id))
		} else {
			s.refuse(msg, id, claim.NKey, unavailable(err))
		}
		return
	}
	rec, rev, err := s.record(ctx, id)
	if err != nil {
		s.refuse(msg, id, claim.NKey, unavailable(err))
		return
	}
	next, ref := enroll.CheckRecord(rec, claim)
	switch next {
	case enroll.Refused:
		s.refuse(msg, id, claim.NKey, ref)
	case enroll.Reissue:
		s.reissue(ctx, msg, rec, rev, enroll.EvIssued)
	case enroll.Evaluate:
		s.evaluate(ctx, msg, rec, rev, claim, now)
	}
}

// evaluate decides a new request (rec nil) or a pending one with the same
// key: a token admits it, else the auto-accept policy, else it waits.
func (s *enrollService) evaluate(ctx context.Context, msg *nats.Msg, rec *enroll.Record, rev uint64, claim *enroll.Claim, now time.Time) {
	id := claim.ID
	if ref := s.checkKeyIndex(ctx, id, claim.NKey); ref != nil {
		s.refuse(msg, id, claim.NKey, ref)
		return
	}
	var by, via string
	switch {
	case claim.Token != "":
		tokID, ref := s.useToken(ctx, claim, now)
		if ref != nil {
			s.refuse(msg, id, claim.NKey, ref)
			return
		}
		by, via = "token", enroll.ViaToken(tokID)
	default:
		if t, ok := s.policy.Match(id, claim.Facts); ok {
			by, via = "policy", enroll.ViaPolicy(t)
		}
	}
	if via == "" && rec != nil {
		// Still pending: an answer, but nothing new to record.
		s.pending.Inc()
		respond(msg, enroll.Reply{State: enroll.StatePending})
		return
	}
	nr := enroll.Record{ID: id, State: enroll.StatePending, NKey: claim.NKey, Curve: claim.Curve, Facts: claim.Facts, PeelVersion: claim.Peel, Requested: now}
	if rec != nil {
		nr.Requested = rec.Requested
	}
	var tok string
	if via != "" {
		nr.State, nr.Decided, nr.DecidedBy, nr.Via = enroll.StateAccepted, now, by, via
		var err error
		if tok, err = s.issue(&nr); err != nil {
			s.refuse(msg, id, claim.NKey, unavailable(err))
			return
		}
	}
	if err := s.putRecord(ctx, &nr, rec != nil, rev); err != nil {
		s.refuse(msg, id, claim.NKey, unavailable(fmt.Errorf("record changed concurrently: %w", err)))
		return
	}
	if rec == nil {
		s.event(enroll.Event{Kind: enroll.EvRequested, Peel: id, NKey: claim.NKey, To: enroll.StatePending, Detail: "peel " + claim.Peel})
	}
	if nr.State == enroll.StateAccepted {
		s.bindKey(ctx, id, claim.NKey)
		s.accepted.Inc()
		s.event(enroll.Event{Kind: enroll.EvAccepted, Peel: id, NKey: claim.NKey, From: enroll.StatePending, To: enroll.StateAccepted, By: by, Via: via})
		respond(msg, enroll.Reply{State: enroll.StateAccepted, JWT: tok})
		return
	}
	s.pending.Inc()
	s.log.Info("peel asks to enroll", "peel", id, "nkey", claim.NKey, "accept_with", "zester enroll accept "+id)
	respond(msg, enroll.Reply{State: enroll.StatePending})
}

// reissue gives an accepted peel a fresh JWT (after re-enrollment with an
// expired or lost JWT, or a renewal) and records its validity.
func (s *enrollService) reissue(ctx context.Context, msg *nats.Msg, rec *enroll.Record, rev uint64, kind string) {
	tok, err := s.issue(rec)
	if err != nil {
		s.refuse(msg, rec.ID, rec.NKey, unavailable(err))
		return
	}
	// The record's issue dates are informational: a lost race with a
	// concurrent decision must not withhold a JWT that is valid.
	if err := s.putRecord(ctx, rec, true, rev); err != nil {
		s.log.Debug("record issue date not written", "peel", rec.ID, "err", err)
	}
	if kind == enroll.EvRenewed {
		s.renewals.Inc()
	}
	s.event(enroll.Event{Kind: kind, Peel: rec.ID, NKey: rec.NKey, Detail: "expires " + rec.Expires.Format(time.RFC3339)})
	respond(msg, enroll.Reply{State: enroll.StateAccepted, JWT: tok})
}

// issue signs the peel's user JWT and notes its dates in rec.
func (s *enrollService) issue(rec *enroll.Record) (string, error) {
	// A revocation covers every JWT of the key issued at or before its
	// second: a key revoked and accepted again within one second would get
	// a JWT that is dead on arrival.
	if at := s.p.RevokedAt(rec.NKey); at >= time.Now().Unix() {
		time.Sleep(time.Until(time.Unix(at+1, 0)))
	}
	tok, err := s.p.IssuePeel(pki.PeelSpec{ID: rec.ID, Partitions: s.m.cfg.Partitions}, rec.NKey, s.cfg.CredsExpiry.D())
	if err != nil {
		return "", err
	}
	iat, exp, err := jwtTimes(tok)
	if err != nil {
		return "", err
	}
	rec.Issued, rec.Expires = time.Unix(iat, 0).UTC(), time.Unix(exp, 0).UTC()
	return tok, nil
}

// jwtTimes reads the issue and expiry times of a JWT this master just
// signed, without verifying its signature again (jwt.DecodeUserClaims
// would: half the CPU of an issuance, measured in the enrollment storm).
func jwtTimes(tok string) (iat, exp int64, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, 0, errors.New("issued JWT: not three parts")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, 0, fmt.Errorf("issued JWT: %w", err)
	}
	var c struct {
		IAT int64 `json:"iat"`
		EXP int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, 0, fmt.Errorf("issued JWT: %w", err)
	}
	return c.IAT, c.EXP, nil
}

// useToken checks and spends the claim's token (compare-and-set on its
// entry: a one-time token admits one peel even when two masters race).
func (s *enrollService) useToken(ctx context.Context, claim *enroll.Claim, now time.Time) (string, *enroll.Refusal) {
	if err := enroll.CheckTokenFormat(claim.Token); err != nil {
		return "", enroll.Refuse(enroll.CodeBadToken, "%v (peel.yaml enroll_token)", err)
	}
	hash := enroll.HashToken(claim.Token)
	for attempt := 0; attempt < 8; attempt++ {
		e, err := s.kvRec.Get(ctx, names.EnrollTokenKey(hash))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", enroll.Refuse(enroll.CodeBadToken, "enrollment token %s… is unknown (deleted, or never created: zester enroll token create)", claim.Token[:min(len(claim.Token), 9)])
		}
		if err != nil {
			return "", unavailable(err)
		}
		t, err := enroll.DecodeToken(e.Value())
		if err != nil {
			return "", unavailable(err)
		}
		if err := t.Usable(claim.ID, claim.NKey, now); err != nil {
			return "", enroll.Refuse(enroll.CodeBadToken, "%v", err)
		}
		if t.Retry(claim.ID, claim.NKey) {
			return t.ID, nil
		}
		t.Use(claim.ID, claim.NKey, now)
		b, _ := json.Marshal(t)
		if _, err := s.kvRec.Update(ctx, names.EnrollTokenKey(hash), b, e.Revision()); err == nil {
			return t.ID, nil
		} else if !isCASConflict(err) {
			return "", unavailable(err)
		}
		jitterSleep(attempt)
	}
	return "", unavailable(errors.New("token entry contended"))
}

// checkKeyIndex refuses a key already accepted as another id. A stale index
// entry (its id's record is gone or holds another key) does not count.
func (s *enrollService) checkKeyIndex(ctx context.Context, id, nkey string) *enroll.Refusal {
	e, err := s.kvRec.Get(ctx, names.EnrollKeyIndexKey(nkey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return unavailable(err)
	}
	other := string(e.Value())
	if other == id {
		return nil
	}
	rec, _, err := s.record(ctx, other)
	if err != nil {
		return unavailable(err)
	}
	if rec != nil && rec.NKey == nkey {
		return enroll.Refuse(enroll.CodeKeyInUse, "key %s is enrolled as peel %q (%s); one key names one peel: %q cannot use it", nkey, other, rec.State, id)
	}
	return nil
}

func (s *enrollService) bindKey(ctx context.Context, id, nkey string) {
	if _, err := s.kvRec.Put(ctx, names.EnrollKeyIndexKey(nkey), []byte(id)); err != nil {
		s.log.Warn("key index not written", "peel", id, "err", err)
	}
}

func (s *enrollService) unbindKey(ctx context.Context, id, nkey string) {
	e, err := s.kvRec.Get(ctx, names.EnrollKeyIndexKey(nkey))
	if err != nil || string(e.Value()) != id {
		return
	}
	s.kvRec.Delete(ctx, names.EnrollKeyIndexKey(nkey), jetstream.LastRevision(e.Revision()))
}

// record reads a peel's record (nil when there is none).
func (s *enrollService) record(ctx context.Context, id string) (*enroll.Record, uint64, error) {
	e, err := s.kvRec.Get(ctx, names.EnrollRecordKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var r enroll.Record
	if err := r.Decode(id, e.Value()); err != nil {
		return nil, 0, err
	}
	return &r, e.Revision(), nil
}

// putRecord creates (exists false) or updates at revision rev.
func (s *enrollService) putRecord(ctx context.Context, r *enroll.Record, exists bool, rev uint64) error {
	b, _ := json.Marshal(r)
	var err error
	if exists {
		_, err = s.kvRec.Update(ctx, names.EnrollRecordKey(r.ID), b, rev)
	} else {
		_, err = s.kvRec.Create(ctx, names.EnrollRecordKey(r.ID), b)
	}
	return err
}

func isCASConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// casRetry paces the retries of a contended compare-and-set.
var casRetry = backoff.New(time.Millisecond, 256*time.Millisecond)

// jitterSleep waits before retry attempt n (0-based) of a contended
// compare-and-set.
func jitterSleep(n int) { time.Sleep(casRetry.Delay(n)) }

// --- renewal over the peel's own credentials -----------------------------

func (s *enrollService) onRenew(ctx context.Context, msg *nats.Msg) {
	// The subject carries the id, and only that peel's credentials may
	// publish there; the signature proves it still holds its key.
	id, ok := names.ParseEnrollRenewSubject(msg.Subject)
	if !ok || names.ValidateID(id) != nil {
		s.refuse(msg, "", "", enroll.Refuse(enroll.CodeBadRequest, "renewal subject %q names no peel", msg.Subject))
		return
	}
	c, err := enroll.DecodeRenew(msg.Data, time.Now())
	if err != nil {
		s.refuse(msg, id, "", enroll.Refuse(enroll.CodeBadRequest, "%v", err))
		return
	}
	if c.ID != id {
		s.refuse(msg, id, c.NKey, enroll.Refuse(enroll.CodeIDMismatch, "renewal sent on the subject of %q claims to be %q", id, c.ID))
		return
	}
	rec, rev, err := s.record(ctx, id)
	if err != nil {
		s.refuse(msg, id, c.NKey, unavailable(err))
		return
	}
	switch {
	case rec == nil:
		s.refuse(msg, id, c.NKey, enroll.Refuse(enroll.CodeNotEnrolled, "peel %q has no enrollment record: enroll again", id))
	case rec.NKey != c.NKey:
		s.refuse(msg, id, c.NKey, enroll.Refuse(enroll.CodeConflict, "peel %q is enrolled with key %s, not %s", id, rec.NKey, c.NKey))
	case rec.State == enroll.StateRevoked:
		s.refuse(msg, id, c.NKey, enroll.Refuse(enroll.CodeRevoked, "peel %q was revoked (%s)", id, rec.DecidedBy))
	case rec.State != enroll.StateAccepted:
		s.refuse(msg, id, c.NKey, enroll.Refuse(enroll.CodeNotEnrolled, "peel %q is %s, not accepted", id, rec.State))
	default:
		s.reissue(ctx, msg, rec, rev, enroll.EvRenewed)
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
