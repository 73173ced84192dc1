package simfleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Dist is a latency distribution: how long a simulated peel takes between
// receiving a dispatch and storing its return.
//
// Text forms (flag --latency):
//
//	0 | 250ms | fixed:250ms          every return after exactly that long
//	uniform:100ms-2s                 uniform between the two bounds
//	lognormal:50ms,0.8               log-normal with that median and sigma
//	lognormal:50ms,0.8,max=5s        … capped at max
type Dist struct {
	Kind   string        `json:"kind"` // fixed, uniform, lognormal
	A      time.Duration `json:"a"`    // fixed value, uniform low bound, lognormal median
	B      time.Duration `json:"b"`    // uniform high bound
	Sigma  float64       `json:"sigma,omitempty"`
	Max    time.Duration `json:"max,omitempty"` // lognormal cap (0: none)
	source string
}

// Fixed returns a distribution that always yields d.
func Fixed(d time.Duration) Dist { return Dist{Kind: "fixed", A: d} }

// Uniform returns a uniform distribution on [lo, hi].
func Uniform(lo, hi time.Duration) Dist { return Dist{Kind: "uniform", A: lo, B: hi} }

// ParseDist reads the text form of a Dist.
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	kind, rest, found := strings.Cut(s, ":")
	if !found {
		kind, rest = "fixed", s
	}
	bad := func(format string, a ...any) (Dist, error) {
		return Dist{}, fmt.Errorf("latency %q: %s (want 0, 250ms, fixed:250ms, uniform:100ms-2s or lognormal:50ms,0.8[,max=5s])", s, fmt.Sprintf(format, a...))
	}
	dur := func(v string) (time.Duration, error) {
		v = strings.TrimSpace(v)
		if v == "0" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, err
		}
		if d < 0 {
			return 0, fmt.Errorf("negative duration %s", v)
		}
		return d, nil
	}
	switch kind {
	case "fixed":
		d, err := dur(rest)
		if err != nil {
			return bad("%v", err)
		}
		return Dist{Kind: "fixed", A: d, source: s}, nil
	case "uniform":
		lo, hi, ok := strings.Cut(rest, "-")
		if !ok {
			lo, hi, ok = strings.Cut(rest, ",")
		}
		if !ok {
			return bad("uniform needs two bounds")
		}
		a, err := dur(lo)
		if err != nil {
			return bad("%v", err)
		}
		b, err := dur(hi)
		if err != nil {
			return bad("%v", err)
		}
		if b < a {
			return bad("upper bound %s below lower bound %s", b, a)
		}
		return Dist{Kind: "uniform", A: a, B: b, source: s}, nil
	case "lognormal":
		parts := strings.Split(rest, ",")
		if len(parts) < 2 || len(parts) > 3 {
			return bad("lognormal needs a median and a sigma")
		}
		m, err := dur(parts[0])
		if err != nil {
			return bad("%v", err)
		}
		sg, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err != nil || sg < 0 || sg > 5 {
			return bad("sigma %q: want a number from 0 to 5", parts[1])
		}
		d := Dist{Kind: "lognormal", A: m, Sigma: sg, source: s}
		if len(parts) == 3 {
			v, ok := strings.CutPrefix(strings.TrimSpace(parts[2]), "max=")
			if !ok {
				return bad("third lognormal field must be max=DURATION")
			}
			if d.Max, err = dur(v); err != nil {
				return bad("%v", err)
			}
		}
		return d, nil
	default:
		return bad("unknown kind %q", kind)
	}
}

// Zero reports whether every sample is 0 (returns are stored at once).
func (d Dist) Zero() bool {
	switch d.Kind {
	case "", "fixed":
		return d.A == 0
	case "uniform":
		return d.B == 0
	case "lognormal":
		return d.A == 0
	}
	return false
}

// value is what the distribution gives: uniform() for a uniform one,
// A·e^x() capped at Max (when set) for a log-normal one, A for a fixed one.
// The functions run only for their kind (x draws a random number in Sample).
func (d Dist) value(uniform func() time.Duration, x func() float64) time.Duration {
	switch d.Kind {
	case "uniform":
		return uniform()
	case "lognormal":
		v := time.Duration(float64(d.A) * math.Exp(x()))
		if d.Max > 0 && v > d.Max {
			v = d.Max
		}
		return v
	}
	return d.A
}

// Sample draws one latency.
func (d Dist) Sample() time.Duration {
	return d.value(func() time.Duration {
		if d.B <= d.A {
			return d.A
		}
		return d.A + time.Duration(rand.Int64N(int64(d.B-d.A)+1))
	}, func() float64 { return d.Sigma * rand.NormFloat64() })
}

// Mean is the distribution's mean (for sizing timeouts).
func (d Dist) Mean() time.Duration {
	return d.value(func() time.Duration { return (d.A + d.B) / 2 }, func() float64 { return d.Sigma * d.Sigma / 2 })
}

// Upper is a bound that almost every sample stays under (e^4σ: 4 standard
// deviations above the median of a log-normal one).
func (d Dist) Upper() time.Duration {
	return d.value(func() time.Duration { return d.B }, func() float64 { return 4 * d.Sigma })
}

func (d Dist) String() string {
	switch d.Kind {
	case "uniform":
		return fmt.Sprintf("uniform:%s-%s", d.A, d.B)
	case "lognormal":
		s := fmt.Sprintf("lognormal:%s,%g", d.A, d.Sigma)
		if d.Max > 0 {
			s += ",max=" + d.Max.String()
		}
		return s
	default:
		if d.A == 0 {
			return "0"
		}
		return "fixed:" + d.A.String()
	}
}
