package peel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// TestIdentity_KeysKeptAndGuarded: keys are made once (0600) and read back
// the same; a seed others can read is refused; a JWT for another id or key
// is not used.
func TestIdentity_KeysKeptAndGuarded(t *testing.T) {
	dir := t.TempDir()
	a, err := loadIdentity(dir, "web1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadIdentity(dir, "web1")
	if err != nil || b.pub != a.pub {
		t.Fatalf("second load: %v, key %s vs %s", err, b.pub, a.pub)
	}
	for _, f := range []string{fileNKey, fileCurve} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, st.Mode())
		}
	}
	if a.valid(time.Now()) || a.JWT() != "" {
		t.Fatal("a new identity has credentials")
	}
	// A JWT signed by some account for this key and id is taken; one for
	// another id is not.
	acc, _ := nkeys.CreateAccount()
	issue := func(name, sub string) string {
		uc := jwt.NewUserClaims(sub)
		uc.Name = name
		uc.Expires = time.Now().Add(time.Hour).Unix()
		tok, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if err := a.setJWT(issue("web2", a.pub)); err == nil || !strings.Contains(err.Error(), `not "web1"`) {
		t.Fatalf("a JWT for web2: %v", err)
	}
	other, _ := nkeys.CreateUser()
	opub, _ := other.PublicKey()
	if err := a.setJWT(issue("web1", opub)); err == nil || !strings.Contains(err.Error(), "not this peel's") {
		t.Fatalf("a JWT for another key: %v", err)
	}
	if err := a.setJWT(issue("web1", a.pub)); err != nil || !a.valid(time.Now()) {
		t.Fatalf("own JWT: %v", err)
	}
	if c, err := loadIdentity(dir, "web1"); err != nil || !c.valid(time.Now()) {
		t.Fatalf("reload with JWT: %v", err)
	}
	if c, err := loadIdentity(dir, "web1-renamed"); err != nil || c.valid(time.Now()) || c.pub != a.pub {
		t.Fatalf("after an id change the old JWT must not be used: %v", err)
	}
	if ra := a.renewAt(); ra.Before(time.Now().Add(35*time.Minute)) || ra.After(time.Now().Add(45*time.Minute)) {
		t.Fatalf("renew at %s, want two thirds into the hour", ra)
	}
	os.Chmod(filepath.Join(dir, fileNKey), 0o644)
	if _, err := loadIdentity(dir, "web1"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable seed: %v", err)
	}
}
