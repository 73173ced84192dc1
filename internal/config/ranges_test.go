package config

import (
	"strings"
	"testing"
	"time"
)

// The range checks pass the bounds themselves and, for a value outside,
// name the key, the value and the bounds as an operator writes them.
func TestProblems_Ranges(t *testing.T) {
	var p Problems
	p.IntRange("n.inside", 5, 1, 5)
	p.DurRange("d.at_low_bound", 0, 0, time.Minute)
	if err := p.Err(); err != nil {
		t.Fatalf("values within their bounds: %v", err)
	}
	p.IntRange("n.low", 0, 1, 5)
	p.IntRange("n.high", 6, 1, 5)
	p.DurRange("d.high", 2*time.Minute, 0, time.Minute)
	p.DurRange("d.low", time.Millisecond, 100*time.Millisecond, time.Hour)
	p.DurRange("d.minutes", 0, time.Second, 10*time.Minute)
	got := p.Err().Error()
	for _, want := range []string{
		"config key n.low: 0: want 1 to 5", "config key n.high: 6: want 1 to 5",
		"config key d.high: 2m0s: want 0 to 1m", "config key d.low: 1ms: want 100ms to 1h",
		"config key d.minutes: 0s: want 1s to 10m",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	if len(p) != 5 {
		t.Errorf("%d problems, want 5: %v", len(p), got)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 100 * time.Millisecond: "100ms", 10 * time.Second: "10s", 10 * time.Minute: "10m",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 24 * time.Hour: "24h", 61 * time.Second: "1m1s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
