package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/whistlegraph/moodsync/reconcile"
	"go.yaml.in/yaml/v3"
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
