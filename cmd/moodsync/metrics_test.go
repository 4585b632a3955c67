package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// recordingRegistry keeps what newMetrics registers.
type recordingRegistry struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegistry) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
	r.Registry.MustRegister(cs...)
}

// registeredNames are the moodsync_ series names the daemon registers, with
// whether each is a histogram.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := &recordingRegistry{Registry: prometheus.NewRegistry()}
	m := newMetrics(reg)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 100)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if n := fq.FindStringSubmatch(d.String()); n != nil && strings.HasPrefix(n[1], "moodsync_") {
				names[n[1]] = false
			}
		}
	}
	// Histograms are told apart by a gathered sample.
	m.writeSeconds.WithLabelValues("probe").Observe(0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names[mf.GetName()] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d series registered", len(names))
	}
	return names
}

var metricName = regexp.MustCompile(`moodsync_[a-z0-9_]+`)

// metricsIn returns the moodsync metrics a PromQL expression names, as
// registered names (a histogram's _bucket, _sum and _count series count as
// the histogram), and the names it uses that are not registered.
func metricsIn(expr string, names map[string]bool) (used, unknown []string) {
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && names[b] {
				base = b
			}
		}
		if _, ok := names[base]; ok {
			used = append(used, base)
		} else {
			unknown = append(unknown, name)
		}
	}
	return used, unknown
}

func TestDeployAlertRulesUseRegisteredMetrics(t *testing.T) {
	names := registeredNames(t)
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			used, unknown := metricsIn(r.Expr, names)
			if len(used)+len(unknown) == 0 {
				t.Errorf("alert %s uses no moodsync metric", r.Alert)
			}
			for _, name := range unknown {
				t.Errorf("alert %s: %s is not a metric moodsync registers", r.Alert, name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules read")
	}
}

func TestDeployREADMEListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for name := range registeredNames(t) {
		if !strings.Contains(string(raw), "`"+name+"`") && !strings.Contains(string(raw), "`"+name+"{") {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md does not list %s", strings.Join(missing, ", "))
	}
}

// TestEngineActionsReachTheirMetrics: drift found and fixed and the
// mass-delete guard have series of their own; other actions are counted by
// name.
func TestEngineActionsReachTheirMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.engineAction(reconcile.ActionMassDeleteGuard, 1)
	m.engineAction(reconcile.ActionDriftFound, 3)
	m.engineAction(reconcile.ActionDriftFixed, 2)
	m.engineAction("did_rebound", 1)
	for metric, want := range map[prometheus.Collector]float64{
		m.guardTrips: 1, m.driftFound: 3, m.driftFixed: 2, m.actions.WithLabelValues("did_rebound"): 1,
	} {
		if got := testutil.ToFloat64(metric); got != want {
			t.Errorf("%v: %v, want %v", metric, got, want)
		}
	}
	if got := testutil.ToFloat64(m.actions.WithLabelValues(reconcile.ActionMassDeleteGuard)); got != 0 {
		t.Errorf("the guard also counted as a plain action: %v", got)
	}
}

// TestMassDeleteBreakerHoldsASilentRestore: a PDS restored without any
// cursor signal (records gone, no delete ops) for 30 users of 3 moods each.
// Every user is within their own guard, but the breaker across all users
// (here 20 an hour) holds the soft deletes past it, the alert's metric
// moves, and the held moods stay live; an operator's release lets them go.
func TestMassDeleteBreakerHoldsASilentRestore(t *testing.T) {
	ctx := context.Background()
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	m := newMetrics(prometheus.NewRegistry())
	e := reconcile.NewEngine(store, pds, nil)
	e.Observe = m.engineAction
	e.Breaker = &mongostore.Breaker{Store: devenv.NewStore(t), Limit: 20}
	var users []string
	for u := range 30 {
		user, did := fmt.Sprintf("auth0|u%02d", u), fmt.Sprintf("did:plc:u%02d", u)
		store.PutAccount(model.Account{User: user, DID: did})
		for i := range 3 {
			mood := model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994%02d%03d", u, i), User: user, Text: "x", When: time.Unix(int64(1000+i), 0)}
			mood.Rkey = model.Rkey(&mood, 0)
			store.PutMood(mood) // synced; the restored repo has no record of it
		}
		users = append(users, user)
	}
	softDeleted := func() int {
		n := 0
		for _, u := range users {
			moods, _ := store.UserMoods(ctx, u)
			for _, mood := range moods {
				if mood.Deleted {
					n++
				}
			}
		}
		return n
	}
	held := 0
	for _, u := range users {
		out, err := e.ReconcileUser(ctx, u, reconcile.CausePeriodic, reconcile.ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.BreakerHeld {
			held += len(out.Plan.Held)
		}
	}
	if n := softDeleted(); n > 20 {
		t.Fatalf("%d moods soft-deleted, the breaker allows 20", n)
	}
	if held < 90-20 || testutil.ToFloat64(m.breakerHeld) < float64(90-20) {
		t.Fatalf("held %d, metric %v; want at least 70", held, testutil.ToFloat64(m.breakerHeld))
	}
	// Held across a restart: the next pass (another engine, same store)
	// holds them still.
	again := reconcile.NewEngine(store, pds, nil)
	again.Breaker = &mongostore.Breaker{Store: e.Breaker.(*mongostore.Breaker).Store, Limit: 20}
	if out, err := again.ReconcileUser(ctx, users[29], reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil || !out.BreakerHeld {
		t.Fatalf("after a restart: held %v, %v", out != nil && out.BreakerHeld, err)
	}
	if _, err := again.Breaker.(*mongostore.Breaker).Release(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := again.ReconcileUser(ctx, users[29], reconcile.CauseIntent, reconcile.ReconcileOptions{BypassBreaker: true}); err != nil || out.BreakerHeld {
		t.Fatalf("after the release: held %v, %v", out != nil && out.BreakerHeld, err)
	}
}
