package names

import "testing"

func TestParseJobKey(t *testing.T) {
	for _, tc := range []struct {
		key        string
		jid        string
		part       int
		isPart, ok bool
	}{
		{"20260101120000000000042", "20260101120000000000042", 0, false, true},
		{JobPartKey("20260101120000000000042", 17), "20260101120000000000042", 17, true, true},
		{JobPartKey("j", 0), "j", 0, true, true},
		{"", "", 0, false, false},
		{"j.", "", 0, false, false},
		{"j.p", "", 0, false, false},
		{"j.x1", "", 0, false, false},
		{"j.p-1", "", 0, false, false},
		{"j.p+1", "", 0, false, false},
		{"j.p01", "", 0, false, false},
		{"j.p1.x", "", 0, false, false},
		{".p1", "", 0, false, false},
	} {
		jid, part, isPart, ok := ParseJobKey(tc.key)
		if jid != tc.jid || part != tc.part || isPart != tc.isPart || ok != tc.ok {
			t.Errorf("ParseJobKey(%q) = %q %d %v %v; want %q %d %v %v", tc.key, jid, part, isPart, ok, tc.jid, tc.part, tc.isPart, tc.ok)
		}
	}
}

// FuzzParseJobKey: a key that parses is exactly the key its parts build.
func FuzzParseJobKey(f *testing.F) {
	seeds(f, "20260101120000000000042", "j.p3", "j.p", "j.p03", ".p1", "a.b.c")
	f.Fuzz(func(t *testing.T, key string) {
		jid, part, isPart, ok := ParseJobKey(key)
		if !ok {
			return
		}
		want := JobKey(jid)
		if isPart {
			want = JobPartKey(jid, part)
		}
		if want != key {
			t.Fatalf("ParseJobKey(%q) = %q %d %v: builds %q", key, jid, part, isPart, want)
		}
	})
}
