package enroll

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/testkit"
)

func keys(t testing.TB) (nkeys.KeyPair, string, string) {
	t.Helper()
	kp, pub := testkit.NewKey(t, nkeys.CreateUser)
	_, cpub := testkit.NewKey(t, nkeys.CreateCurveKeys)
	return kp, pub, cpub
}

func signed(t testing.TB, kp nkeys.KeyPair, c Claim) (*Request, []byte) {
	t.Helper()
	req, err := SignClaim(kp, &c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	return req, b
}

func TestDecodeRequest_ErrorsNameTheField(t *testing.T) {
	kp, pub, cpub := keys(t)
	nonce := NewNonce()
	good := Claim{ID: "web1", NKey: pub, Curve: cpub, Nonce: nonce}
	claimJSON := func(mod func(*Claim)) []byte {
		c := good
		c.V = Version
		mod(&c)
		b, _ := json.Marshal(c)
		return b
	}
	prove := func(claim []byte) string {
		sig, _ := kp.Sign(append([]byte(ClaimContext), claim...))
		b, _ := json.Marshal(Request{Op: OpProve, ID: "web1", Claim: claim, Sig: sig})
		return string(b)
	}
	for _, c := range []struct {
		name, in, want string
	}{
		{"not json", `{`, "enrollment request"},
		{"no op", `{"id":"web1"}`, "op: empty"},
		{"unknown op", `{"op":"dance","id":"web1"}`, `op "dance"`},
		{"bad id", `{"op":"hello","id":"web 1","nkey":"` + pub + `"}`, "id: invalid id"},
		{"hello without key", `{"op":"hello","id":"web1"}`, "nkey"},
		{"hello with a curve key", `{"op":"hello","id":"web1","nkey":"` + cpub + `"}`, "not a user public key"},
		{"hello with a claim", `{"op":"hello","id":"web1","nkey":"` + pub + `","claim":"e30="}`, "carries a claim"},
		{"prove without sig", `{"op":"prove","id":"web1","claim":"e30="}`, "sig: empty"},
		{"prove without claim", `{"op":"prove","id":"web1","sig":"AA=="}`, "claim: empty"},
		{"claim version", prove(claimJSON(func(c *Claim) { c.V = 2 })), "v 2"},
		{"claim id", prove(claimJSON(func(c *Claim) { c.ID = "web2" })), `claim is for "web2"`},
		{"claim key", prove(claimJSON(func(c *Claim) { c.NKey = cpub })), "claim: nkey"},
		{"claim curve", prove(claimJSON(func(c *Claim) { c.Curve = pub })), "claim: curve"},
		{"claim nonce", prove(claimJSON(func(c *Claim) { c.Nonce = "abc" })), "claim: nonce"},
		{"claim token", prove(claimJSON(func(c *Claim) { c.Token = strings.Repeat("t", MaxTokenLen+1) })), "claim: token"},
		{"claim facts", prove(claimJSON(func(c *Claim) { c.Facts = map[string]any{"x": strings.Repeat("f", MaxFactsBytes)} })), "claim: facts"},
		{"claim trailing", prove(append(claimJSON(func(*Claim) {}), []byte(` {}`)...)), "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := DecodeRequest([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("DecodeRequest(%.80s): %v, want %q", c.in, err, c.want)
			}
		})
	}
	req, b := signed(t, kp, good)
	r, cl, err := DecodeRequest(b)
	if err != nil || cl.ID != "web1" || cl.NKey != pub || !reflect.DeepEqual(r.Sig, req.Sig) {
		t.Fatalf("good proof: %v %+v", err, cl)
	}
	if err := VerifyClaim(r, cl); err != nil {
		t.Fatalf("good proof does not verify: %v", err)
	}
}

// TestCheckProof: each way a proof can be wrong is refused with its code,
// and a good one passes.
func TestCheckProof(t *testing.T) {
	kp, pub, cpub := keys(t)
	other, opub, _ := keys(t)
	now := time.Now()
	ch := &Challenge{ID: "web1", NKey: pub, Nonce: NewNonce(), Created: now, Expires: now.Add(time.Minute)}
	mk := func(signer nkeys.KeyPair, c Claim) (*Request, *Claim) {
		req, b := signed(t, signer, c)
		_ = b
		cl, err := DecodeClaim(req.Claim)
		if err != nil {
			t.Fatal(err)
		}
		return req, cl
	}
	good := Claim{ID: "web1", NKey: pub, Curve: cpub, Nonce: ch.Nonce}
	used := *ch
	used.Used = true
	for _, c := range []struct {
		name   string
		ch     *Challenge
		signer nkeys.KeyPair
		claim  Claim
		now    time.Time
		code   string
	}{
		{"no challenge", nil, kp, good, now, CodeNoChallenge},
		{"challenge of another id", &Challenge{ID: "web2", NKey: pub, Nonce: ch.Nonce, Expires: ch.Expires}, kp, good, now, CodeIDMismatch},
		{"another key's challenge", ch, other, Claim{ID: "web1", NKey: opub, Curve: cpub, Nonce: ch.Nonce}, now, CodeKeyMismatch},
		{"old nonce", ch, kp, Claim{ID: "web1", NKey: pub, Curve: cpub, Nonce: NewNonce()}, now, CodeChallengeReplayed},
		{"used", &used, kp, good, now, CodeChallengeReplayed},
		{"expired", ch, kp, good, now.Add(2 * time.Minute), CodeChallengeExpired},
		{"signed by another key", ch, other, good, now, CodeBadSignature},
		{"good", ch, kp, good, now, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, cl := mk(c.signer, c.claim)
			ref := CheckProof(c.ch, req, cl, c.now)
			if c.code == "" {
				if ref != nil {
					t.Fatalf("good proof refused: %v", ref)
				}
				return
			}
			if ref == nil || ref.Code != c.code {
				t.Fatalf("refusal %v, want %s", ref, c.code)
			}
		})
	}
	// A tampered claim (the facts changed after signing) does not verify.
	req, _ := mk(kp, good)
	req.Claim = []byte(strings.Replace(string(req.Claim), `"v":1`, `"v":1,"facts":{"os":{"id":"debian"}}`, 1))
	cl, _ := DecodeClaim(req.Claim)
	if ref := CheckProof(ch, req, cl, now); ref == nil || ref.Code != CodeBadSignature {
		t.Fatalf("tampered claim: %v", ref)
	}
}

func TestCheckRecord(t *testing.T) {
	c := &Claim{ID: "web1", NKey: "UKEY1"}
	for _, r := range []struct {
		rec  *Record
		next Next
		code string
	}{
		{nil, Evaluate, ""},
		{&Record{ID: "web1", State: StatePending, NKey: "UKEY1"}, Evaluate, ""},
		{&Record{ID: "web1", State: StateAccepted, NKey: "UKEY1"}, Reissue, ""},
		{&Record{ID: "web1", State: StateRejected, NKey: "UKEY1"}, Refused, CodeRejected},
		{&Record{ID: "web1", State: StateRevoked, NKey: "UKEY1"}, Refused, CodeRevoked},
		{&Record{ID: "web1", State: StatePending, NKey: "UKEY2"}, Refused, CodeConflict},
		{&Record{ID: "web1", State: StateAccepted, NKey: "UKEY2"}, Refused, CodeConflict},
		{&Record{ID: "web1", State: StateRevoked, NKey: "UKEY2"}, Refused, CodeConflict},
	} {
		next, ref := CheckRecord(r.rec, c)
		if next != r.next || (ref == nil) != (r.code == "") || ref != nil && ref.Code != r.code {
			t.Errorf("record %+v: %v %v, want %v %s", r.rec, next, ref, r.next, r.code)
		}
	}
}

// TestTransition is the table of operator decisions, one row per state and
// action.
func TestTransition(t *testing.T) {
	for _, c := range []struct {
		from   State
		act    Action
		to     State
		revoke bool
		err    string // "" ok, "noop", or a substring
	}{
		{StatePending, ActAccept, StateAccepted, false, ""},
		{StateRejected, ActAccept, StateAccepted, false, ""},
		{StateAccepted, ActAccept, "", false, "noop"},
		{StateRevoked, ActAccept, "", false, "delete the record"},
		{StatePending, ActReject, StateRejected, false, ""},
		{StateRejected, ActReject, "", false, "noop"},
		{StateAccepted, ActReject, "", false, "revoke it instead"},
		{StateRevoked, ActReject, "", false, "noop"},
		{StateAccepted, ActRevoke, StateRevoked, true, ""},
		{StateRevoked, ActRevoke, "", false, "noop"},
		{StatePending, ActRevoke, "", false, "nothing to revoke"},
		{StateRejected, ActRevoke, "", false, "nothing to revoke"},
		{StatePending, ActDelete, "", false, ""},
		{StateAccepted, ActDelete, "", true, ""},
		{StateRevoked, ActDelete, "", false, ""},
		{StateRejected, ActDelete, "", false, ""},
	} {
		to, revoke, err := Transition(c.from, c.act)
		switch {
		case c.err == "noop":
			if !IsNoop(err) {
				t.Errorf("%s on %s: %v, want no-op", c.act, c.from, err)
			}
		case c.err != "":
			if err == nil || IsNoop(err) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s on %s: %v, want %q", c.act, c.from, err, c.err)
			}
		default:
			if err != nil || to != c.to || revoke != c.revoke {
				t.Errorf("%s on %s: %s revoke=%t %v, want %s revoke=%t", c.act, c.from, to, revoke, err, c.to, c.revoke)
			}
		}
	}
}

func TestToken_OneTimeAndReusable(t *testing.T) {
	secret, hash := NewToken()
	if err := CheckTokenFormat(secret); err != nil || HashToken(secret) != hash || strings.Contains(hash, secret) {
		t.Fatalf("token %s: %v", secret, err)
	}
	for _, bad := range []string{"", "zet1_", "zet1_abc", "zet2_" + secret[5:], secret + "x"} {
		if CheckTokenFormat(bad) == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
	now := time.Now()
	one := &Token{ID: TokenID(hash), Expires: now.Add(time.Hour)}
	if err := one.Usable("a", "UA", now); err != nil {
		t.Fatal(err)
	}
	one.Use("a", "UA", now)
	if err := one.Usable("a", "UA", now); err != nil || !one.Retry("a", "UA") {
		t.Fatalf("the admitted peel retrying: %v", err)
	}
	if err := one.Usable("b", "UB", now); err == nil || !strings.Contains(err.Error(), "used already") || !strings.Contains(err.Error(), "admitted a") {
		t.Fatalf("a second peel: %v", err)
	}
	if err := one.Usable("a", "UB", now); err == nil {
		t.Fatal("the same id with another key reused a one-time token")
	}
	if err := one.Usable("a", "UA", now.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	many := &Token{ID: "x", Reusable: true}
	for i := range 15 {
		if err := many.Usable("p", "U", now); err != nil || many.Retry("p", "U") {
			t.Fatal(err)
		}
		many.Use(string(rune('a'+i)), "U", now)
	}
	if many.Uses != 15 || len(many.Admitted) != 10 || many.Admitted[0].ID != "a" || many.Admitted[9].ID != "o" {
		t.Fatalf("reusable token: %d uses, admitted %+v", many.Uses, many.Admitted)
	}
}

func TestPolicy_MatchesClaimedIDAndFacts(t *testing.T) {
	p, err := NewPolicy([]string{"web-*", "G@os:id:debian and S@10.0.0.0/8", "N@db"}, map[string]string{"db": "L@db1,db2"})
	if err != nil {
		t.Fatal(err)
	}
	debian := map[string]any{"os": map[string]any{"id": "debian"}, "network": map[string]any{"addresses": []any{"10.1.2.3"}}}
	for _, c := range []struct {
		id    string
		facts map[string]any
		want  string
	}{
		{"web-1", nil, "web-*"},
		{"cache1", debian, "G@os:id:debian and S@10.0.0.0/8"},
		{"cache1", map[string]any{"os": map[string]any{"id": "debian"}}, ""},
		{"db2", nil, "N@db"},
		{"db3", nil, ""},
	} {
		got, ok := p.Match(c.id, c.facts)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s %v: %q %t, want %q", c.id, c.facts, got, ok, c.want)
		}
	}
	if _, err := NewPolicy([]string{"web-*", "G@"}, nil); err == nil || !strings.Contains(err.Error(), "auto_accept[1]") {
		t.Fatalf("bad target: %v", err)
	}
	var none *Policy
	if _, ok := none.Match("x", nil); ok || none.Len() != 0 {
		t.Fatal("a nil policy matched")
	}
}

func TestSelector(t *testing.T) {
	if _, err := NewSelector(nil, false); err == nil {
		t.Fatal("an empty selection is not everything")
	}
	if _, err := NewSelector([]string{" "}, false); err == nil {
		t.Fatal("a blank target")
	}
	s, err := NewSelector([]string{"web*", "db1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rec  Record
		want bool
	}{
		{Record{ID: "web1", State: StateAccepted}, true},
		{Record{ID: "db1", State: StateRejected}, true},
		{Record{ID: "db2", State: StatePending}, true}, // --all-pending
		{Record{ID: "db2", State: StateRejected}, false},
	} {
		if got := s.Match(&c.rec); got != c.want {
			t.Errorf("%+v: %t", c.rec, got)
		}
	}
}

func TestRenew_SignedAndFresh(t *testing.T) {
	kp, pub, _ := keys(t)
	now := time.Now()
	b, err := SignRenew(kp, "web1", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeRenew(b, now)
	if err != nil || c.ID != "web1" || c.NKey != pub {
		t.Fatalf("renewal: %+v %v", c, err)
	}
	if _, err := DecodeRenew(b, now.Add(MaxClockSkew+time.Minute)); err == nil || !strings.Contains(err.Error(), "from the master's clock") {
		t.Fatalf("an old renewal: %v", err)
	}
	var r RenewRequest
	json.Unmarshal(b, &r)
	r.Claim = []byte(strings.Replace(string(r.Claim), "web1", "web2", 1))
	forged, _ := json.Marshal(r)
	if _, err := DecodeRenew(forged, now); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("a forged renewal: %v", err)
	}
	// A renewal signature is no enrollment claim signature.
	json.Unmarshal(b, &r)
	if err := verify(pub, append([]byte(ClaimContext), r.Claim...), r.Sig); err == nil {
		t.Fatal("a renewal signature verified as a claim signature")
	}
}

func TestCheckIssued(t *testing.T) {
	if err := CheckIssued("not a jwt", "web1", "U", time.Now()); err == nil {
		t.Fatal("garbage accepted")
	}
}
