package backoff_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/backoff"
)

func TestBackoff_Ceiling_DoublesToCap(t *testing.T) {
	b := backoff.New(100*time.Millisecond, time.Second)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for n, w := range want {
		if got := b.Ceiling(n); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	// No overflow far past the cap.
	if got := backoff.New(time.Second, 1<<62).Ceiling(200); got != 1<<62 {
		t.Errorf("Ceiling(200) = %v, want the cap", got)
	}
}

func TestBackoff_New_Bounds(t *testing.T) {
	cases := []struct {
		name     string
		min, max time.Duration
		wantMin  time.Duration
		wantMax  time.Duration
	}{
		{"zero min is 1ms", 0, time.Second, time.Millisecond, time.Second},
		{"negative min is 1ms", -time.Second, time.Second, time.Millisecond, time.Second},
		{"max below min is min", time.Second, time.Millisecond, time.Second, time.Second},
		{"as given", 10 * time.Millisecond, 30 * time.Second, 10 * time.Millisecond, 30 * time.Second},
	}
	for _, c := range cases {
		b := backoff.New(c.min, c.max)
		if b.Ceiling(0) != c.wantMin || b.Max() != c.wantMax {
			t.Errorf("%s: Ceiling(0) %v Max %v, want %v %v", c.name, b.Ceiling(0), b.Max(), c.wantMin, c.wantMax)
		}
	}
}

// Every delay is within [0, ceiling of its attempt], the ceilings grow to the
// cap and stay there, and Reset starts again from min.
func TestBackoff_Next_FullJitterGrowsAndResets(t *testing.T) {
	b := backoff.New(10*time.Millisecond, 640*time.Millisecond, backoff.WithRand(rand.NewPCG(1, 2)))
	check := func(round int) {
		for n := 0; n < 12; n++ {
			d := b.Next()
			if c := b.Ceiling(n); d < 0 || d > c {
				t.Fatalf("round %d attempt %d: delay %v outside [0, %v]", round, n, d, c)
			}
		}
	}
	check(0)
	b.Reset()
	// After a reset the first delay is bounded by min again: draw the first
	// delay many times to be sure it never exceeds it.
	for i := 0; i < 1000; i++ {
		b.Reset()
		if d := b.Next(); d > 10*time.Millisecond {
			t.Fatalf("after Reset: first delay %v > min", d)
		}
	}
	b.Reset()
	check(1)
}

// Same source, same sequence: tests and simulations can replay it.
func TestBackoff_WithRand_Deterministic(t *testing.T) {
	seq := func() []time.Duration {
		b := backoff.New(time.Millisecond, time.Second, backoff.WithRand(rand.NewPCG(7, 7)))
		var out []time.Duration
		for i := 0; i < 20; i++ {
			out = append(out, b.Next())
		}
		return out
	}
	a, c := seq(), seq()
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("delay %d differs: %v vs %v", i, a[i], c[i])
		}
	}
}

// The delays at the cap are spread over the whole window (full jitter, not
// cap ± a little): their mean is near cap/2 and they cover both halves.
func TestBackoff_Next_SpreadsOverWindow(t *testing.T) {
	const capD = time.Second
	b := backoff.New(capD, capD, backoff.WithRand(rand.NewPCG(3, 4)))
	var sum time.Duration
	low, high := 0, 0
	const n = 10000
	for i := 0; i < n; i++ {
		d := b.Next()
		sum += d
		if d < capD/4 {
			low++
		}
		if d > 3*capD/4 {
			high++
		}
	}
	mean := sum / n
	if mean < 450*time.Millisecond || mean > 550*time.Millisecond {
		t.Errorf("mean delay %v, want about %v", mean, capD/2)
	}
	if low < n/5 || high < n/5 {
		t.Errorf("quartiles: %d below cap/4, %d above 3cap/4 of %d; want about a quarter each", low, high, n)
	}
}

func TestRetry_SucceedsAfterFailuresAndResets(t *testing.T) {
	b := backoff.New(time.Millisecond, 4*time.Millisecond)
	calls := 0
	err := backoff.Retry(context.Background(), b, func(context.Context) error {
		calls++
		if calls < 5 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 5 {
		t.Fatalf("err %v after %d calls, want nil after 5", err, calls)
	}
	// Reset on success: the next delay is bounded by min again.
	for i := 0; i < 100; i++ {
		if d := b.Next(); i == 0 && d > time.Millisecond {
			t.Fatalf("first delay after success %v > min", d)
		}
	}
}

func TestRetry_PermanentStopsAtOnce(t *testing.T) {
	bad := errors.New("bucket config conflicts")
	calls := 0
	err := backoff.Retry(context.Background(), backoff.New(time.Millisecond, time.Millisecond), func(context.Context) error {
		calls++
		return backoff.Permanent(bad)
	})
	if calls != 1 || !errors.Is(err, bad) || err.Error() != bad.Error() {
		t.Fatalf("calls %d err %v, want one call and %v", calls, err, bad)
	}
	if backoff.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

func TestRetry_ContextEndReturnsLastError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	last := errors.New("no responders")
	calls := 0
	err := backoff.Retry(ctx, backoff.New(time.Millisecond, 2*time.Millisecond), func(context.Context) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return last
	})
	if !errors.Is(err, last) || calls != 3 {
		t.Fatalf("err %v after %d calls, want %v after 3", err, calls, last)
	}
	// A context that is already over: op never runs, ctx's error comes back.
	err = backoff.Retry(ctx, backoff.New(time.Millisecond, time.Millisecond), func(context.Context) error {
		t.Fatal("op ran after ctx ended")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestDelay_WithinCeilingAndStateless(t *testing.T) {
	b := backoff.New(100*time.Millisecond, 2*time.Second, backoff.WithRand(rand.NewPCG(1, 2)))
	for n := 0; n < 40; n++ {
		c := b.Ceiling(n)
		for i := 0; i < 50; i++ {
			if d := b.Delay(n); d < 0 || d > c {
				t.Fatalf("Delay(%d) = %s, want within [0, %s]", n, d, c)
			}
		}
	}
	// Delay does not advance Next's growth: the first Next is still
	// bounded by the minimum.
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("first Next after Delays = %s, want <= 100ms", d)
	}
}
