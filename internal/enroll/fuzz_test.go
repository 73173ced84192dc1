package enroll

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeRequest: decoding any bytes never panics; what decodes is a
// request whose re-encoding decodes to the same request and claim, whose
// fields passed every check (so the master may use them as keys and
// subjects), and whose signature check runs without panicking.
// Seed corpus: testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	kp, pub, cpub := keys(f)
	_, prove := signed(f, kp, Claim{ID: "web1.example.com", NKey: pub, Curve: cpub, Nonce: NewNonce(),
		Facts: map[string]any{"os": map[string]any{"id": "debian"}}, Token: "zet1_x", Peel: "v1"})
	hello, _ := json.Marshal(Request{Op: OpHello, ID: "web1", NKey: pub})
	f.Add(prove)
	f.Add(hello)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, c, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(r)
		r2, c2, err := DecodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the request: %+v → %+v", r, r2)
		}
		switch r.Op {
		case OpHello:
			if c != nil || c2 != nil || checkUserKey("nkey", r.NKey) != nil {
				t.Fatalf("hello: claim %+v, key %q", c, r.NKey)
			}
		case OpProve:
			if c == nil || c.ID != r.ID || !reflect.DeepEqual(c, c2) {
				t.Fatalf("prove: claim %+v vs %+v", c, c2)
			}
			_ = VerifyClaim(r, c)
			_ = CheckProof(&Challenge{ID: c.ID, NKey: c.NKey, Nonce: c.Nonce, Expires: time.Now().Add(time.Minute)}, r, c, time.Now())
		default:
			t.Fatalf("op %q decoded", r.Op)
		}
	})
}

// FuzzDecodeRenew: a renewal that decodes is signed by the key it names and
// fresh; nothing panics.
func FuzzDecodeRenew(f *testing.F) {
	kp, _, _ := keys(f)
	now := time.Unix(1_800_000_000, 0)
	b, _ := SignRenew(kp, "web1", now)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeRenew(b, now)
		if err != nil {
			return
		}
		if checkUserKey("nkey", c.NKey) != nil || c.Time.Sub(now).Abs() > MaxClockSkew {
			t.Fatalf("renewal decoded: %+v", c)
		}
	})
}
