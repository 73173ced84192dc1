package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Enrollment tokens admit a peel without an operator's decision: `zester
// enroll token create [--reusable] [--expires D]` prints one once; the peel
// presents it (peel.yaml enroll_token) in its signed claim. Only the token's
// SHA-256 is stored, in the enrollments bucket under a reserved key
// (names.EnrollTokenKey), so a reader of the bucket or of a backup cannot use
// it. A one-time token admits exactly one peel: its use is a compare-and-set
// on the token's entry.

// TokenPrefix starts every token, so a token pasted in the wrong place is
// recognisable (and secret scanners can find one).
const TokenPrefix = "zet1_"

// NewToken returns a new token secret and the hash it is stored under.
func NewToken() (secret, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret)
}

// HashToken is the hex SHA-256 of a token secret.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CheckTokenFormat checks that s looks like a token (before it is looked up).
func CheckTokenFormat(s string) error {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return fmt.Errorf("enrollment token: does not start with %q", TokenPrefix)
	}
	if b, err := base64.RawURLEncoding.DecodeString(rest); err != nil || len(b) != 32 {
		return fmt.Errorf("enrollment token: malformed after %q", TokenPrefix)
	}
	return nil
}

// Token is a token's entry in the enrollments bucket.
type Token struct {
	// ID is the first 12 hex digits of the hash: what list and delete show
	// and take.
	ID        string    `json:"id"`
	Reusable  bool      `json:"reusable"`
	Expires   time.Time `json:"expires,omitzero"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	Note      string    `json:"note,omitempty"`
	Uses      int       `json:"uses"`
	// Admitted lists the first peel it admitted, then the last ones (at
	// most 10 in all).
	Admitted []Admission `json:"admitted,omitempty"`
}

// Admission is one peel a token admitted.
type Admission struct {
	ID   string    `json:"id"`
	NKey string    `json:"nkey"`
	Time time.Time `json:"time"`
}

// TokenIDLen is the length of a token's short id.
const TokenIDLen = 12

// TokenID is the short id of a token hash.
func TokenID(hash string) string {
	if len(hash) < TokenIDLen {
		return hash
	}
	return hash[:TokenIDLen]
}

// DecodeToken decodes a stored token entry.
func DecodeToken(b []byte) (*Token, error) {
	var t Token
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("token entry: %w", err)
	}
	return &t, nil
}

// Usable says why the token cannot admit peel id with key nkey now, or nil.
// A one-time token already used by this very id and key is usable again: the
// peel is retrying after a lost reply, and admitting it twice admits nobody
// new.
func (t *Token) Usable(id, nkey string, now time.Time) error {
	if !t.Expires.IsZero() && now.After(t.Expires) {
		return fmt.Errorf("token %s expired at %s", t.ID, t.Expires.UTC().Format(time.RFC3339))
	}
	if !t.Reusable && t.Uses > 0 {
		if t.Retry(id, nkey) {
			return nil
		}
		by := "another peel"
		if len(t.Admitted) > 0 {
			by = t.Admitted[0].ID
		}
		return fmt.Errorf("token %s was used already: a one-time token, it admitted %s", t.ID, by)
	}
	return nil
}

// Retry reports whether admitting id with nkey repeats the token's one
// admission (Usable allowed it for that reason): nothing to record.
func (t *Token) Retry(id, nkey string) bool {
	return !t.Reusable && t.Uses > 0 && len(t.Admitted) > 0 && t.Admitted[0].ID == id && t.Admitted[0].NKey == nkey
}

// Use records that the token admitted peel id with key nkey.
func (t *Token) Use(id, nkey string, now time.Time) {
	t.Uses++
	t.Admitted = append(t.Admitted, Admission{ID: id, NKey: nkey, Time: now.UTC()})
	if len(t.Admitted) > 10 {
		// Keep the first admission (what a one-time token is bound to) and
		// the last nine.
		t.Admitted = append(t.Admitted[:1], t.Admitted[len(t.Admitted)-9:]...)
	}
}
