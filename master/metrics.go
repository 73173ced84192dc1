package master

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/zester-io/zester/internal/kvwatch"
)

type masterMetrics struct {
	set                                                           *metrics.Set
	disconnects, errors, tableChanges, factUpdates, badFacts      *metrics.Counter
	jobsAccepted, jobsFinished, partsFinished, adopted            *metrics.Counter
	dispatched, returns, redispatched, redispatchSkipped, rescans *metrics.Counter
}

func newMasterMetrics(s *metrics.Set, m *Master) *masterMetrics {
	flagGauge(s, `zester_master_nats_connected`, func() bool { return m.nc != nil && m.nc.IsConnected() })
	flagGauge(s, `zester_master_ready`, m.ready.Load)
	sizeGauge(s, `zester_master_owned_partitions`, func() *membership { return m.member }, func(ms *membership) int { return len(ms.ownedList()) })
	sizeGauge(s, `zester_master_peels_known`, func() *factIndex { return m.index }, (*factIndex).count)
	sizeGauge(s, `zester_master_watches_blind`, func() *kvwatch.Monitor { return m.watches }, func(w *kvwatch.Monitor) int { return len(w.Blind()) })
	sizeGauge(s, `zester_master_jobs_active`, func() *jobEngine { return m.jobs }, (*jobEngine).activeCount)
	return &masterMetrics{
		set:           s,
		disconnects:   s.NewCounter(`zester_master_nats_disconnects_total`),
		errors:        s.NewCounter(`zester_master_errors_total`),
		tableChanges:  s.NewCounter(`zester_master_partition_table_changes_total`),
		factUpdates:   s.NewCounter(`zester_master_fact_updates_total`),
		badFacts:      s.NewCounter(`zester_master_bad_fact_keys_total`),
		jobsAccepted:  s.NewCounter(`zester_master_jobs_accepted_total`),
		jobsFinished:  s.NewCounter(`zester_master_jobs_finished_total`),
		partsFinished: s.NewCounter(`zester_master_job_parts_finished_total`),
		adopted:       s.NewCounter(`zester_master_job_parts_adopted_total`),
		dispatched:    s.NewCounter(`zester_master_peels_dispatched_total`),
		returns:       s.NewCounter(`zester_master_returns_total`),
		redispatched:  s.NewCounter(`zester_master_peels_redispatched_total`),
		// Waiting peels a redispatch left out: connected since the job
		// was sent to them.
		redispatchSkipped: s.NewCounter(`zester_master_peels_redispatch_skipped_total`),
		rescans:           s.NewCounter(`zester_master_job_rescans_total`),
	}
}

// flagGauge is a gauge of 1 while on is true, else 0.
func flagGauge(s *metrics.Set, name string, on func() bool) {
	s.NewGauge(name, func() float64 {
		if on() {
			return 1
		}
		return 0
	})
}

// sizeGauge is a gauge of n of the part that part returns, 0 while that is
// nil (the part is made during Start, after the metrics).
func sizeGauge[T any](s *metrics.Set, name string, part func() *T, n func(*T) int) {
	s.NewGauge(name, func() float64 {
		if p := part(); p != nil {
			return float64(n(p))
		}
		return 0
	})
}

// watchRecreated counts one watch consumer replaced by its watchdog.
func (mm *masterMetrics) watchRecreated(watch string) {
	mm.set.GetOrCreateCounter(fmt.Sprintf(`zester_master_watch_recreations_total{watch=%q}`, watch)).Inc()
}
