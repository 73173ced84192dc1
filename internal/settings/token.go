package settings

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nkeys"
)

// Token format, version 1:
//
//	zs1:BASE64URL( fingerprint[4] ‖ sender[32] ‖ box )
//
// box is an nkeys curve (X25519, nacl box) sealed box of the plaintext from
// a one-time sender key to the masters' curve key; sender is that one-time
// key's raw public half, needed to open the box; fingerprint is the first 4
// bytes of SHA-256 of the recipient's raw public key, so a token sealed to
// another key is named as such instead of failing to decrypt, and
// rotate-key can skip tokens already on the new key. Anyone holding the
// masters' public key can make a token (as with sealed-secrets or sops):
// who may commit to the settings tree is git's to decide.
const (
	TokenPrefix = "zs1:"
	// RefPrefix starts a token's reference: what a sanitized template
	// holds instead of the token, and the key of its sealed value in a
	// peel's entry of the secrets bucket.
	RefPrefix = "zsr1:"
	// MaxSecret is the largest plaintext a token may hold.
	MaxSecret = 64 << 10
)

const (
	fpLen     = 4
	senderLen = 32
)

var (
	tokenRe = regexp.MustCompile(`zsr?1:[A-Za-z0-9_-]*`)
	// ErrWrongKey: the token was sealed to another curve key.
	ErrWrongKey = errors.New("sealed to another key")
	// ErrBadToken: the text is not a well-formed token.
	ErrBadToken = errors.New("not a secret token")
)

// Token is a parsed token.
type Token struct {
	Fingerprint string // hex of the recipient key's fingerprint
	sender      []byte
	box         []byte
}

// Fingerprint is the short identity of a curve public key that tokens
// carry: 8 hex digits.
func Fingerprint(pub string) (string, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteCurve, []byte(pub))
	if err != nil {
		return "", fmt.Errorf("curve public key %q: %w", pub, err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:fpLen]), nil
}

// Seal makes a token of plaintext for the curve public key pub.
func Seal(pub string, plaintext []byte) (string, error) {
	if len(plaintext) > MaxSecret {
		return "", fmt.Errorf("secret of %d bytes: at most %d", len(plaintext), MaxSecret)
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return "", err
	}
	eph, err := nkeys.CreateCurveKeys()
	if err != nil {
		return "", fmt.Errorf("one-time key: %w", err)
	}
	defer eph.Wipe()
	box, err := eph.Seal(plaintext, pub)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	ephPub, _ := eph.PublicKey()
	sender, err := nkeys.Decode(nkeys.PrefixByteCurve, []byte(ephPub))
	if err != nil {
		return "", err
	}
	fpRaw, _ := hex.DecodeString(fp)
	payload := make([]byte, 0, fpLen+senderLen+len(box))
	payload = append(append(append(payload, fpRaw...), sender...), box...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(payload), nil
}

// ParseToken parses a token without opening it.
func ParseToken(s string) (*Token, error) {
	if strings.HasPrefix(s, RefPrefix) {
		return nil, fmt.Errorf("%w: %.12s… is a reference from a sanitized template, not a token (render from the settings tree itself)", ErrBadToken, s)
	}
	body, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: want text starting %q (made by zester secrets encrypt), got %s", ErrBadToken, TokenPrefix, preview(s))
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: base64: %v", ErrBadToken, preview(s), err)
	}
	// nkeys' box: 4 version bytes, 24 nonce bytes, 16 bytes of MAC.
	if len(raw) < fpLen+senderLen+4+24+16 {
		return nil, fmt.Errorf("%w: %s: too short (cut when copied?)", ErrBadToken, preview(s))
	}
	return &Token{
		Fingerprint: hex.EncodeToString(raw[:fpLen]),
		sender:      raw[fpLen : fpLen+senderLen],
		box:         raw[fpLen+senderLen:],
	}, nil
}

// preview shows the start of a token: enough to find it, never all of it.
func preview(s string) string {
	if len(s) > 16 {
		return fmt.Sprintf("%q…", s[:16])
	}
	return fmt.Sprintf("%q", s)
}

// Open decrypts the token with the curve key pair kp.
func (t *Token) Open(kp nkeys.KeyPair) ([]byte, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return nil, err
	}
	if fp != t.Fingerprint {
		return nil, fmt.Errorf("%w: token for key %s, this key is %s (rotated? zester secrets rotate-key re-seals a tree)", ErrWrongKey, t.Fingerprint, fp)
	}
	sender, err := nkeys.Encode(nkeys.PrefixByteCurve, t.sender)
	if err != nil {
		return nil, err
	}
	plain, err := kp.Open(t.box, string(sender))
	if err != nil {
		return nil, fmt.Errorf("open token: %w (damaged?)", err)
	}
	return plain, nil
}

// Open parses and opens a token with kp.
func Open(kp nkeys.KeyPair, token string) ([]byte, error) {
	t, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	return t.Open(kp)
}

// Ref is a token's reference: "zsr1:" and 22 characters of its SHA-256.
func Ref(token string) string {
	if r, ok := refs.Load(token); ok {
		return r.(string)
	}
	sum := sha256.Sum256([]byte(token))
	r := RefPrefix + base64.RawURLEncoding.EncodeToString(sum[:16])
	// A master asks for the same few tokens' references for every peel.
	if refsHeld.Add(1) <= maxRefs {
		refs.Store(token, r)
	}
	return r
}

// refs caches Ref's results (bounded by maxRefs: tokens are few, but a
// long-running process may see many trees).
var (
	refs     sync.Map
	refsHeld atomic.Int64
)

const maxRefs = 1 << 14

// Opener returns a Secret callback for Compile that opens tokens with the
// masters' curve key pair kp.
func Opener(kp nkeys.KeyPair) func(string) (string, error) {
	return func(token string) (string, error) {
		p, err := Open(kp, token)
		if err != nil {
			return "", err
		}
		return string(p), nil
	}
}

// TokenAt is a token found in a file.
type TokenAt struct {
	Token      string
	Line, Col  int // 1-based; Col in bytes
	Start, End int // byte offsets
}

// FindTokens returns every token and reference in src, in order.
func FindTokens(src []byte) []TokenAt {
	var out []TokenAt
	for _, loc := range tokenRe.FindAllIndex(src, -1) {
		// A token is a word of its own: "xzs1:" is not one.
		if loc[0] > 0 && isTokenByte(src[loc[0]-1]) {
			continue
		}
		line := 1 + bytes.Count(src[:loc[0]], []byte("\n"))
		lineStart := bytes.LastIndexByte(src[:loc[0]], '\n') + 1
		out = append(out, TokenAt{Token: string(src[loc[0]:loc[1]]), Line: line, Col: loc[0] - lineStart + 1, Start: loc[0], End: loc[1]})
	}
	return out
}

func isTokenByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Sanitize returns src with every token replaced by its reference: the
// template a peel renders from (the settings-files bucket), which holds no
// ciphertext for any key. The peel's own entry in the secrets bucket maps
// each reference it needs to the plaintext sealed to that peel. A token
// that does not parse is an error naming its line and column.
func Sanitize(name string, src []byte) ([]byte, error) {
	toks := FindTokens(src)
	if len(toks) == 0 {
		return src, nil
	}
	var b bytes.Buffer
	last := 0
	for _, t := range toks {
		if strings.HasPrefix(t.Token, RefPrefix) {
			continue
		}
		if _, err := ParseToken(t.Token); err != nil {
			return nil, fmt.Errorf("%s:%d:%d: %w", name, t.Line, t.Col, err)
		}
		b.Write(src[last:t.Start])
		b.WriteString(Ref(t.Token))
		last = t.End
	}
	b.Write(src[last:])
	return b.Bytes(), nil
}

// CachingOpener is Opener with every opened token kept in memory: a tree's
// tokens are the same for every peel, so a master compiling for many peels
// opens each once (an X25519 box open costs tens of microseconds). Drop the
// opener with the tree it served.
func CachingOpener(kp nkeys.KeyPair) func(string) (string, error) {
	var mu sync.Mutex
	cache := map[string]string{}
	open := Opener(kp)
	return func(token string) (string, error) {
		mu.Lock()
		p, ok := cache[token]
		mu.Unlock()
		if ok {
			return p, nil
		}
		p, err := open(token)
		if err != nil {
			return "", err
		}
		mu.Lock()
		cache[token] = p
		mu.Unlock()
		return p, nil
	}
}
