package loadgen

import (
	"fmt"
	"runtime/metrics"
	"sync"
	"time"
)

// rtSampler reads the Go runtime's own figures for the progress lines:
// what share of the process's CPU the collector took since the last line,
// the live heap, goroutines, and the 99th percentile of the time goroutines
// waited runnable for a core since the last line (the scheduler latency:
// on 2 cores shared by a server, masters and a fleet, a single goroutine
// such as a stream's ingest loop or a master's reader waits that long for
// its turn). One sampler per run; safe for concurrent use.
type rtSampler struct {
	mu      sync.Mutex
	samples []metrics.Sample
	prevGC  float64
	prevAll float64
	prevLat []uint64
	at      time.Time
}

const (
	rtGCCPU      = "/cpu/classes/gc/total:cpu-seconds"
	rtAllCPU     = "/cpu/classes/total:cpu-seconds"
	rtLiveHeap   = "/gc/heap/live:bytes"
	rtGoroutines = "/sched/goroutines:goroutines"
	rtSchedLat   = "/sched/latencies:seconds"
)

func newRTSampler() *rtSampler {
	s := &rtSampler{samples: []metrics.Sample{{Name: rtGCCPU}, {Name: rtAllCPU}, {Name: rtLiveHeap}, {Name: rtGoroutines}, {Name: rtSchedLat}}}
	s.read()
	return s
}

// rtFigures is one sample's reading since the one before.
type rtFigures struct {
	GCShare    float64 // of the process's CPU, 0–1
	LiveHeap   uint64
	Goroutines uint64
	SchedP99   time.Duration
}

func (s *rtSampler) read() rtFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.samples)
	var f rtFigures
	var gc, all float64
	for _, m := range s.samples {
		switch m.Name {
		case rtGCCPU:
			if m.Value.Kind() == metrics.KindFloat64 {
				gc = m.Value.Float64()
			}
		case rtAllCPU:
			if m.Value.Kind() == metrics.KindFloat64 {
				all = m.Value.Float64()
			}
		case rtLiveHeap:
			if m.Value.Kind() == metrics.KindUint64 {
				f.LiveHeap = m.Value.Uint64()
			}
		case rtGoroutines:
			if m.Value.Kind() == metrics.KindUint64 {
				f.Goroutines = m.Value.Uint64()
			}
		case rtSchedLat:
			if m.Value.Kind() == metrics.KindFloat64Histogram {
				h := m.Value.Float64Histogram()
				f.SchedP99 = histDeltaPct(h, s.prevLat, 0.99)
				s.prevLat = append(s.prevLat[:0], h.Counts...)
			}
		}
	}
	if d := all - s.prevAll; d > 0 {
		f.GCShare = (gc - s.prevGC) / d
	}
	s.prevGC, s.prevAll, s.at = gc, all, time.Now()
	return f
}

// histDeltaPct is the q-quantile of the counts added to h since prev (the
// bucket's upper bound; its lower when the upper is +Inf).
func histDeltaPct(h *metrics.Float64Histogram, prev []uint64, q float64) time.Duration {
	var total uint64
	delta := make([]uint64, len(h.Counts))
	for i, c := range h.Counts {
		if i < len(prev) && len(prev) == len(h.Counts) {
			c -= min(c, prev[i])
		}
		delta[i] = c
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var acc uint64
	for i, c := range delta {
		acc += c
		if acc > want {
			hi := h.Buckets[i+1]
			if hi > 1e9 {
				hi = h.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}

func (f rtFigures) String() string {
	return fmt.Sprintf("GC %.0f%% of CPU · live heap %s · %s goroutines · runnable wait p99 %s",
		100*f.GCShare, fmtBytes(int64(f.LiveHeap)), fmtInt(int64(f.Goroutines)), f.SchedP99.Round(time.Microsecond))
}
