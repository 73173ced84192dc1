package master

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
	"github.com/zester-io/zester/internal/kvwatch"
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

func (s *enrollService) onAdmin(ctx context.Context, msg *nats.Msg) {
	op := strings.TrimPrefix(msg.Subject, names.EnrollAdminSubject(""))
	var req enroll.AdminRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		respond(msg, enroll.AdminReply{Error: "request: " + err.Error()})
		return
	}
	now := time.Now().UTC()
	// The caller signs its request (sig.API, as for the master API) and
	// must hold the admin role; NATS already keeps everyone else off these
	// subjects (they lie outside the API's prefix).
	c, err := s.m.verifyCaller(msg.Subject, msg.Header, msg.Data, accessAdmin)
	if err != nil {
		s.log.Warn("enrollment decision refused", "op", op, "err", err)
		respond(msg, enroll.AdminReply{Error: err.Error()})
		return
	}
	by, verified := c.describe(""), c.Verified
	var rep enroll.AdminReply
	switch op {
	case enroll.AdminList:
		rep, err = s.list(ctx, &req)
	case enroll.AdminAccept, enroll.AdminReject, enroll.AdminRevoke, enroll.AdminDelete:
		rep, err = s.decide(ctx, enroll.Action(op), &req, by, verified, now)
	case enroll.AdminTokenCreate:
		rep, err = s.tokenCreate(ctx, &req, by, now)
	case enroll.AdminTokenList:
		rep, err = s.tokenList(ctx)
	case enroll.AdminTokenDelete:
		rep, err = s.tokenDelete(ctx, &req, by)
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	rep.By = by
	respond(msg, rep)
}

// allRecords reads every peel record with its revision, sorted by id.
func (s *enrollService) allRecords(ctx context.Context) ([]recordRev, error) {
	w, err := kvwatch.Watch(ctx, s.m.js, names.BucketEnrollments, kvwatch.Options{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []recordRev
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				slices.SortFunc(out, func(a, b recordRev) int { return strings.Compare(a.rec.ID, b.rec.ID) })
				return out, nil
			}
			if e.Operation() != jetstream.KeyValuePut || names.IsEnrollReservedKey(e.Key()) {
				continue
			}
			var r enroll.Record
			if err := r.Decode(e.Key(), e.Value()); err != nil {
				s.log.Warn("skipping a bad enrollment record", "key", e.Key(), "err", err)
				continue
			}
			out = append(out, recordRev{rec: r, rev: e.Revision()})
		}
	}
}

type recordRev struct {
	rec enroll.Record
	rev uint64
}

func (s *enrollService) list(ctx context.Context, req *enroll.AdminRequest) (enroll.AdminReply, error) {
	all, err := s.allRecords(ctx)
	if err != nil {
		return enroll.AdminReply{}, err
	}
	var sel *enroll.Selector
	if len(req.Targets) > 0 || req.AllPending {
		if sel, err = enroll.NewSelector(req.Targets, req.AllPending); err != nil {
			return enroll.AdminReply{}, err
		}
	}
	rep := enroll.AdminReply{Records: []enroll.Record{}}
	size := 0
	for _, r := range all {
		if r.rec.ID <= req.After || sel != nil && !sel.Match(&r.rec) {
			continue
		}
		if size >= enroll.PageBytes {
			rep.More = true
			break
		}
		b, _ := json.Marshal(r.rec)
		size += len(b)
		rep.Records = append(rep.Records, r.rec)
		rep.Last = r.rec.ID
	}
	return rep, nil
}

// decide applies one action to every selected record. A dry run reports
// what would change. With Expect, only the records the operator confirmed,
// still holding the keys shown, change.
func (s *enrollService) decide(ctx context.Context, act enroll.Action, req *enroll.AdminRequest, by string, verified bool, now time.Time) (enroll.AdminReply, error) {
	rep := enroll.AdminReply{Changed: []enroll.Change{}}
	var sel *enroll.Selector
	var recs []recordRev
	if req.Expect != nil {
		// The confirmed records, read one by one: a confirmation of a few
		// hundred peels needs no scan of the fleet's records.
		if len(req.Expect) > enroll.MaxExpect {
			return rep, fmt.Errorf("%d confirmed records in one request, at most %d", len(req.Expect), enroll.MaxExpect)
		}
		for _, id := range slices.Sorted(maps.Keys(req.Expect)) {
			rec, rev, err := s.record(ctx, id)
			if err != nil {
				return rep, err
			}
			if rec == nil {
				rep.Skipped = append(rep.Skipped, enroll.Skip{ID: id, Reason: "gone since the confirmation"})
				continue
			}
			recs = append(recs, recordRev{rec: *rec, rev: rev})
		}
	} else {
		var err error
		if sel, err = enroll.NewSelector(req.Targets, req.AllPending); err != nil {
			return rep, err
		}
		if recs, err = s.allRecords(ctx); err != nil {
			return rep, err
		}
	}
	size := 0
	for _, rr := range recs {
		rec := rr.rec
		if sel != nil && (rec.ID <= req.After || !sel.Match(&rec)) {
			continue
		}
		// A dry run answers in pages (the CLI asks for the rest).
		if req.DryRun && size >= enroll.PageBytes {
			rep.More = true
			break
		}
		size += 200
		rep.Last = rec.ID
		skip := func(reason string) {
			rep.Skipped = append(rep.Skipped, enroll.Skip{ID: rec.ID, State: rec.State, Reason: reason})
		}
		to, revokeKey, err := enroll.Transition(rec.State, act)
		if err != nil {
			if enroll.IsNoop(err) {
				skip("already " + string(rec.State))
			} else {
				skip(err.Error())
			}
			continue
		}
		if req.Expect != nil && req.Expect[rec.ID] != rec.NKey {
			skip("its key changed since the confirmation (now " + rec.NKey + "): ask again")
			continue
		}
		if act == enroll.ActAccept {
			if ref := s.checkKeyIndex(ctx, rec.ID, rec.NKey); ref != nil {
				skip(ref.Msg)
				continue
			}
		}
		ch := enroll.Change{ID: rec.ID, NKey: rec.NKey, From: rec.State, To: to}
		if req.DryRun {
			rep.Changed = append(rep.Changed, ch)
			continue
		}
		if revokeKey {
			if err := s.revoke(ctx, rec.NKey, now); err != nil {
				skip("revocation failed, nothing changed: " + err.Error())
				continue
			}
		}
		if to == "" {
			if err := s.kvRec.Delete(ctx, names.EnrollRecordKey(rec.ID), jetstream.LastRevision(rr.rev)); err != nil {
				skip("not deleted (changed concurrently?): " + err.Error())
				continue
			}
			s.unbindKey(ctx, rec.ID, rec.NKey)
		} else {
			nr := rec
			nr.State, nr.Decided, nr.DecidedBy, nr.Verified, nr.Via, nr.Reason = to, now, by, verified, enroll.ViaManual, req.Reason
			if err := s.putRecord(ctx, &nr, true, rr.rev); err != nil {
				skip("not changed (changed concurrently?): " + err.Error())
				continue
			}
			if to == enroll.StateAccepted {
				s.bindKey(ctx, rec.ID, rec.NKey)
				s.accepted.Inc()
			}
		}
		s.event(enroll.Event{Kind: enroll.KindOf(to), Peel: rec.ID, NKey: rec.NKey, From: rec.State, To: to, By: by, Verified: verified, Via: enroll.ViaManual, Detail: req.Reason})
		// A waiting peel asks again at once.
		s.m.nc.Publish(names.EnrollWakeSubject(rec.ID), nil)
		rep.Changed = append(rep.Changed, ch)
	}
	return rep, nil
}

func (s *enrollService) tokenCreate(ctx context.Context, req *enroll.AdminRequest, by string, now time.Time) (enroll.AdminReply, error) {
	if req.TokenTTL < 0 {
		return enroll.AdminReply{}, fmt.Errorf("token expiry %s: negative", req.TokenTTL)
	}
	if len(req.Note) > 200 {
		return enroll.AdminReply{}, fmt.Errorf("token note: %d characters, at most 200", len(req.Note))
	}
	secret, hash := enroll.NewToken()
	t := enroll.Token{ID: enroll.TokenID(hash), Reusable: req.Reusable, Created: now, CreatedBy: by, Note: req.Note}
	if req.TokenTTL > 0 {
		t.Expires = now.Add(req.TokenTTL)
	}
	b, _ := json.Marshal(t)
	if _, err := s.kvRec.Create(ctx, names.EnrollTokenKey(hash), b); err != nil {
		return enroll.AdminReply{}, fmt.Errorf("store token: %w", err)
	}
	s.event(enroll.Event{Kind: enroll.EvTokenCreated, By: by, Via: "token " + t.ID, Detail: fmt.Sprintf("reusable=%t expires=%s", t.Reusable, t.Expires.Format(time.RFC3339))})
	return enroll.AdminReply{Tokens: []enroll.Token{t}, Secret: secret}, nil
}

// tokens reads every token entry, keyed by hash.
func (s *enrollService) tokens(ctx context.Context) (map[string]enroll.Token, error) {
	w, err := kvwatch.Watch(ctx, s.m.js, names.BucketEnrollments, kvwatch.Options{Filters: []string{names.EnrollTokenFilter}})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	out := map[string]enroll.Token{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			hash, ok := names.ParseEnrollTokenKey(e.Key())
			if !ok || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if t, err := enroll.DecodeToken(e.Value()); err == nil {
				out[hash] = *t
			}
		}
	}
}

func (s *enrollService) tokenList(ctx context.Context) (enroll.AdminReply, error) {
	all, err := s.tokens(ctx)
	if err != nil {
		return enroll.AdminReply{}, err
	}
	rep := enroll.AdminReply{Tokens: []enroll.Token{}}
	for _, t := range all {
		rep.Tokens = append(rep.Tokens, t)
	}
	slices.SortFunc(rep.Tokens, func(a, b enroll.Token) int { return a.Created.Compare(b.Created) })
	return rep, nil
}

func (s *enrollService) tokenDelete(ctx context.Context, req *enroll.AdminRequest, by string) (enroll.AdminReply, error) {
	if len(req.TokenIDs) == 0 {
		return enroll.AdminReply{}, errors.New("no token id given")
	}
	all, err := s.tokens(ctx)
	if err != nil {
		return enroll.AdminReply{}, err
	}
	rep := enroll.AdminReply{Tokens: []enroll.Token{}}
	for _, id := range req.TokenIDs {
		found := false
		for hash, t := range all {
			if t.ID != id {
				continue
			}
			found = true
			if err := s.kvRec.Delete(ctx, names.EnrollTokenKey(hash)); err != nil {
				return rep, fmt.Errorf("delete token %s: %w", id, err)
			}
			s.event(enroll.Event{Kind: enroll.EvTokenDeleted, By: by, Via: "token " + id})
			rep.Tokens = append(rep.Tokens, t)
		}
		if !found {
			rep.Skipped = append(rep.Skipped, enroll.Skip{ID: id, Reason: "no such token"})
		}
	}
	return rep, nil
}

// --- revocation -----------------------------------------------------------

// revoke adds nkey to the shared revocation list (compare-and-set) and
// waits until this master has handed the re-signed account JWT to the
// servers.
func (s *enrollService) revoke(ctx context.Context, nkey string, now time.Time) error {
	at := now.Unix()
	var wrote uint64
	for attempt := 0; ; attempt++ {
		revs := map[string]int64{}
		var rev uint64
		e, err := s.kvRec.Get(ctx, names.EnrollRevocationsKey)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &revs); err != nil {
				return fmt.Errorf("%s: %w", names.EnrollRevocationsKey, err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return err
		}
		if cur, ok := revs[nkey]; ok && cur >= at {
			wrote = rev
			break
		}
		revs[nkey] = at
		b, _ := json.Marshal(revs)
		if rev == 0 {
			wrote, err = s.kvRec.Create(ctx, names.EnrollRevocationsKey, b)
		} else {
			wrote, err = s.kvRec.Update(ctx, names.EnrollRevocationsKey, b, rev)
		}
		if err == nil {
			break
		}
		if !isCASConflict(err) || attempt >= 20 {
			return fmt.Errorf("revocation list: %w", err)
		}
		jitterSleep(attempt)
	}
	return s.waitApplied(ctx, wrote)
}

func (s *enrollService) waitApplied(ctx context.Context, rev uint64) error {
	for {
		s.revMu.Lock()
		applied, err, ch := s.revApplied, s.revErr, s.revChanged
		s.revMu.Unlock()
		if applied >= rev {
			if err != nil {
				return fmt.Errorf("the revocation is recorded, but the servers were not told: %w", err)
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("revocation not applied: %w", ctx.Err())
		}
	}
}

func (s *enrollService) setApplied(rev uint64, err error) {
	s.revMu.Lock()
	s.revApplied, s.revErr = rev, err
	close(s.revChanged)
	s.revChanged = make(chan struct{})
	s.revMu.Unlock()
}

// watchRevocations follows the shared revocation list: every change is
// merged into this master's account JWT and handed to the servers. The
// current JWT is handed to them once at start too (a server restarted from a
// configuration written before a revocation lacks it).
func (s *enrollService) watchRevocations(ctx context.Context) error {
	w, err := kvwatch.Watch(context.Background(), s.m.js, names.BucketEnrollments, kvwatch.Options{
		Filters: []string{names.EnrollRevocationsKey},
		OnError: s.m.watchErr(names.BucketEnrollments),
		Monitor: s.m.watches,
	})
	if err != nil {
		return fmt.Errorf("enroll: watch revocations: %w", err)
	}
	go func() {
		<-s.quit
		w.Stop()
	}()
	go func() {
		first := true
		for {
			var e *kvwatch.Entry
			select {
			case <-s.quit:
				return
			case e = <-w.Updates():
			}
			if e == nil {
				if first {
					first = false
					s.setApplied(0, s.apply())
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var revs map[string]int64
			if err := json.Unmarshal(e.Value(), &revs); err != nil {
				s.log.Error("revocation list unreadable", "err", err)
				s.setApplied(e.Revision(), err)
				continue
			}
			_, changed, err := s.p.MergeRevocations(revs)
			if err == nil && (changed || first) {
				err = s.apply()
			}
			first = false
			if err != nil {
				s.log.Error("revocations not applied", "err", err)
			} else if changed {
				s.log.Info("revocations applied", "keys", len(revs))
			}
			s.setApplied(e.Revision(), err)
		}
	}()
	return nil
}

// reapply hands the account JWT to the servers again (after a reconnect:
// a restarted server may have come up without the revocations).
func (s *enrollService) reapply() {
	if err := s.apply(); err != nil {
		s.log.Warn("account JWT not re-applied after reconnect", "err", err)
	}
}

var errNoSysCreds = errors.New("no sys.creds in the PKI directory: servers that the master does not embed learn of revocations only when their configuration is reloaded (zester pki server-config)")

// apply gives the servers this master's current account JWT: the embedded
// server directly, others through the system account.
func (s *enrollService) apply() error {
	if emb := s.m.embedded; emb != nil {
		return s.p.ApplyAccount(emb.NATS())
	}
	nc, err := s.sysConn()
	if err != nil {
		return err
	}
	_, tok := s.p.Account()
	msg, err := nc.Request(names.SysAccountClaimsUpdate(s.p.AccountKey()), []byte(tok), 5*time.Second)
	if err != nil {
		return fmt.Errorf("push account JWT: %w", err)
	}
	var resp struct {
		Data  *struct{ Message string } `json:"data"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("push account JWT: answer: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("push account JWT: %s", resp.Error.Description)
	}
	return nil
}

func (s *enrollService) sysConn() (*nats.Conn, error) {
	s.sysMu.Lock()
	defer s.sysMu.Unlock()
	if s.sysNC != nil && !s.sysNC.IsClosed() {
		return s.sysNC, nil
	}
	creds := s.p.SysCreds()
	if creds == "" {
		if !s.warnedNoSys.Swap(true) {
			s.log.Warn(errNoSysCreds.Error())
		}
		return nil, errNoSysCreds
	}
	nc, err := nats.Connect(s.m.cfg.NATS.URL.String(), nats.Name("zester-master "+s.m.cfg.ID+" (system)"),
		nats.UserCredentials(creds), nats.MaxReconnects(-1), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect as the system user: %w", err)
	}
	s.sysNC = nc
	return nc, nil
}

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
