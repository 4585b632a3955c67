package reconcile_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	// A cleanup writes no record: the rewrite stays owed through it.
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup}); err != nil {
		t.Fatal(err)
	}
	if b, _ := p.store.Binding(ctx, alice); !b.RewriteOwed {
		t.Fatal("a cleanup, which writes no record, cleared the rewrite owed")
	}
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

// TestReconcileUser: one whole-user reconcile repairs every finding by its
// rule (oldest record kept, orphan and duplicate deleted, the lost mood's
// record, the spoof and the invalid record left alone), and a second finds
// nothing to do.
func TestReconcileUser(t *testing.T) {
	p := newParts()
	const (
		repaired  = "507f1f77bcf86cd799439001"
		stale     = "507f1f77bcf86cd799439002"
		cleared   = "507f1f77bcf86cd799439003"
		confirmed = "507f1f77bcf86cd799439004"
		gone      = "507f1f77bcf86cd799439005"
		bobs      = "507f1f77bcf86cd799439006"
		orphaned  = "507f1f77bcf86cd799439007"
	)
	p.live(repaired, alice, "")
	p.write(aDID, "a1", repaired)
	p.write(aDID, "a2", repaired) // second record of one mood: duplicate
	p.live(stale, alice, "s1")    // record deleted while the firehose was away
	p.store.PutMood(model.Mood{ID: cleared, User: alice, Deleted: true, Rkey: "c1"})
	p.live(confirmed, alice, "k1")
	p.write(aDID, "k1", confirmed)
	p.write(aDID, "o1", gone) // lost: kept
	p.store.PutMood(model.Mood{ID: orphaned, User: alice, Deleted: true})
	p.write(aDID, "o2", orphaned) // orphan
	p.live(bobs, bob, "")
	p.write(aDID, "x1", bobs) // spoof
	p.pds.Put(aDID, model.Record{Rkey: "i1", Invalid: "record fields have the wrong types"})

	out, err := p.engine.ReconcileUser(context.Background(), alice, reconcile.CauseGap, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[reconcile.Class]int{}
	for _, r := range out.Results {
		verdicts[r.Verdict]++
	}
	want := map[reconcile.Class]int{
		reconcile.ClassUnlinked: 1, reconcile.ClassDuplicate: 1, reconcile.ClassOrphan: 1,
		reconcile.ClassDeletedOnPDS: 1, reconcile.ClassCleared: 1,
	}
	if !maps.Equal(verdicts, want) {
		t.Errorf("verdicts %v, want %v", verdicts, want)
	}
	if got := p.store.Mood(repaired).Rkey; got != "a1" {
		t.Errorf("repaired rkey %q, want the oldest record a1", got)
	}
	if m := p.store.Mood(stale); !m.Deleted || m.Rkey != "" {
		t.Errorf("stale: %+v", m)
	}
	if m := p.store.Mood(cleared); m.Rkey != "" {
		t.Errorf("cleared: %+v", m)
	}
	if m := p.store.Mood(bobs); m.Rkey != "" {
		t.Errorf("bob's mood touched: %+v", m)
	}
	slices.Sort(p.pds.Deleted)
	if !slices.Equal(p.pds.Deleted, []string{"a2", "o2"}) {
		t.Errorf("deleted records %v, want [a2 o2] (o1, a lost mood's, kept)", p.pds.Deleted)
	}
	if p.pds.Exports != 1 {
		t.Errorf("%d repo exports, want 1", p.pds.Exports)
	}

	// A second run finds everything in agreement.
	out, err = p.engine.ReconcileUser(context.Background(), alice, reconcile.CauseGap, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 0 {
		t.Errorf("second run carried out %+v", out.Results)
	}
}

func TestReconcileUserWithoutAccount(t *testing.T) {
	p := newParts()
	_, err := p.engine.ReconcileUser(context.Background(), "auth0|nobody", reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if !model.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
}

// TestReconcileUserConverges carries out a whole-user reconcile on the
// fakes: after it only the notices and the lost mood are left (its record,
// whose document is gone, is kept for restore), the spoofed and invalid
// records are untouched, and a second reconcile finds nothing to do.
func TestReconcileUserConverges(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Report.Drift() != 9 {
		t.Errorf("drift %d before repair, want 9: %+v", out.Report.Drift(), out.Report.Findings)
	}
	for _, res := range out.Results {
		if res.Changed() || res.Skipped != "" {
			t.Errorf("%s %s: verdict %s, skipped %q", res.Fix.Kind, res.Fix.Rkey, res.Verdict, res.Skipped)
		}
	}
	after, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after.Report.Drift() != 1 || len(after.Report.Of(reconcile.ClassLost)) != 1 || len(after.Plan.Fixes) != 0 {
		t.Fatalf("drift after repair: %+v", after.Report.Findings)
	}
	if len(after.Report.Of(reconcile.ClassSpoof)) != 1 || len(after.Report.Of(reconcile.ClassInvalid)) != 1 {
		t.Fatalf("notices not kept: %+v", after.Report.Findings)
	}
	checks := map[string]func(m *model.Mood) bool{
		"not-synced":    func(m *model.Mood) bool { return m.Rkey != "" && !m.Deleted },
		"unlinked":      func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa03" },
		"half-deleted":  func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"duplicated":    func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa06" },
		"stale":         func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"stale-deleted": func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"adopt":         func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa11" },
		"spoofed":       func(m *model.Mood) bool { return m.Rkey == "" && !m.Deleted },
	}
	for name, ok := range checks {
		if m := f.store.Mood(f.ids[name]); !ok(m) {
			t.Errorf("mood %s after repair: %+v", name, m)
		}
	}
	for rkey, want := range map[string]bool{"3kaaaaaaaaa04": false, "3kaaaaaaaaa05": false, "3kaaaaaaaaa07": false, "3kaaaaaaaaa14": true, "3kaaaaaaaaa12": true, "3kaaaaaaaaa13": true} {
		if f.pds.Has(f.acct.DID, rkey) != want {
			t.Errorf("record %s exists: %v, want %v", rkey, !want, want)
		}
	}
	again, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if err != nil || len(again.Results) != 0 {
		t.Fatalf("second reconcile: %d fixes, %v", len(again.Results), err)
	}
}

// TestReconcileKeepOrphans: with the orphan policy off, orphans and the
// pointer to them stay.
func TestReconcileKeepOrphans(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{Fix: reconcile.FixOptions{KeepOrphans: true}})
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, r := range out.Results {
		if r.Skipped != "" {
			skipped++
		}
	}
	if skipped != 3 { // two orphans and the pointer of the half-deleted mood
		t.Errorf("%d fixes skipped, want 3", skipped)
	}
	if !f.pds.Has(f.acct.DID, "3kaaaaaaaaa05") || f.store.Mood(f.ids["half-deleted"]).Rkey != "3kaaaaaaaaa05" {
		t.Error("kept orphan or its pointer removed")
	}
}

// TestReconcileSeesNewerState: a fix planned on a snapshot is decided
// again on the state it finds, so it never undoes newer work.
func TestReconcileSeesNewerState(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	stale := f.store.Mood(f.ids["stale"])
	// Between the plan and its fixes the stale mood's record is written
	// again (say, restored).
	changeMeanwhile := func(fixes []reconcile.Fix) []reconcile.Fix {
		f.pds.Put(f.acct.DID, model.Record{Rkey: stale.Rkey, Value: model.NewRecordValue(stale)})
		return fixes
	}
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup, Select: changeMeanwhile})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range out.Results {
		if res.Fix.MoodID == stale.ID && (!res.Changed() || res.Verdict != reconcile.ClassIgnored) {
			t.Errorf("soft-delete of a mood whose record is back: verdict %s", res.Verdict)
		}
	}
	if m := f.store.Mood(stale.ID); m.Deleted || m.Rkey == "" {
		t.Fatalf("stale mood soft-deleted though its record is back: %+v", m)
	}
}
