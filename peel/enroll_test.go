package peel_test

import (
	"strings"
	"testing"

	"github.com/zester-io/zester/peel"
)

func TestConfig_Enroll(t *testing.T) {
	if _, err := peel.ParseConfig([]byte("id: web1\nenroll_creds: /etc/zester/enroll.creds\nenroll_token: zet1_" + strings.Repeat("A", 43) + "\n")); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"enroll_creds: /e.creds\nnats:\n  creds: /p.creds\n":   "config key enroll_creds: set either enroll_creds",
		"enroll_token: zet1_" + strings.Repeat("A", 43) + "\n": "config key enroll_token: needs enroll_creds",
		"enroll_creds: /e.creds\nenroll_token: secret\n":       "config key enroll_token: enrollment token: does not start with",
	} {
		if _, err := peel.ParseConfig([]byte("id: web1\n" + in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
