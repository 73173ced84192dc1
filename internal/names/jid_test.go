package names

import (
	"strings"
	"testing"
	"time"
)

func TestNewJID_Validates(t *testing.T) {
	now := time.Date(2026, 11, 26, 7, 48, 14, 372390000, time.UTC)
	jid := NewJID(now)
	if len(jid) != JIDLen || jid[:20] != "20261126074814372390" {
		t.Fatalf("NewJID = %q", jid)
	}
	if err := ValidateJID(jid); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ jid, want string }{
		{"1", "want 22 digits"},
		{"2026112607481437239x41", "column 20"},
		{"2026133107481437239041", "does not start with a time"},
	} {
		if err := ValidateJID(tc.jid); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateJID(%q) = %v, want %q", tc.jid, err, tc.want)
		}
	}
}

// A job id that validates is a safe KV key and one subject token: the
// masters use a client's jid as the key of the job record.
func FuzzValidateJID(f *testing.F) {
	seeds(f, "2026112607481437239041", "1", "2026112607481437239x41", "20261126074814372390411", "9999999999999999999999", "2026112607481437239.41")
	f.Fuzz(func(t *testing.T, jid string) {
		if ValidateJID(jid) != nil {
			return
		}
		if len(jid) != JIDLen || strings.ContainsAny(jid, ".*> \t\r\n") {
			t.Fatalf("valid jid %q is not one key token", jid)
		}
		if _, _, ok := ParseReturnKey(ReturnKey(jid, "web1.example.com")); !ok {
			t.Fatalf("valid jid %q makes an unparsable return key", jid)
		}
	})
}
