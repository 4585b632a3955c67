package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// metrics are moodsync's Prometheus series. Labels are fixed, small sets:
// never a user, DID or mood id.
type metrics struct {
	intents      *prometheus.CounterVec
	actions      *prometheus.CounterVec
	logins       prometheus.Counter
	refreshes    prometheus.Counter
	writeSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		intents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moodsync_intents_total", Help: "Intents handled, by op and outcome (applied, retry, dead).",
		}, []string{"op", "outcome"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moodsync_engine_actions_total", Help: "Actions the reconcile engine took, by action.",
		}, []string{"action"}),
		logins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moodsync_pds_logins_total", Help: "PDS createSession calls (password logins).",
		}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moodsync_pds_refreshes_total", Help: "PDS refreshSession calls.",
		}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "moodsync_pds_write_seconds", Help: "Latency of PDS write calls, by method.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"method"}),
	}
	reg.MustRegister(m.intents, m.actions, m.logins, m.refreshes, m.writeSeconds,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) intent(op, outcome string) { m.intents.WithLabelValues(op, outcome).Inc() }

func (m *metrics) engineAction(action string, n int) {
	m.actions.WithLabelValues(action).Add(float64(n))
}

func (m *metrics) instrumentPDS(c *pdsclient.Client) {
	c.OnLogin = func(string) { m.logins.Inc() }
	c.OnRefresh = func(string) { m.refreshes.Inc() }
	c.OnWrite = func(method string, d time.Duration, _ error) {
		m.writeSeconds.WithLabelValues(method).Observe(d.Seconds())
	}
}
