package config

import (
	"strings"
	"testing"
	"time"
)

// The range checks name the key, the bad value and the bounds as an operator
// writes them, and pass the bounds themselves.
func TestProblems_Ranges(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  func(p *Problems)
		want string // "" for no problem
	}{
		{"int inside", func(p *Problems) { p.IntRange("n", 5, 1, 5) }, ""},
		{"int low", func(p *Problems) { p.IntRange("n", 0, 1, 5) }, "config key n: 0: want 1 to 5"},
		{"int high", func(p *Problems) { p.IntRange("n", 6, 1, 5) }, "config key n: 6: want 1 to 5"},
		{"dur at the low bound", func(p *Problems) { p.DurRange("d", 0, 0, time.Minute) }, ""},
		{"dur high", func(p *Problems) { p.DurRange("d", 2*time.Minute, 0, time.Minute) }, "config key d: 2m0s: want 0 to 1m"},
		{"dur low", func(p *Problems) { p.DurRange("d", time.Millisecond, 100*time.Millisecond, time.Hour) }, "config key d: 1ms: want 100ms to 1h"},
		{"dur bounds in minutes", func(p *Problems) { p.DurRange("d", 0, time.Second, 10*time.Minute) }, "config key d: 0s: want 1s to 10m"},
	} {
		var p Problems
		tc.add(&p)
		err := p.Err()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no problem", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
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
