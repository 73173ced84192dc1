package master

import (
	"slices"
	"testing"
	"time"
)

func TestBeatOnline(t *testing.T) {
	const s = int64(time.Second)
	now := 1000 * s
	for _, tc := range []struct {
		name string
		e    *peelBeat
		want bool
	}{
		{"never heard", nil, false},
		{"heard just now", &peelBeat{last: now, interval: 10 * time.Second}, true},
		{"silent for offline_after exactly", &peelBeat{last: now - 30*s, interval: 5 * time.Second}, true},
		{"silent past offline_after", &peelBeat{last: now - 31*s, interval: 5 * time.Second}, false},
		{"a slow beater gets three beats", &peelBeat{last: now - 50*s, interval: 20 * time.Second}, true},
		{"a slow beater past three beats", &peelBeat{last: now - 61*s, interval: 20 * time.Second}, false},
		{"said goodbye", &peelBeat{last: now, interval: 10 * time.Second, bye: true}, false},
	} {
		if got := beatOnline(tc.e, now, 30*time.Second); got != tc.want {
			t.Errorf("%s: beatOnline = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSplitPresence: who a job expects (online) and lists as offline, and
// how long to wait before silence is proof that a peel is down.
func TestSplitPresence(t *testing.T) {
	const s = int64(time.Second)
	since := 100 * s // the warm-up began
	grace := 2 * time.Second
	peels := map[string]*peelBeat{
		"up":      {last: since + s, interval: 10 * time.Second},
		"old":     {last: since - 60*s, interval: 10 * time.Second}, // heard before the warm-up, silent since
		"bye":     {last: since + s, interval: 10 * time.Second, bye: true},
		"earlier": {last: since - s, interval: 10 * time.Second}, // online, last heard just before the warm-up
	}
	ids := []string{"bye", "earlier", "new", "old", "up"}
	online, offline := []string{"earlier", "up"}, []string{"bye", "new", "old"}
	for _, tc := range []struct {
		name     string
		now      int64
		lastNews int64 // a peel not heard before the warm-up was last heard then
		grace    time.Duration
		wait     time.Duration
	}{
		{"inside the grace: wait for the silent ones", since + s, since + s, grace, time.Second},
		{"grace over, answers stopped: silence is proof", since + 3*s, since + s, grace, 0},
		{"grace over, answers still coming: wait until they stop for grace/2", since + 3*s, since + 2500*int64(time.Millisecond), grace, 500 * time.Millisecond},
		{"answers never stop: proof one beat interval after the grace", since + 12*s, since + 12*s, grace, 0},
		{"answers never stop, just before that bound", since + 11*s, since + 11*s, grace, time.Second},
		{"takeover_grace 0: never wait", since, since, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, off, wait := splitPresence(ids, peels, tc.now, warmUp{since: since, lastNews: tc.lastNews}, tc.grace, 30*time.Second)
			if !slices.Equal(on, online) || !slices.Equal(off, offline) || wait != tc.wait {
				t.Fatalf("got online %v offline %v wait %v; want %v %v %v", on, off, wait, online, offline, tc.wait)
			}
		})
	}
	// A goodbye heard during the warm-up is proof at once: no wait for it.
	if _, off, wait := splitPresence([]string{"bye"}, peels, since+s, warmUp{since: since, lastNews: since + s}, grace, 30*time.Second); !slices.Equal(off, []string{"bye"}) || wait != 0 {
		t.Fatalf("a goodbye: offline %v, wait %v; want [bye] and 0", off, wait)
	}
}
