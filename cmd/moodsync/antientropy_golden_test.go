package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestAntiEntropyCLIGolden checks the anti-entropy commands' help and
// refusals, and the text they print for a fixed compare, against golden
// files.
func TestAntiEntropyCLIGolden(t *testing.T) {
	clearEnv(t)
	cases := []cliCase{
		{"audit-help.golden", []string{"audit", "-h"}, 0},
		{"backfill-help.golden", []string{"backfill", "-h"}, 0},
		{"cleanup-help.golden", []string{"cleanup", "-h"}, 0},
		{"purge-help.golden", []string{"purge", "-h"}, 0},
		{"purge-no-yes.golden", []string{"purge", "--user", "auth0|1"}, 2},
		{"purge-no-user.golden", []string{"purge", "--yes"}, 2},
		{"audit-no-pds.golden", []string{"audit"}, 1},
		{"backfill-bad-rate.golden", []string{"backfill", "--rate", "fast"}, 1},
	}
	runCLICases(t, cases)

	results := fixedCompare(reconcile.ScopeAll)
	t.Run("audit-text.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeAuditText(&out, newAuditOutput(results))
		golden(t, "audit-text.golden", out.Bytes())
	})
	t.Run("audit-json.golden", func(t *testing.T) {
		out, err := json.MarshalIndent(newAuditOutput(results), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "audit-json.golden", append(out, '\n'))
	})
	t.Run("cleanup-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeCleanup(&out, fixedCompare(reconcile.ScopeCleanup), true)
		golden(t, "cleanup-dry-run.golden", out.Bytes())
	})
	t.Run("backfill-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeBackfillPlan(&out, fixedCompare(reconcile.ScopeBackfill))
		golden(t, "backfill-dry-run.golden", out.Bytes())
	})
	t.Run("backfill-limit", func(t *testing.T) {
		n := 0
		limit := limitCreates(1)
		for _, p := range fixedCompare(reconcile.ScopeBackfill) {
			for _, fx := range limit(p.plan.Fixes) {
				if fx.Kind == reconcile.FixCreate {
					n++
				}
			}
		}
		if n != 1 {
			t.Fatalf("--limit 1 planned %d creates", n)
		}
	})
}

// fixedCompare is a compare of two users with some of every class, planned
// for scope, and a third that could not be compared.
func fixedCompare(scope reconcile.Scope) []compared {
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	id := func(n int) string { return fmt.Sprintf("507f1f77bcf86cd7994390%02d", n) }
	mood := func(n int, user, rkey string, deleted bool) *model.Mood {
		return &model.Mood{ID: id(n), User: user, Text: fmt.Sprintf("mood %d", n), When: when.Add(time.Duration(n) * time.Hour), Rkey: rkey, Deleted: deleted}
	}
	rec := func(rkey string, m *model.Mood) model.Record {
		return model.Record{Rkey: rkey, Value: model.NewRecordValue(m)}
	}
	alice := model.Account{User: "auth0|alice", DID: "did:plc:alice"}
	bob := model.Account{User: "auth0|bob", DID: "did:plc:bob"}
	a := []*model.Mood{
		mood(1, alice.User, "3kaaaaaaaaa01", false), mood(2, alice.User, "", false), mood(3, alice.User, "", false),
		mood(4, alice.User, "", true), mood(5, alice.User, "3kaaaaaaaaa05", false), mood(6, alice.User, "3kaaaaaaaaa06", true),
	}
	edited := rec("3kaaaaaaaaa05", a[4])
	edited.Value.Mood = "edited on the PDS"
	aRecs := []model.Record{
		rec("3kaaaaaaaaa01", a[0]), rec("3kaaaaaaaaa07", a[0]), rec("3kaaaaaaaaa04", a[3]), edited,
		rec("3kaaaaaaaaa08", mood(9, alice.User, "", false)), {Rkey: "3kaaaaaaaaa09", Invalid: `field "mood" is int64, not a string`},
	}
	b := []*model.Mood{mood(10, bob.User, "3kbbbbbbbbb10", false), mood(11, bob.User, "", false)}
	bRecs := []model.Record{rec("3kbbbbbbbbb11", b[1]), rec("3kbbbbbbbbb12", a[1])}
	planned := func(acct model.Account, r *reconcile.Report) compared {
		return compared{acct: acct, report: r, plan: reconcile.PlanFixes(r, reconcile.Policy{Scope: scope, MassDeleteLimit: reconcile.DefaultMassDeleteLimit})}
	}
	return []compared{
		planned(alice, reconcile.Compare(alice, a, nil, aRecs)),
		planned(bob, reconcile.Compare(bob, b, map[string]*model.Mood{a[1].ID: a[1]}, bRecs)),
		{acct: model.Account{User: "auth0|carol", DID: "did:plc:carol"}, err: fmt.Errorf("read repo of did:plc:carol: account did:plc:carol is deleted")},
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "50": 50, "50/s": 50, "120/m": 2, "0.5/s": 0.5} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "-1/s", "5/h", "/s"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
	p := newPacer(1)
	if err := p.wait(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
	// The next write is 1,000 s away: a cancelled context ends the wait.
	if err := p.wait(canceled(), 1); err == nil {
		t.Fatal("pacer ignored a cancelled context")
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
