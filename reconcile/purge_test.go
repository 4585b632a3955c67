package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestPurgeRedeliveredLaterErasesNothingNew: a purge erases what existed
// when it was asked. Redelivered (or replayed) after the user came back
// and wrote new moods, it erases none of them, nor their records; the
// tombstone stays.
func TestPurgeRedeliveredLaterErasesNothingNew(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	old := p.synced(t, 3) // ObjectIDs of 2012
	asked := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := p.engine.Purge(ctx, alice, aDID, asked); err != nil {
		t.Fatal(err)
	}
	for _, id := range old {
		if p.store.Mood(id) != nil {
			t.Fatalf("mood %s not erased", id)
		}
	}
	// The user comes back and writes two moods after the purge.
	newer := []string{"6b0ebee0" + "bcf86cd799439001", "6b0ebee0" + "bcf86cd799439002"} // ObjectIDs of 2026-12-01 12:34:40
	for _, id := range newer {
		p.live(id, alice, "")
		if res := p.engine.SyncMoods(ctx, alice, []string{id}); res[id] != nil {
			t.Fatal(res[id])
		}
	}
	// The same purge again, as JetStream redelivers it.
	if err := p.engine.Purge(ctx, alice, aDID, asked); err != nil {
		t.Fatal(err)
	}
	for _, id := range newer {
		m := p.store.Mood(id)
		if m == nil || m.Rkey == "" || !p.pds.Has(aDID, m.Rkey) {
			t.Fatalf("mood %s created after the purge erased by its redelivery: %+v", id, m)
		}
	}
	if b, _ := p.store.Binding(ctx, alice); b == nil || !b.Erased.Equal(asked) {
		t.Fatalf("tombstone %+v", b)
	}
}

// TestErasedUsersLostRecordsAreDeleted: records naming moods a purge erased
// that come back into view (a deactivated repo active again) are deleted by
// the user's next reconcile, and restore refuses them.
func TestErasedUsersLostRecordsAreDeleted(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 2)
	rkeys := []string{p.store.Mood(ids[0]).Rkey, p.store.Mood(ids[1]).Rkey}
	p.pds.SetStatus(aDID, "deactivated") // the purge cannot reach the records
	if err := p.engine.Purge(ctx, alice, aDID, time.Now()); err != nil {
		t.Fatal(err)
	}
	p.pds.SetStatus(aDID, "")
	restore := reconcile.ReconcileOptions{Scope: reconcile.ScopeRestore, Lost: reconcile.LostRestore}
	if out, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, restore); err != nil || len(out.Plan.Fixes) != 0 {
		t.Fatalf("restore of an erased user planned %v, %v", out.Plan.Fixes, err)
	}
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseReactivated, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, rk := range rkeys {
		if p.pds.Has(aDID, rk) || p.store.Mood(ids[i]) != nil {
			t.Fatalf("erased mood %s: record kept %v, document %+v", ids[i], p.pds.Has(aDID, rk), p.store.Mood(ids[i]))
		}
	}
}

// TestPurgeAuthorisedByBinding: a purge naming another user's DID deletes
// nothing; one naming the user's own DID works after the row is gone.
func TestPurgeAuthorisedByBinding(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.synced(t, 2)
	p.live(mood2, bob, "")
	p.write(bDID, "b1", mood2)
	for _, u := range []string{alice, bob} {
		if _, err := p.engine.ReconcileUser(ctx, u, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.engine.Purge(ctx, bob, aDID, time.Time{}); !model.IsPermanent(err) {
		t.Fatalf("purge of bob naming alice's DID: %v", err)
	}
	if recs, _ := p.pds.ListRecords(ctx, aDID); len(recs) != 2 {
		t.Fatalf("alice's repo has %d records, want 2", len(recs))
	}
	if p.store.Mood(mood2) == nil {
		t.Fatal("bob's moods deleted")
	}
	p.store.PutAccount(model.Account{User: alice}) // the users row lost its DID
	if err := p.engine.Purge(ctx, alice, aDID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := p.pds.ListRecords(ctx, aDID); len(recs) != 0 {
		t.Fatalf("alice's repo keeps %d records", len(recs))
	}
}

// TestErasedUsersRecordsAreDeletedAfterTheRowIsGone: the purge could not
// reach the records (the repo was deactivated), and the app removed the
// users row as its erase flow does. When the repo is back, the user's
// reconcile finds the repo through the binding and deletes the records.
func TestErasedUsersRecordsAreDeletedAfterTheRowIsGone(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 2)
	rkey := p.store.Mood(ids[0]).Rkey
	p.pds.SetStatus(aDID, "deactivated")
	if err := p.engine.Purge(ctx, alice, aDID, time.Now()); err != nil {
		t.Fatal(err)
	}
	p.store.RemoveAccount(alice)
	p.pds.SetStatus(aDID, "")
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseReactivated, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.pds.Has(aDID, rkey) {
		t.Fatal("an erased user's record kept after their row was removed")
	}
}
