package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// The anti-entropy commands share their flags, the choice of users and a
// fixed compare their golden tests print (audit_test.go, backfill_test.go,
// cleanup_test.go, purge_test.go, restore_test.go).

// fixedCompare is a compare of two users with some of every class, planned
// for scope (restore's asks for the lost moods back), and a third that could
// not be compared.
func fixedCompare(scope reconcile.Scope) []compared {
	lost := reconcile.LostKeep
	if scope == reconcile.ScopeRestore {
		lost = reconcile.LostRestore
	}
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
		return compared{acct: acct, report: r, plan: reconcile.PlanFixes(r, reconcile.Policy{Scope: scope, Lost: lost, MassDeleteLimit: reconcile.DefaultMassDeleteLimit})}
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
