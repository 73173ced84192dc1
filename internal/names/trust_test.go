package names

import (
	"strings"
	"testing"
)

// TestInboxPrefixes_Disjoint: no principal's inbox prefix equals or lies
// under another's, for ids that look alike.
func TestInboxPrefixes_Disjoint(t *testing.T) {
	ids := []string{"web1", "web1.example.com", "u", "enroll", "_u", "a"}
	var prefixes []string
	for _, id := range ids {
		if ValidateID(id) != nil {
			continue
		}
		prefixes = append(prefixes, PeelInboxPrefix(id), UserInboxPrefix(id))
	}
	prefixes = append(prefixes, EnrollInboxPrefix)
	for i, a := range prefixes {
		for j, b := range prefixes {
			if i != j && (a == b || strings.HasPrefix(b, a+".")) {
				t.Errorf("inbox prefix %q overlaps %q", a, b)
			}
		}
	}
}

func TestIsInbox(t *testing.T) {
	for _, s := range []string{PeelInboxPrefix("web1.example.com") + ".x", UserInboxPrefix("ops") + ".1", EnrollInboxPrefix + ".a.b", "_INBOX.abc"} {
		if !IsInbox(s) {
			t.Errorf("%q is an inbox", s)
		}
	}
	for _, s := range []string{"$KV.facts.web1", "_INBOX.", "_INBOX", "zester.api.info", "x._INBOX.a"} {
		if IsInbox(s) {
			t.Errorf("%q is not an inbox", s)
		}
	}
}

func TestKeysAndJSSubjects(t *testing.T) {
	if got := KVSubjectPrefix(BucketBasket) + BasketKey("web1.example.com", "ips"); got != "$KV.basket.ips.web1.example.com" {
		t.Errorf("basket subject %q", got)
	}
	if got := JSDirectGetKey(BucketSecrets, SecretsKey("web1.example.com")); got != "$JS.API.DIRECT.GET.KV_secrets.$KV.secrets.web1.example.com" {
		t.Errorf("direct get %q", got)
	}
	if got := JSConsumerCreateFiltered("KV_facts", "$KV.facts.web1"); got != "$JS.API.CONSUMER.CREATE.KV_facts.*.$KV.facts.web1" {
		t.Errorf("consumer create %q", got)
	}
}

func TestValidateKVKeyAndToken(t *testing.T) {
	for _, ok := range []string{"web1", "a.b", "states/web.sls", "k=v_1-2"} {
		if err := ValidateKVKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for key, want := range map[string]string{"": "empty", "a..b": "empty part", ".a": "empty part", "a.": "empty part", "a.*": "'*'", "a.>": "'>'", "a b": "' '", strings.Repeat("a", 1025): "at most 1024"} {
		if err := ValidateKVKey(key); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", key, err, want)
		}
	}
	if err := ValidateToken("basket name", "ips_v4-1"); err != nil {
		t.Error(err)
	}
	for s, want := range map[string]string{"": "empty", "a.b": "'.'", "*": "'*'", strings.Repeat("x", 65): "at most 64"} {
		if err := ValidateToken("basket name", s); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "basket name") {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
}

// FuzzValidateKVKey: a valid key is a literal subject tail: no wildcard,
// no whitespace, no empty token.
func FuzzValidateKVKey(f *testing.F) {
	seeds(f, "web1.example.com", "a..b", "x/y=z", "*", "a.>", " ")
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKVKey(key) != nil {
			return
		}
		if strings.ContainsAny(key, "*> \t\r\n") {
			t.Fatalf("valid key %q holds a wildcard or whitespace", key)
		}
		for _, tok := range strings.Split(key, ".") {
			if tok == "" {
				t.Fatalf("valid key %q has an empty token", key)
			}
		}
	})
}

// The wildcards match what the per-partition functions build, token for
// token.
func TestAnyWildcards_MatchTheirFunctions(t *testing.T) {
	match := func(pattern, subject string) bool {
		p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
		if len(p) != len(s) {
			return false
		}
		for i := range p {
			if p[i] != "*" && p[i] != s[i] {
				return false
			}
		}
		return true
	}
	for _, c := range []struct{ pattern, subject string }{
		{JobSubjectAny(), JobSubject(17)},
		{ControlSubjectAny(), ControlSubject(3)},
		{BeatSubjectAny(), BeatSubject(63, "web1.example.com")},
		{PeelInboxAny(), PeelInbox("web1.example.com")},
	} {
		if !match(c.pattern, c.subject) {
			t.Errorf("%s does not match %s", c.pattern, c.subject)
		}
	}
}
