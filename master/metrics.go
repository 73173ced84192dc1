package master

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

type masterMetrics struct {
	set                                                      *metrics.Set
	disconnects, errors, tableChanges, factUpdates, badFacts *metrics.Counter
	jobsAccepted, jobsFinished, partsFinished, adopted       *metrics.Counter
	dispatched, returns, redispatched                        *metrics.Counter
}

func newMasterMetrics(s *metrics.Set, m *Master) *masterMetrics {
	s.NewGauge(`zester_master_nats_connected`, func() float64 {
		if m.nc != nil && m.nc.IsConnected() {
			return 1
		}
		return 0
	})
	s.NewGauge(`zester_master_ready`, func() float64 {
		if m.ready.Load() {
			return 1
		}
		return 0
	})
	s.NewGauge(`zester_master_owned_partitions`, func() float64 {
		if m.member == nil {
			return 0
		}
		return float64(len(m.member.ownedList()))
	})
	s.NewGauge(`zester_master_peels_known`, func() float64 {
		if m.index == nil {
			return 0
		}
		return float64(m.index.count())
	})
	s.NewGauge(`zester_master_watches_blind`, func() float64 {
		if m.watches == nil {
			return 0
		}
		return float64(len(m.watches.Blind()))
	})
	s.NewGauge(`zester_master_jobs_active`, func() float64 {
		if m.jobs == nil {
			return 0
		}
		return float64(m.jobs.activeCount())
	})
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
	}
}

// watchRecreated counts one watch consumer replaced by its watchdog.
func (mm *masterMetrics) watchRecreated(watch string) {
	mm.set.GetOrCreateCounter(fmt.Sprintf(`zester_master_watch_recreations_total{watch=%q}`, watch)).Inc()
}
