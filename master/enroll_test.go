package master_test

import (
	"strings"
	"testing"

	"github.com/zester-io/zester/master"
)

func TestConfig_Enroll(t *testing.T) {
	c, err := master.ParseConfig([]byte("id: m1\nenroll:\n  auto_accept: ['web-*', 'G@os:id:debian']\n  creds_expiry: 7d\n  challenge_ttl: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Enroll.AutoAccept) != 2 || c.Enroll.CredsExpiry.D().Hours() != 168 || c.Enroll.ChallengeTTL.D().Seconds() != 30 {
		t.Fatalf("enroll: %+v", c.Enroll)
	}
	for in, want := range map[string]string{
		"enroll:\n  auto_accept: ['web-*', 'G@']\n": "config key enroll.auto_accept: auto_accept[1]",
		"enroll:\n  creds_expiry: 1s\n":             "config key enroll.creds_expiry: 1s",
		"enroll:\n  challenge_ttl: 10m\n":           "config key enroll.challenge_ttl: 10m0s",
		"enroll:\n  challenge_ttl: soon\n":          "enroll.challenge_ttl",
		"enroll:\n  auto_accept: ['N@nope']\n":      "enroll.auto_accept",
	} {
		if _, err := master.ParseConfig([]byte("id: m1\n" + in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
