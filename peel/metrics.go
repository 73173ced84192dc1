package peel

import "github.com/VictoriaMetrics/metrics"

type peelMetrics struct {
	disconnects, jobsRun, jobsFailed, returns, returnErrors *metrics.Counter
	spoolDelivered, factPublishes, factErrors               *metrics.Counter
	badDispatch, dupDispatch                                *metrics.Counter
}

func newPeelMetrics(s *metrics.Set, p *Peel) *peelMetrics {
	s.NewGauge(`zester_peel_nats_connected`, func() float64 {
		if p.nc != nil && p.nc.IsConnected() {
			return 1
		}
		return 0
	})
	s.NewGauge(`zester_peel_spooled_returns`, func() float64 { return float64(p.sp.count()) })
	s.NewGauge(`zester_peel_jobs_running`, func() float64 { return float64(len(p.jobSem)) })
	return &peelMetrics{
		disconnects:    s.NewCounter(`zester_peel_nats_disconnects_total`),
		jobsRun:        s.NewCounter(`zester_peel_jobs_run_total`),
		jobsFailed:     s.NewCounter(`zester_peel_jobs_failed_total`),
		returns:        s.NewCounter(`zester_peel_returns_stored_total`),
		returnErrors:   s.NewCounter(`zester_peel_return_errors_total`),
		spoolDelivered: s.NewCounter(`zester_peel_spool_delivered_total`),
		factPublishes:  s.NewCounter(`zester_peel_fact_publishes_total`),
		factErrors:     s.NewCounter(`zester_peel_fact_errors_total`),
		badDispatch:    s.NewCounter(`zester_peel_bad_dispatch_total`),
		dupDispatch:    s.NewCounter(`zester_peel_duplicate_dispatch_total`),
	}
}
