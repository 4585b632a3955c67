package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// lostMoods writes n records of alice's moods that Mongo does not have (a
// backup restored from before they were written) and returns the moods.
func (p *parts) lostMoods(n int) []model.Mood {
	var out []model.Mood
	for i := range n {
		m := model.Mood{ID: fmt.Sprintf("607f1f77bcf86cd7994392%02d", i), User: alice, Text: fmt.Sprintf("lost %d", i),
			When: time.Date(2026, 11, 1, 12, 0, i, 123e6, time.UTC)}
		m.Rkey = model.Rkey(&m, 0)
		p.pds.Put(aDID, model.Record{Rkey: m.Rkey, Value: model.NewRecordValue(&m)})
		out = append(out, m)
	}
	return out
}

// TestReconcileKeepsLostMoods: no cause of the daemon's deletes the record
// of a lost mood, nor does cleanup without --delete-lost.
func TestReconcileKeepsLostMoods(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	lost := p.lostMoods(3)
	for _, cause := range reconcile.Causes {
		out, err := p.engine.ReconcileUser(ctx, alice, cause, reconcile.ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Unchanged {
			continue // a periodic pass finding the repo as the last clean pass saw it
		}
		if n := len(out.Report.Of(reconcile.ClassLost)); n != 3 {
			t.Fatalf("%s: %d lost moods reported, want 3", cause, n)
		}
	}
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup}); err != nil {
		t.Fatal(err)
	}
	for _, m := range lost {
		if !p.pds.Has(aDID, m.Rkey) {
			t.Fatalf("record %s of a lost mood deleted", m.Rkey)
		}
	}
	if p.observed[reconcile.ActionLostFound] == 0 {
		t.Error("lost moods not counted")
	}
}

// TestRestoreBringsLostMoodsBack: restore inserts each lost mood with the
// record's id, user, text, when and rkey; a second restore adds nothing; a
// document that exists is never overwritten; a dry run changes nothing.
func TestRestoreBringsLostMoodsBack(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	lost := p.lostMoods(3)
	// One id exists by now (the app re-created it): it stays as it is.
	p.store.PutMood(model.Mood{ID: lost[2].ID, User: alice, Text: "the app's own", When: lost[2].When, Rkey: lost[2].Rkey})
	restore := reconcile.ReconcileOptions{Scope: reconcile.ScopeRestore, Lost: reconcile.LostRestore}

	dry := restore
	dry.DryRun = true
	out, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, dry)
	if err != nil || len(out.Plan.Fixes) != 2 || p.store.Mood(lost[0].ID) != nil {
		t.Fatalf("dry run: %d fixes, %v; mood inserted: %v", len(out.Plan.Fixes), err, p.store.Mood(lost[0].ID) != nil)
	}
	out, err = p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, restore)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lost[:2] {
		got := p.store.Mood(m.ID)
		if got == nil || got.User != alice || got.Text != m.Text || !got.When.Equal(m.When) || got.Rkey != m.Rkey || got.Deleted {
			t.Errorf("restored %s: %+v, want %+v", m.ID, got, m)
		}
	}
	if got := p.store.Mood(lost[2].ID); got.Text != "the app's own" {
		t.Errorf("an existing document was overwritten: %+v", got)
	}
	again, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, restore)
	if err != nil || len(again.Plan.Fixes) != 0 {
		t.Fatalf("second restore: %d fixes, %v", len(again.Plan.Fixes), err)
	}
	audit, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{DryRun: true})
	if err != nil || audit.Report.Drift() != 0 || len(audit.Report.Of(reconcile.ClassTextMismatch)) != 1 {
		t.Fatalf("after restore: drift %+v, %v", audit.Report.Findings, err)
	}
}

// TestRestoreNeverTakesAnotherUsersID: a record in alice's repo naming a
// mood of bob's is a spoof, never restored into alice's moods.
func TestRestoreNeverTakesAnotherUsersID(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, bob, "")
	p.write(aDID, "r1", mood1)
	out, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{Scope: reconcile.ScopeRestore, Lost: reconcile.LostRestore})
	if err != nil || len(out.Plan.Fixes) != 0 {
		t.Fatalf("restore planned %v, %v", out.Plan.Fixes, err)
	}
	if m := p.store.Mood(mood1); m.User != bob {
		t.Fatalf("bob's mood changed: %+v", m)
	}
}

// TestDeleteLostOnAnOperatorsWord: cleanup --delete-lost deletes the
// records of lost moods, and only of moods still missing.
func TestDeleteLostOnAnOperatorsWord(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	lost := p.lostMoods(2)
	_, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup, Lost: reconcile.LostDelete})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lost {
		if p.pds.Has(aDID, m.Rkey) {
			t.Errorf("record %s kept", m.Rkey)
		}
	}
}

// TestRepoOlderThanTheMoodIsRewritten: a repo whose newest commit is older
// than a mood lost that mood's record (restored from a backup) — whatever
// the cause of the pass, the record is written again, never taken as a
// user's delete.
func TestRepoOlderThanTheMoodIsRewritten(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 3) // moods of 1970, their records in the repo
	m := model.Mood{ID: "607f1f77bcf86cd799439301", User: alice, Text: "after the backup", When: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	m.Rkey = model.Rkey(&m, 0)
	p.store.PutMood(m) // synced, but its record is not in the restored repo
	p.pds.SetRev(aDID, syntax.NewTID(m.When.Add(-time.Hour).UnixMicro(), 0).String())
	out, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.store.Mood(m.ID); got.Deleted || got.Rkey == "" || !p.pds.Has(aDID, got.Rkey) {
		t.Fatalf("mood after the pass: %+v (plan %v)", got, out.Plan.Fixes)
	}
	for _, id := range ids {
		if p.store.Mood(id).Deleted {
			t.Fatalf("mood %s soft-deleted", id)
		}
	}
}

// TestRewriteOwedIsSticky: after a pass that owes a rewrite (a restored
// PDS) fails, the next pass of the user rewrites too, whatever its cause;
// once one completes, passes decide by their own cause again.
func TestRewriteOwedIsSticky(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 2)
	for _, id := range ids {
		p.pds.Remove(aDID, p.store.Mood(id).Rkey) // the restored repo lacks them
	}
	p.pds.SetStatus(aDID, "deactivated") // the first pass cannot read the repo
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseFutureCursor, reconcile.ReconcileOptions{}); err == nil {
		t.Fatal("a pass of an unreadable repo succeeded")
	}
	if b, _ := p.store.Binding(ctx, alice); b == nil || !b.RewriteOwed {
		t.Fatalf("binding %+v: no rewrite owed", b)
	}
	p.pds.SetStatus(aDID, "")
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseGap, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if m := p.store.Mood(id); m.Deleted || !p.pds.Has(aDID, m.Rkey) {
			t.Fatalf("mood %s after a gap pass owing a rewrite: %+v", id, m)
		}
	}
	if b, _ := p.store.Binding(ctx, alice); b.RewriteOwed {
		t.Fatal("rewrite still owed after a pass completed it")
	}
}
