package names

import (
	"strings"
	"testing"
)

// FuzzParseReturnSubject: a subject that parses is exactly the one
// ReturnKey rebuilds from its parts, the job id holds no dot (the peel id
// may), and it parses exactly as its key does.
// seeds adds each of ss to f's seed corpus (beside testdata/fuzz).
func seeds(f *testing.F, ss ...string) {
	for _, s := range ss {
		f.Add(s)
	}
}

func FuzzParseReturnSubject(f *testing.F) {
	seeds(f,
		ReturnSubjectPrefix+"2026120121000000000042.web1.example.com",
		ReturnSubjectPrefix+"2026120121000000000042.db1",
		ReturnSubjectPrefix+"onlyjid",
		ReturnSubjectPrefix+".x",
		ReturnSubjectPrefix+"x.",
		"$KV.jobs.x.y",
		"",
	)
	f.Fuzz(func(t *testing.T, subj string) {
		jid, peel, ok := ParseReturnSubject(subj)
		// The subject parser is the key parser behind the bucket's prefix.
		rest, prefixed := strings.CutPrefix(subj, ReturnSubjectPrefix)
		kj, kp, kok := ParseReturnKey(rest)
		if ok != (prefixed && kok) || ok && (kj != jid || kp != peel) {
			t.Fatalf("ParseReturnSubject(%q) = %q %q %v, its key parses to %q %q %v", subj, jid, peel, ok, kj, kp, kok)
		}
		if !ok {
			return
		}
		if jid == "" || peel == "" || strings.Contains(jid, ".") {
			t.Fatalf("%q → jid %q peel %q", subj, jid, peel)
		}
		if again := ReturnSubjectPrefix + ReturnKey(jid, peel); again != subj {
			t.Fatalf("%q → %q %q → %q", subj, jid, peel, again)
		}
	})
}

// FuzzReturnKey: every valid job id and peel id survive ReturnKey and the
// return subject, and come back from the parsers unchanged.
func FuzzReturnKey(f *testing.F) {
	f.Add("2026120121000000000042", "web1.example.com")
	f.Add("2026120121000000000042", "a")
	f.Add("20261301210000000000xx", "web1")
	f.Add("2026120121000000000042", "a..b")
	f.Fuzz(func(t *testing.T, jid, peel string) {
		if ValidateJID(jid) != nil || ValidateID(peel) != nil {
			return
		}
		key := ReturnKey(jid, peel)
		if ValidateKVKey(key) != nil {
			t.Fatalf("ReturnKey(%q, %q) = %q: not a valid KV key: %v", jid, peel, key, ValidateKVKey(key))
		}
		if j, p, ok := ParseReturnKey(key); !ok || j != jid || p != peel {
			t.Fatalf("ParseReturnKey(%q) = %q %q %v", key, j, p, ok)
		}
		if j, p, ok := ParseReturnSubject(ReturnSubjectPrefix + key); !ok || j != jid || p != peel {
			t.Fatalf("ParseReturnSubject(%q) = %q %q %v", ReturnSubjectPrefix+key, j, p, ok)
		}
	})
}
