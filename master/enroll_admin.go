package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
)

// The enrollment decisions of operators (zester enroll): listing records,
// accepting, rejecting, revoking and deleting them, and enrollment tokens.

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
	if err := w.Current(ctx, func(e kvwatch.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut || names.IsEnrollReservedKey(e.Key()) {
			return
		}
		var r enroll.Record
		if err := r.Decode(e.Key(), e.Value()); err != nil {
			s.log.Warn("skipping a bad enrollment record", "key", e.Key(), "err", err)
			return
		}
		out = append(out, recordRev{rec: r, rev: e.Revision()})
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b recordRev) int { return strings.Compare(a.rec.ID, b.rec.ID) })
	return out, nil
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
	if err := w.Current(ctx, func(e kvwatch.KeyValueEntry) {
		hash, ok := names.ParseEnrollTokenKey(e.Key())
		if !ok || e.Operation() != jetstream.KeyValuePut {
			return
		}
		if t, err := enroll.DecodeToken(e.Value()); err == nil {
			out[hash] = *t
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
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
