package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDuration_UnmarshalJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"10s"`: 10 * time.Second, `"1m30s"`: 90 * time.Second, `"250ms"`: 250 * time.Millisecond,
		`2.5`: 2500 * time.Millisecond, `null`: 0, `"\u0031s"`: time.Second, // escaped: the slow path
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("%s: %s %v, want %s", in, d.D(), err, want)
		}
	}
	for in, want := range map[string]string{`"soon"`: `duration "soon"`, `true`: "want a string", `""`: `duration ""`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	b, _ := json.Marshal(Beat{Instance: "a", Interval: Duration(10 * time.Second)})
	var back Beat
	if err := json.Unmarshal(b, &back); err != nil || back.Interval.D() != 10*time.Second {
		t.Fatalf("beat round trip %s: %+v %v", b, back, err)
	}
}
