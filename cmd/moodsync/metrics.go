package main

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// metrics are moodsync's Prometheus series. Labels are fixed, small sets:
// never a user, DID or mood id.
type metrics struct {
	intents      *prometheus.CounterVec
	actions      *prometheus.CounterVec
	logins       prometheus.Counter
	refreshes    prometheus.Counter
	rateLimited  prometheus.Counter
	writeSeconds *prometheus.HistogramVec

	leader        prometheus.Gauge
	leaderChanges *prometheus.CounterVec
	aePasses      prometheus.Counter
	driftFound    prometheus.Counter
	driftFixed    prometheus.Counter
	guardTrips    prometheus.Counter
	lostFound     prometheus.Counter
	breakerHeld   prometheus.Counter
	aeLastPass    prometheus.Gauge
	malformed     *prometheus.CounterVec
	adminDenied   *prometheus.CounterVec
	// state is read at scrape time: the firehose follower (its counters
	// and lag), NATS reconnects and the streams (collect.go).
	state *stateCollector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		intents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moodsync_intents_total", Help: "Intents handled, by op and outcome (applied, retry, dead, parked).",
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
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moodsync_pds_rate_limited_total", Help: "429 answers of the PDS to an account's calls; that account's calls wait for the reset the PDS named.",
		}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "moodsync_pds_write_seconds", Help: "Latency of PDS write calls, by method.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"method"}),
	}
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moodsync_firehose_leader", Help: "1 while this replica holds the leader lease and follows the firehose.",
	})
	m.leaderChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moodsync_leader_changes_total", Help: "Leadership changes of this replica, by reason (acquired, released, lost).",
	}, []string{"reason"})
	m.aePasses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_anti_entropy_passes_total", Help: "Periodic anti-entropy passes that queued a reconcile of every user.",
	})
	m.driftFound = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_drift_found_total", Help: "Disagreements between Mongo and the PDS found by whole-user reconciles.",
	})
	m.driftFixed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_drift_fixed_total", Help: "Fixes whole-user reconciles carried out.",
	})
	m.guardTrips = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_mass_delete_guard_trips_total", Help: "Whole-user reconciles that found more of a user's records missing than the mass-delete guard allows, and soft-deleted none of them.",
	})
	m.lostFound = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_lost_moods_found_total", Help: "Records of lost moods found (a ref naming no MongoDB document: Mongo restored from a backup, a document deleted by hand), on firehose ops and in whole-user reconciles; kept, never deleted, for moodsync restore.",
	})
	m.breakerHeld = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moodsync_mass_delete_breaker_held_total", Help: "Soft deletes for missing records held by the mass-delete breaker across all users (tripped past MOODSYNC_MASS_DELETE_BREAKER an hour), until an operator releases it.",
	})
	m.aeLastPass = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moodsync_anti_entropy_last_pass_timestamp_seconds", Help: "When the last anti-entropy pass of this replica started (Unix time).",
	})
	m.malformed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moodsync_mongo_malformed_documents_total", Help: "Reads of app documents moodsync cannot use (a field missing or of the wrong type), by collection: each skipped, logged with its _id, never written on a guess.",
	}, []string{"collection"})
	m.adminDenied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moodsync_http_admin_denied_total", Help: "Requests to the admin routes refused, by reason: unauthorized (no or a wrong token), rate_limited (a client that failed too often).",
	}, []string{"reason"})
	for _, r := range []string{deniedUnauthorized, deniedRateLimited} {
		m.adminDenied.WithLabelValues(r)
	}
	for _, c := range []string{mongostore.MoodsCollection, mongostore.UsersCollection} {
		m.malformed.WithLabelValues(c)
	}
	for _, r := range []string{"acquired", "released", "lost"} {
		m.leaderChanges.WithLabelValues(r)
	}
	for _, op := range intentOps {
		for _, o := range []string{"applied", "retry", "dead", "parked"} {
			m.intents.WithLabelValues(op, o)
		}
	}
	m.intents.WithLabelValues("invalid", "dead")
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moodsync_build_info", Help: "Always 1; the version is a label.", ConstLabels: prometheus.Labels{"version": Version},
	})
	build.Set(1)
	m.state = &stateCollector{}
	reg.MustRegister(m.intents, m.actions, m.logins, m.refreshes, m.rateLimited, m.writeSeconds,
		m.leader, m.leaderChanges, m.aePasses, m.driftFound, m.driftFixed, m.guardTrips, m.lostFound, m.breakerHeld, m.aeLastPass, m.malformed, m.adminDenied, build, m.state,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// leadership is the leader lease's OnChange hook.
func (m *metrics) leadership(leading bool, reason string) {
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
	m.leaderChanges.WithLabelValues(reason).Inc()
}

// antiEntropyPass is the hook for the end of an anti-entropy pass
// (reconcile.AntiEntropy.OnPass): the users queued (0 when a sweep had
// just done it).
func (m *metrics) antiEntropyPass(started time.Time, queued int) {
	if queued > 0 {
		m.aePasses.Inc()
	}
	m.aeLastPass.Set(float64(started.Unix()))
}

// intentOps are the ops an intent label may name; anything else is
// reported as "invalid", so a bad intent cannot add series.
var intentOps = []string{intent.OpCreate, intent.OpDelete, intent.OpPurge, intent.OpReconcile}

func (m *metrics) intent(op, outcome string) {
	if !slices.Contains(intentOps, op) {
		op = "invalid"
	}
	m.intents.WithLabelValues(op, outcome).Inc()
}

// engineAction is the engine's Observe hook. Drift and the mass-delete
// guard have series of their own; every other action is counted by name.
func (m *metrics) engineAction(action string, n int) {
	switch action {
	case reconcile.ActionDriftFound:
		m.driftFound.Add(float64(n))
	case reconcile.ActionDriftFixed:
		m.driftFixed.Add(float64(n))
	case reconcile.ActionMassDeleteGuard:
		m.guardTrips.Add(float64(n))
	case reconcile.ActionBreakerHeld:
		m.breakerHeld.Add(float64(n))
	case reconcile.ActionLostFound:
		m.lostFound.Add(float64(n))
	case "verdict_" + reconcile.ClassLost.Label():
		m.lostFound.Add(float64(n))
		m.actions.WithLabelValues(action).Add(float64(n))
	default:
		m.actions.WithLabelValues(action).Add(float64(n))
	}
}

func (m *metrics) instrumentPDS(c *pdsclient.Client) {
	c.OnLogin = func(string) { m.logins.Inc() }
	c.OnRefresh = func(string) { m.refreshes.Inc() }
	c.OnRateLimited = func(string) { m.rateLimited.Inc() }
	c.OnWrite = func(method string, d time.Duration, _ error) {
		m.writeSeconds.WithLabelValues(method).Observe(d.Seconds())
	}
}

// instrumentStore counts the app's documents the store cannot use.
func (m *metrics) instrumentStore(s *mongostore.Store) {
	s.OnMalformed = func(collection, _, _ string) { m.malformed.WithLabelValues(collection).Inc() }
}
