package peelproto

import (
	"testing"
	"time"
)

// FuzzParseBeat: any subject and body either parse, and then build the same
// beat again, or are refused; nothing panics.
func FuzzParseBeat(f *testing.F) {
	f.Add("zester.beat.47.web1~example~com", []byte(`{"i":"a3b8beb5b0bc239f","iv":"10s"}`))
	f.Add("zester.beat.3.db1", []byte(`{"i":"x","bye":true}`))
	f.Add("zester.beat.3.bad id", []byte(`{"i":"x"}`))
	f.Add("zester.beat.3.db1", []byte(`{"iv":"soon"}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		p, id, b, err := ParseBeat(subject, data)
		if err != nil {
			return
		}
		m := BeatMsg(p, id, b)
		p2, id2, b2, err := ParseBeat(m.Subject, m.Data)
		if err != nil || p2 != p || id2 != id || b2 != b {
			t.Fatalf("%q %q → %d %q %+v → %q %q → %d %q %+v %v", subject, data, p, id, b, m.Subject, m.Data, p2, id2, b2, err)
		}
	})
}

func TestNextBeat_BelowInterval(t *testing.T) {
	for range 1000 {
		if d := NextBeat(10 * time.Second); d < 8*time.Second || d > 10*time.Second {
			t.Fatalf("NextBeat(10s) = %s", d)
		}
		if d := BeatDelay(time.Second); d < 0 || d >= time.Second {
			t.Fatalf("BeatDelay(1s) = %s", d)
		}
	}
	if BeatDelay(0) != 0 {
		t.Fatal("BeatDelay(0) not 0")
	}
	if _, _, _, err := ParseBeat("zester.beat.1.db1", []byte(`{}`)); err == nil {
		t.Fatal("a beat without an instance parsed")
	}
}
