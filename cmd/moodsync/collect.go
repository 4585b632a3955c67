package main

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/whistlegraph/moodsync/consumer"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
)

// follower is what the metrics read of the firehose consumer
// (*consumer.Consumer).
type follower interface {
	Stats() consumer.Stats
	Ready() bool
	Lag(now time.Time) (head, behind int64, seconds float64, known bool)
}

// stateCollector reports, at scrape time, state that lives in other parts:
// the firehose follower's counters, position and lag, NATS
// reconnects and what waits in JetStream. A replica follows the firehose
// only while it leads; the follower's counters of earlier terms are kept,
// so the counters never go back, and its gauges are reported only while
// this replica leads.
type stateCollector struct {
	mu       sync.Mutex
	nc       *nats.Conn
	js       jetstream.JetStream
	follower follower
	base     consumer.Stats // counters of finished terms
	pub      interface{ ParkedUsers() int }
}

// usePublisher tells the collector whose parked users to count.
func (c *stateCollector) usePublisher(p interface{ ParkedUsers() int }) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pub = p
}

type statCounter struct {
	desc *prometheus.Desc
	get  func(consumer.Stats) int64
}

func counterDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

var (
	firehoseCounters = []statCounter{
		{counterDesc("moodsync_firehose_events_total", "Firehose events handled by this process while it led."),
			func(s consumer.Stats) int64 { return s.Events }},
		{counterDesc("moodsync_firehose_mood_ops_total", "Mood record ops of the app's users seen on the firehose."),
			func(s consumer.Stats) int64 { return s.MoodOps }},
		{counterDesc("moodsync_firehose_user_reconciles_total", "Whole-user reconciles the follower queued (broken chain, #sync, tooBig, unverifiable commit, new user)."),
			func(s consumer.Stats) int64 { return s.UserReconciles }},
		{counterDesc("moodsync_firehose_handoffs_total", "Users the follower handed to the reconcile queue instead of retrying inline: an op that kept failing past its bound, ops of a repo in trouble, a DID that no longer resolves."),
			func(s consumer.Stats) int64 { return s.HandOffs }},
		{counterDesc("moodsync_firehose_full_reconciles_total", "Sweeps of every user the follower queued (first start, outdated or future cursor)."),
			func(s consumer.Stats) int64 { return s.FullReconciles }},
		{counterDesc("moodsync_firehose_chain_breaks_total", "Commits that did not follow their repo's last commit."),
			func(s consumer.Stats) int64 { return s.ChainBreaks }},
		{counterDesc("moodsync_firehose_bad_commits_total", "Commits and #sync events that failed verification."),
			func(s consumer.Stats) int64 { return s.BadCommits }},
		{counterDesc("moodsync_firehose_unverified_commits_total", "Commits of the app's users not verified: they carry no mood op."),
			func(s consumer.Stats) int64 { return s.Unverified }},
		{counterDesc("moodsync_firehose_errors_total", "Firehose ops given up on: the engine failed permanently."),
			func(s consumer.Stats) int64 { return s.Errors }},
	}
	descFirehoseOps = prometheus.NewDesc("moodsync_firehose_ops_total",
		"Verdicts the firehose follower reached, by decision: on firehose mood ops and in the whole-user reconciles it runs after gaps.",
		[]string{"decision"}, nil)
	descReconnects = prometheus.NewDesc("moodsync_reconnects_total",
		"Connections re-established, by target (nats, firehose).", []string{"target"}, nil)
	descSeq = prometheus.NewDesc("moodsync_firehose_seq",
		"Seq of the last firehose event handled (leader only).", nil, nil)
	descSavedSeq = prometheus.NewDesc("moodsync_firehose_saved_seq",
		"Firehose cursor last stored in Mongo: where a new leader resumes (leader only).", nil, nil)
	descReady = prometheus.NewDesc("moodsync_firehose_ready",
		"1 when the follower is connected and owes no all-users reconcile (leader only).", nil, nil)
	descHead = prometheus.NewDesc("moodsync_firehose_head_seq",
		"Newest seq known of the firehose: the last read, or the server's head as asked while behind (leader only; absent until an event is handled).", nil, nil)
	descLagEvents = prometheus.NewDesc("moodsync_firehose_lag_events",
		"Firehose events between the head seq and the last handled (leader only).", nil, nil)
	descLagSeconds = prometheus.NewDesc("moodsync_firehose_lag_seconds",
		"Age of the firehose event being handled, or of the last one when it was handled (leader only).", nil, nil)
	descDeadLetters = prometheus.NewDesc("moodsync_dead_letters",
		"Dead letters stored in "+intent.DeadStream+", waiting for an operator.", nil, nil)
	descUsersParked = prometheus.NewDesc("moodsync_users_parked",
		"Users in trouble this replica knows of: their intents failed transiently and wait in moodsync_parked for a retry with a backoff of their own.", nil, nil)
	descIntentsPending = prometheus.NewDesc("moodsync_intents_pending",
		"Intents in "+intent.Stream+" not yet acknowledged (waiting or in flight).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, sc := range firehoseCounters {
		ch <- sc.desc
	}
	for _, d := range []*prometheus.Desc{descFirehoseOps, descReconnects, descSeq, descSavedSeq, descReady,
		descHead, descLagEvents, descLagSeconds, descDeadLetters, descIntentsPending, descUsersParked} {
		ch <- d
	}
}

// startTerm is called when this replica starts following the firehose.
func (c *stateCollector) startTerm(f follower) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.follower = f
}

// endTerm is called when the follower of a term has stopped: its counters
// are kept.
func (c *stateCollector) endTerm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.follower != nil {
		c.base = c.base.Add(c.follower.Stats())
	}
	c.follower = nil
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f, total, nc, js, pub := c.follower, c.base, c.nc, c.js, c.pub
	c.mu.Unlock()
	if pub != nil {
		ch <- prometheus.MustNewConstMetric(descUsersParked, prometheus.GaugeValue, float64(pub.ParkedUsers()))
	}
	var cur consumer.Stats
	if f != nil {
		cur = f.Stats()
		total = total.Add(cur)
	}

	for _, sc := range firehoseCounters {
		ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.CounterValue, float64(sc.get(total)))
	}
	// The firehose's classes are reported zero or not; others once seen.
	byLabel := map[string]int64{}
	for _, l := range reconcile.FirehoseLabels {
		byLabel[l] = 0
	}
	for v, n := range total.Verdicts {
		byLabel[v.Label()] += n
	}
	for _, l := range slices.Sorted(maps.Keys(byLabel)) {
		ch <- prometheus.MustNewConstMetric(descFirehoseOps, prometheus.CounterValue, float64(byLabel[l]), l)
	}
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(total.Reconnects), "firehose")
	if nc != nil {
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(nc.Stats().Reconnects), "nats")
	}

	if f != nil {
		ch <- prometheus.MustNewConstMetric(descSeq, prometheus.GaugeValue, float64(cur.Cursor))
		ch <- prometheus.MustNewConstMetric(descSavedSeq, prometheus.GaugeValue, float64(cur.SavedCursor))
		ready := 0.0
		if f.Ready() {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
		if head, behind, secs, ok := f.Lag(time.Now()); ok {
			ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(head))
			ch <- prometheus.MustNewConstMetric(descLagEvents, prometheus.GaugeValue, float64(behind))
			ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, secs)
		}
	}
	collectJetStream(ch, js)
}

// followerReady reports whether this term's follower is connected and
// owes no all-users reconcile; false when there is none.
func (c *stateCollector) followerReady() bool {
	c.mu.Lock()
	f := c.follower
	c.mu.Unlock()
	return f != nil && f.Ready()
}

// useNATS tells the collector where NATS reconnects and streams are read.
func (c *stateCollector) useNATS(nc *nats.Conn, js jetstream.JetStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc, c.js = nc, js
}

// collectJetStream reports what waits in the streams. When NATS does not
// answer quickly the series are left out of this scrape.
func collectJetStream(ch chan<- prometheus.Metric, js jetstream.JetStream) {
	if js == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s, err := js.Stream(ctx, intent.DeadStream); err == nil {
		ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(s.CachedInfo().State.Msgs))
	}
	if n, err := publisher.Unfinished(ctx, js); err == nil {
		ch <- prometheus.MustNewConstMetric(descIntentsPending, prometheus.GaugeValue, float64(n))
	}
}
