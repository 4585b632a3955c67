package main

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dashboardAbsent lists registered metrics deliberately left off the
// Grafana dashboard, each with the reason. Empty: every one has a panel.
var dashboardAbsent = map[string]string{}

// grafanaDashboard is the part of a dashboard JSON the test reads.
type grafanaDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		GridPos     struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDeployGrafanaDashboardCoversEveryMetric reads deploy/grafana/moodsync.json:
// every query names only metrics moodsync registers, every registered
// metric is on a panel or in dashboardAbsent with a reason, and the
// panels are well formed (unique ids, on the grid, on the datasource
// variable, a title and a description each, balanced queries).
func TestDeployGrafanaDashboardCoversEveryMetric(t *testing.T) {
	names := registeredNames(t)
	raw, err := os.ReadFile("../../deploy/grafana/moodsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("moodsync.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Error("dashboard without title or uid")
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("no datasource variable: the dashboard would be bound to one Prometheus")
	}

	onPanel := map[string][]string{}
	ids := map[int]bool{}
	queries := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is off the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q) lacks a title, a description or a query", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if !balanced(q.Expr) {
				t.Errorf("panel %q: unbalanced query %s", p.Title, q.Expr)
			}
			if !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: query ignores the job variable: %s", p.Title, q.Expr)
			}
			used, unknown := metricsIn(q.Expr, names)
			if len(used)+len(unknown) == 0 {
				t.Errorf("panel %q: query %s names no moodsync metric", p.Title, q.Expr)
			}
			for _, name := range unknown {
				t.Errorf("panel %q: %s is not a metric moodsync registers", p.Title, name)
			}
			for _, name := range used {
				onPanel[name] = append(onPanel[name], p.Title)
			}
		}
	}
	if queries < len(names) {
		t.Errorf("%d queries for %d metrics", queries, len(names))
	}

	var missing []string
	for name := range names {
		_, absent := dashboardAbsent[name]
		switch {
		case len(onPanel[name]) == 0 && !absent:
			missing = append(missing, name)
		case len(onPanel[name]) > 0 && absent:
			t.Errorf("%s is listed as absent but is on %v", name, onPanel[name])
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("registered but on no panel (add one, or list it in dashboardAbsent with the reason): %s", strings.Join(missing, ", "))
	}
	for name, why := range dashboardAbsent {
		if _, ok := names[name]; !ok || strings.TrimSpace(why) == "" {
			t.Errorf("dashboardAbsent: %s is not registered, or has no reason", name)
		}
	}
	if !slices.Contains(onPanel["moodsync_pds_write_seconds"], "PDS write latency") {
		t.Error("no latency panel for moodsync_pds_write_seconds")
	}
}

// balanced reports whether a query's brackets pair up.
func balanced(expr string) bool {
	var stack []rune
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case strings.ContainsRune("([{", r):
			stack = append(stack, r)
		case strings.ContainsRune(")]}", r):
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}
