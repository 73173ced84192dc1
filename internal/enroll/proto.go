package enroll

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
)

// Version is the protocol version in every claim.
const Version = 1

// Request operations on names.SubjectEnroll.
const (
	OpHello = "hello"
	OpProve = "prove"
)

// Signature contexts: a peel's nkey also signs the NATS server's connect
// nonce (random base64, never a newline), so every Zester signature covers a
// context line first and none can pass for another.
const (
	ClaimContext = "zester-enroll-claim-v1\n"
	RenewContext = "zester-enroll-renew-v1\n"
)

// Limits of what a request may carry. The bootstrap credential caps every
// message at pki.EnrollPayloadMax (16 KiB) anyway; these name the part that
// is too big.
const (
	MaxFactsBytes = 8 << 10
	MaxTokenLen   = 128
	nonceBytes    = 32
	// MaxClockSkew bounds how far the time of a renewal request
	// may be from the master's clock.
	MaxClockSkew = 2 * time.Minute
)

// Request is one message on names.SubjectEnroll.
type Request struct {
	Op string `json:"op"`
	// ID and NKey: the peel's id and public user key (hello; prove repeats
	// the id, which must equal the claim's).
	ID   string `json:"id"`
	NKey string `json:"nkey,omitempty"`
	// Claim is the JSON of a Claim and Sig the nkey's signature of
	// ClaimContext+Claim (prove). They travel base64 in JSON, so the signed
	// bytes arrive exactly as signed.
	Claim []byte `json:"claim,omitempty"`
	Sig   []byte `json:"sig,omitempty"`
}

// Claim is what a peel signs to prove it holds its nkey.
type Claim struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	NKey  string `json:"nkey"`
	Curve string `json:"curve"`
	Nonce string `json:"nonce"`
	// Facts are claimed, not verified (see the package doc).
	Facts map[string]any `json:"facts,omitempty"`
	// Token is an enrollment token (peel.yaml enroll_token), if any.
	Token string `json:"token,omitempty"`
	// Peel is the peel's version, for the record.
	Peel string `json:"peel,omitempty"`
}

// Reply is the answer to a Request or a RenewRequest.
type Reply struct {
	// Challenge (hello).
	Nonce   string    `json:"nonce,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// Result (prove, renew).
	State State `json:"state,omitempty"`
	// JWT is the peel's user JWT when State is accepted (public).
	JWT string `json:"jwt,omitempty"`
	// Error is set on a refusal.
	Error *Refusal `json:"error,omitempty"`
}

// Refusal is why the master refused a request; Code is one of the Code
// constants, Msg says what to do.
type Refusal struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

func (r *Refusal) Error() string { return "enrollment refused (" + r.Code + "): " + r.Msg }

// Refusal codes.
const (
	CodeBadRequest        = "bad_request"
	CodeNoChallenge       = "no_challenge"
	CodeChallengeExpired  = "challenge_expired"
	CodeChallengeReplayed = "challenge_replayed"
	CodeKeyMismatch       = "key_mismatch"
	CodeIDMismatch        = "id_mismatch"
	CodeBadSignature      = "bad_signature"
	CodeConflict          = "conflict"
	CodeKeyInUse          = "key_in_use"
	CodeRejected          = "rejected"
	CodeRevoked           = "revoked"
	CodeBadToken          = "bad_token"
	CodeNotEnrolled       = "not_enrolled"
	CodeUnavailable       = "unavailable"
)

// Refuse makes a refusal.
func Refuse(code, format string, a ...any) *Refusal {
	return &Refusal{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// NewNonce returns a fresh challenge nonce (32 random bytes, base64url).
func NewNonce() string {
	b := make([]byte, nonceBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeRequest decodes and checks a request on names.SubjectEnroll. For a
// prove it also decodes the claim (returned) but does not verify the
// signature (VerifyClaim, once the master knows which key to expect). Every
// error names the field at fault.
func DecodeRequest(b []byte) (*Request, *Claim, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, fmt.Errorf("enrollment request: %w", err)
	}
	if err := names.ValidateID(r.ID); err != nil {
		return nil, nil, fmt.Errorf("enrollment request: id: %w", err)
	}
	switch r.Op {
	case OpHello:
		if err := checkUserKey("nkey", r.NKey); err != nil {
			return nil, nil, fmt.Errorf("enrollment request: %w", err)
		}
		if len(r.Claim) > 0 || len(r.Sig) > 0 {
			return nil, nil, errors.New("enrollment request: hello: carries a claim or signature (send them with prove)")
		}
		return &r, nil, nil
	case OpProve:
		if len(r.Sig) == 0 {
			return nil, nil, errors.New("enrollment request: prove: sig: empty")
		}
		c, err := DecodeClaim(r.Claim)
		if err != nil {
			return nil, nil, fmt.Errorf("enrollment request: prove: %w", err)
		}
		if c.ID != r.ID {
			return nil, nil, fmt.Errorf("enrollment request: prove: id %q, but the claim is for %q", r.ID, c.ID)
		}
		if r.NKey != "" && r.NKey != c.NKey {
			return nil, nil, fmt.Errorf("enrollment request: prove: nkey %s, but the claim is for %s", r.NKey, c.NKey)
		}
		return &r, c, nil
	case "":
		return nil, nil, errors.New("enrollment request: op: empty (want hello or prove)")
	}
	return nil, nil, fmt.Errorf("enrollment request: op %q: want hello or prove", r.Op)
}

// DecodeClaim decodes and checks a claim.
func DecodeClaim(b []byte) (*Claim, error) {
	if len(b) == 0 {
		return nil, errors.New("claim: empty")
	}
	var c Claim
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if dec.More() {
		return nil, errors.New("claim: trailing data after the JSON object")
	}
	if c.V != Version {
		return nil, fmt.Errorf("claim: v %d: this master speaks version %d", c.V, Version)
	}
	if err := names.ValidateID(c.ID); err != nil {
		return nil, fmt.Errorf("claim: id: %w", err)
	}
	if err := checkUserKey("claim: nkey", c.NKey); err != nil {
		return nil, err
	}
	if !nkeys.IsValidPublicCurveKey(c.Curve) {
		return nil, fmt.Errorf("claim: curve %q: not a curve public key (X…)", short(c.Curve))
	}
	if n, err := base64.RawURLEncoding.DecodeString(c.Nonce); err != nil || len(n) != nonceBytes {
		return nil, fmt.Errorf("claim: nonce %q: not a challenge nonce", short(c.Nonce))
	}
	if len(c.Token) > MaxTokenLen {
		return nil, fmt.Errorf("claim: token: %d characters, at most %d", len(c.Token), MaxTokenLen)
	}
	if c.Facts != nil {
		fb, err := json.Marshal(c.Facts)
		if err != nil {
			return nil, fmt.Errorf("claim: facts: %w", err)
		}
		if len(fb) > MaxFactsBytes {
			return nil, fmt.Errorf("claim: facts: %d bytes, at most %d", len(fb), MaxFactsBytes)
		}
	}
	if len(c.Peel) > 64 {
		return nil, fmt.Errorf("claim: peel version: %d characters, at most 64", len(c.Peel))
	}
	return &c, nil
}

func checkUserKey(field, k string) error {
	if !nkeys.IsValidPublicUserKey(k) {
		return fmt.Errorf("%s %q: not a user public key (U…)", field, short(k))
	}
	return nil
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// SignClaim encodes c and signs it with kp (the peel's nkey), ready for a
// prove request.
func SignClaim(kp nkeys.KeyPair, c *Claim) (*Request, error) {
	c.V = Version
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	sig, err := kp.Sign(append([]byte(ClaimContext), b...))
	if err != nil {
		return nil, fmt.Errorf("sign claim: %w", err)
	}
	return &Request{Op: OpProve, ID: c.ID, NKey: c.NKey, Claim: b, Sig: sig}, nil
}

// VerifyClaim checks that r's signature is the claim's key's.
func VerifyClaim(r *Request, c *Claim) error {
	return verify(c.NKey, append([]byte(ClaimContext), r.Claim...), r.Sig)
}

func verify(pub string, data, sig []byte) error {
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("key %s: %w", short(pub), err)
	}
	if err := kp.Verify(data, sig); err != nil {
		return fmt.Errorf("signature does not verify with key %s", pub)
	}
	return nil
}

// RenewRequest is an enrolled peel's request for a fresh JWT, on
// names.EnrollRenewSubject(id).
type RenewRequest struct {
	Claim []byte `json:"claim"`
	Sig   []byte `json:"sig"`
}

// RenewClaim is what a renewing peel signs.
type RenewClaim struct {
	V    int       `json:"v"`
	ID   string    `json:"id"`
	NKey string    `json:"nkey"`
	Time time.Time `json:"time"`
}

// SignRenew builds a renewal request signed by kp.
func SignRenew(kp nkeys.KeyPair, id string, now time.Time) ([]byte, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(RenewClaim{V: Version, ID: id, NKey: pub, Time: now.UTC()})
	sig, err := kp.Sign(append([]byte(RenewContext), b...))
	if err != nil {
		return nil, fmt.Errorf("sign renewal: %w", err)
	}
	return json.Marshal(RenewRequest{Claim: b, Sig: sig})
}

// DecodeRenew decodes a renewal request, verifies its signature and that
// its time is within MaxClockSkew of now.
func DecodeRenew(b []byte, now time.Time) (*RenewClaim, error) {
	var r RenewRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("renewal request: %w", err)
	}
	var c RenewClaim
	if err := json.Unmarshal(r.Claim, &c); err != nil {
		return nil, fmt.Errorf("renewal request: claim: %w", err)
	}
	if c.V != Version {
		return nil, fmt.Errorf("renewal request: v %d: this master speaks version %d", c.V, Version)
	}
	if err := names.ValidateID(c.ID); err != nil {
		return nil, fmt.Errorf("renewal request: id: %w", err)
	}
	if err := checkUserKey("renewal request: nkey", c.NKey); err != nil {
		return nil, err
	}
	if d := now.Sub(c.Time); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, fmt.Errorf("renewal request: time %s is %s from the master's clock (at most %s)", c.Time.Format(time.RFC3339), d.Round(time.Second), MaxClockSkew)
	}
	if err := verify(c.NKey, append([]byte(RenewContext), r.Claim...), r.Sig); err != nil {
		return nil, fmt.Errorf("renewal request: %w", err)
	}
	return &c, nil
}
