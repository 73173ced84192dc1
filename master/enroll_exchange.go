package master

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
)

// The peel's side of enrollment as the masters serve it: hello, proof,
// the decision on a first enrollment or a re-enrollment, issuing
// credentials, one-time tokens, and renewal over the peel's own credentials.

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
