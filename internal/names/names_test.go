package names

import (
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"web1", "web1.example.com", "a", "db_2-x", strings.Repeat("a", 253)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for id, want := range map[string]string{
		"":                       "empty",
		"web 1":                  "column 4",
		"web..x":                 "empty label",
		".web":                   "empty label",
		"web.":                   "empty label",
		"-web":                   "start and end",
		"web*":                   "'*'",
		"web>":                   "'>'",
		"we~b":                   "'~'",
		strings.Repeat("a", 254): "at most 253",
	} {
		err := ValidateID(id)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", id, err, want)
		}
	}
}

func TestToken_RoundTripsAndIsOneToken(t *testing.T) {
	for _, id := range []string{"web1.example.com", "a.b.c", "plain"} {
		tok := Token(id)
		if strings.Contains(tok, ".") || FromToken(tok) != id {
			t.Errorf("%q → %q → %q", id, tok, FromToken(tok))
		}
	}
}

func TestParseReturnSubject(t *testing.T) {
	jid, peel, ok := ParseReturnSubject(ReturnSubjectPrefix + ReturnKey("2026", "web1.example.com"))
	if !ok || jid != "2026" || peel != "web1.example.com" {
		t.Fatalf("%q %q %v", jid, peel, ok)
	}
	for _, bad := range []string{"$KV.jobs.x.y", ReturnSubjectPrefix + "onlyjid", ReturnSubjectPrefix + ".x"} {
		if _, _, ok := ParseReturnSubject(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzValidateID: a valid id always makes exactly one subject token that
// round-trips, and is a valid KV key.
func FuzzValidateID(f *testing.F) {
	seeds(f, "web1.example.com", "a", "a..b", "x~y", "-", "web 1", "ü")
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateID(id) != nil {
			return
		}
		tok := Token(id)
		if strings.ContainsAny(tok, ". *>\t\r\n") || FromToken(tok) != id {
			t.Fatalf("valid id %q makes token %q", id, tok)
		}
		for _, c := range id {
			if !(c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("valid id %q has %q, not a KV key character", id, c)
			}
		}
	})
}

func TestBeatSubject_RoundTrips(t *testing.T) {
	for _, id := range []string{"web1.example.com", "db1"} {
		subj := BeatSubject(17, id)
		p, got, ok := ParseBeatSubject(subj)
		if !ok || p != 17 || got != id {
			t.Errorf("%q → %q → %d %q %v", id, subj, p, got, ok)
		}
		if !strings.HasPrefix(subj, strings.TrimSuffix(BeatFilter(17), "*")) {
			t.Errorf("%q not under %q", subj, BeatFilter(17))
		}
	}
	for _, bad := range []string{"zester.beat.x.web1", "zester.beat.1", "zester.beat.1.", "zester.beat.1.a.b", "zester.job.1", "zester.beat.-1.a"} {
		if _, _, ok := ParseBeatSubject(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseBeatSubject: what parses is rebuilt by BeatSubject into a
// subject that parses to the same partition and id.
func FuzzParseBeatSubject(f *testing.F) {
	seeds(f, "zester.beat.47.web1~example~com", "zester.beat.0.a", "zester.beat.x.a", "zester.beat.1.a.b")
	f.Fuzz(func(t *testing.T, subj string) {
		p, id, ok := ParseBeatSubject(subj)
		if !ok {
			return
		}
		again := BeatSubject(p, id)
		p2, id2, ok2 := ParseBeatSubject(again)
		if !ok2 || p2 != p || id2 != id || strings.Count(again, ".") != 3 {
			t.Fatalf("%q → %d %q → %q → %d %q %v", subj, p, id, again, p2, id2, ok2)
		}
	})
}
