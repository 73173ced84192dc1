package enroll

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/zester-io/zester/internal/target"
)

// Challenge is an entry of the enroll-challenges bucket (key: peel id): the
// nonce the master gave to one key for one id. The bucket's TTL (5 minutes)
// removes it; Expires may be earlier (master.yaml enroll.challenge_ttl).
type Challenge struct {
	ID      string    `json:"id"`
	NKey    string    `json:"nkey"`
	Nonce   string    `json:"nonce"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Used is set (compare-and-set on the entry's revision) by the one proof
	// that answered it: a second proof is a replay.
	Used bool `json:"used,omitempty"`
}

// DecodeChallenge decodes a stored challenge.
func DecodeChallenge(b []byte) (*Challenge, error) {
	var c Challenge
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return &c, nil
}

// CheckProof checks a proof (r, c) against the challenge ch stored for its
// id (nil: none) at time now. It refuses, in this order: no challenge; a
// proof for another key than the one the challenge was given to (a peel
// answering a challenge that is not its own, lying about its id); a nonce
// that is not the outstanding one, or an outstanding one already used (a
// replay); an expired challenge; a signature that does not verify with the
// key.
func CheckProof(ch *Challenge, r *Request, c *Claim, now time.Time) *Refusal {
	if ch == nil {
		return Refuse(CodeNoChallenge, "no challenge is outstanding for %q: it expired (challenges last at most 5 minutes) or was never asked for; start again with hello", c.ID)
	}
	if ch.ID != c.ID {
		return Refuse(CodeIDMismatch, "the challenge stored for %q was issued for %q", c.ID, ch.ID)
	}
	if ch.NKey != c.NKey {
		return Refuse(CodeKeyMismatch, "the challenge for %q was given to key %s, but this proof is for key %s: a peel may answer only its own challenge", c.ID, ch.NKey, c.NKey)
	}
	if ch.Nonce != c.Nonce {
		return Refuse(CodeChallengeReplayed, "the proof for %q answers nonce %s, not the outstanding challenge: replayed, or superseded by a newer hello", c.ID, short(c.Nonce))
	}
	if ch.Used {
		return Refuse(CodeChallengeReplayed, "the challenge for %q was answered already: a proof is good once (replayed)", c.ID)
	}
	if now.After(ch.Expires) {
		return Refuse(CodeChallengeExpired, "the challenge for %q expired at %s: start again with hello", c.ID, ch.Expires.UTC().Format(time.RFC3339))
	}
	if err := VerifyClaim(r, c); err != nil {
		return Refuse(CodeBadSignature, "the proof for %q is not signed by the key in it (%s): %v", c.ID, c.NKey, err)
	}
	return nil
}

// Next is what to do with a proof once CheckProof passed.
type Next int

// Outcomes of CheckRecord.
const (
	// Evaluate: a new request (no record, or pending with the same key):
	// token, then policy, else pending.
	Evaluate Next = iota
	// Reissue: accepted with the same key: issue a fresh JWT.
	Reissue
	// Refused: see the refusal.
	Refused
)

// CheckRecord says what the existing record rec (nil: none) of the claim's
// id means for the claim: a record with another key is a conflict whatever
// its state — a cloned or stolen id, or a host rebuilt with new keys, which
// an operator resolves by deleting the record.
func CheckRecord(rec *Record, c *Claim) (Next, *Refusal) {
	if rec == nil {
		return Evaluate, nil
	}
	if rec.NKey != c.NKey {
		return Refused, Refuse(CodeConflict, "peel id %q is already enrolled (%s) with another key, %s; this request has key %s: a cloned or stolen id? If the host was rebuilt with new keys, run `zester enroll delete %s` first", c.ID, rec.State, rec.NKey, c.NKey, c.ID)
	}
	switch rec.State {
	case StatePending:
		return Evaluate, nil
	case StateAccepted:
		return Reissue, nil
	case StateRejected:
		return Refused, Refuse(CodeRejected, "peel %q was rejected (%s); `zester enroll accept %s` or `zester enroll delete %s` lets it in again", c.ID, rec.DecidedBy, c.ID, c.ID)
	case StateRevoked:
		return Refused, Refuse(CodeRevoked, "peel %q was revoked (%s); its key is no longer trusted", c.ID, rec.DecidedBy)
	}
	return Refused, Refuse(CodeUnavailable, "peel %q: record in unknown state %q", c.ID, rec.State)
}

// Policy is the auto-accept policy of master.yaml (enroll.auto_accept): a
// list of targets in the compound language, matched against a request's
// claimed id and facts.
type Policy struct {
	rules []rule
}

type rule struct {
	src  string
	expr target.Expr
}

// NewPolicy parses the targets; nodegroups may be referred to with N@.
func NewPolicy(targets []string, nodegroups map[string]string) (*Policy, error) {
	p := &Policy{}
	for i, t := range targets {
		e, err := target.Parse(target.KindCompound, t, target.Options{Nodegroups: nodegroups})
		if err != nil {
			return nil, fmt.Errorf("auto_accept[%d]: %w", i, err)
		}
		p.rules = append(p.rules, rule{src: t, expr: e})
	}
	return p, nil
}

// Match returns the first target that selects a peel with this id and these
// claimed facts.
func (p *Policy) Match(id string, facts map[string]any) (string, bool) {
	if p == nil {
		return "", false
	}
	s := &target.MapSubject{PeelID: id, Facts: facts}
	for _, r := range p.rules {
		if r.expr.Match(s) {
			return r.src, true
		}
	}
	return "", false
}

// Len is the number of targets.
func (p *Policy) Len() int {
	if p == nil {
		return 0
	}
	return len(p.rules)
}

// Via strings of a record's decision.
const (
	ViaManual = "manual"
)

// ViaPolicy and ViaToken describe automatic acceptances.
func ViaPolicy(target string) string { return "auto_accept: " + target + " (claimed id and facts)" }

// ViaToken names the token that admitted a peel.
func ViaToken(id string) string { return "token " + id }
