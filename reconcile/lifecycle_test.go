package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// These tests walk the account lifecycle and the trust rules on the fakes;
// lifecycle_pds_test.go walks the same on the real PDS.

func (p *parts) synced(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("507f1f77bcf86cd7994391%02d", i)
		m := model.Mood{ID: id, User: alice, Text: "sunny", When: time.Unix(int64(1000+i), 0)}
		rk := model.Rkey(&m, 0)
		m.Rkey = rk
		p.store.PutMood(m)
		p.pds.Put(aDID, model.Record{Rkey: rk, Value: model.NewRecordValue(&m)})
		ids = append(ids, id)
	}
	return ids
}

// TestChangedDIDRebinds: when the users row names a new DID, no mood is
// soft-deleted; every live mood is written into the new repo and gets its
// rkey; the old repo is left as it is.
func TestChangedDIDRebinds(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 12) // more than the mass-delete guard allows
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	const newDID = "did:plc:alice2"
	p.store.PutAccount(model.Account{User: alice, DID: newDID})
	out, err := p.engine.ReconcileUser(ctx, alice, reconcile.CausePeriodic, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Cause != reconcile.CauseDIDChanged {
		t.Errorf("cause %s, want did-changed", out.Cause)
	}
	for _, id := range ids {
		m := p.store.Mood(id)
		if m.Deleted || m.Rkey == "" || !p.pds.Has(newDID, m.Rkey) {
			t.Fatalf("mood %s after the DID changed: %+v (in new repo: %v)", id, m, p.pds.Has(newDID, m.Rkey))
		}
		if !p.pds.Has(aDID, m.Rkey) {
			t.Fatalf("old repo changed: record %s gone", m.Rkey)
		}
	}
	if b, _ := p.store.Binding(ctx, alice); b == nil || b.DID != newDID {
		t.Fatalf("binding %+v, want %s", b, newDID)
	}
}

// TestChangedDIDOnIntent: a create intent after the DID changed writes
// every live mood of the user into the new repo, not only its own.
func TestChangedDIDOnIntent(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 3)
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	p.store.PutAccount(model.Account{User: alice, DID: "did:plc:alice2"})
	fresh := "507f1f77bcf86cd799439190"
	p.live(fresh, alice, "")
	if err := p.engine.SyncMoods(ctx, alice, []string{fresh})[fresh]; err != nil {
		t.Fatal(err)
	}
	for _, id := range append(ids, fresh) {
		if m := p.store.Mood(id); m.Rkey == "" || !p.pds.Has("did:plc:alice2", m.Rkey) {
			t.Fatalf("mood %s not in the new repo: %+v", id, m)
		}
	}
}

// TestRestoredPDSRewrites: after the PDS lost records (restored from a
// backup), a future-cursor reconcile writes them again; a gap reconcile of
// the same loss over the guard's bound soft-deletes nothing and says so.
func TestRestoredPDSRewrites(t *testing.T) {
	for _, c := range []struct {
		cause   reconcile.Cause
		rewrite bool
	}{{reconcile.CauseFutureCursor, true}, {reconcile.CauseGap, false}} {
		t.Run(string(c.cause), func(t *testing.T) {
			p := newParts()
			ctx := context.Background()
			ids := p.synced(t, 11)
			for _, id := range ids {
				p.pds.Remove(aDID, p.store.Mood(id).Rkey)
			}
			out, err := p.engine.ReconcileUser(ctx, alice, c.cause, reconcile.ReconcileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				m := p.store.Mood(id)
				if m.Deleted {
					t.Fatalf("mood %s soft-deleted", id)
				}
				if c.rewrite != p.pds.Has(aDID, m.Rkey) {
					t.Fatalf("mood %s: record written %v, want %v", id, !c.rewrite, c.rewrite)
				}
			}
			if tripped := out.GuardTripped(); tripped == c.rewrite {
				t.Errorf("guard tripped %v", tripped)
			}
			if !c.rewrite && p.observed[reconcile.ActionMassDeleteGuard] != 1 {
				t.Errorf("guard not reported: %v", p.observed)
			}
		})
	}
}

// TestInactiveAccountParked: while the account is deactivated its intents
// fail permanently (dead letters) without a write; once it is active
// again, the engine reports the user as owed a reconcile, which converges.
func TestInactiveAccountParked(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, alice, "")
	if _, err := p.engine.AccountStatus(ctx, aDID, model.StatusDeactivated); err != nil {
		t.Fatal(err)
	}
	p.pds.SetStatus(aDID, model.StatusDeactivated)
	err := p.engine.SyncMoods(ctx, alice, []string{mood1})[mood1]
	if st, ok := model.IsInactive(err); !ok || st != model.StatusDeactivated || !model.IsPermanent(err) {
		t.Fatalf("intent of a deactivated account: %v", err)
	}
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); !model.IsPermanent(err) {
		t.Fatalf("reconcile of a deactivated account: %v", err)
	}
	// Bob is not affected.
	p.live(mood2, bob, "")
	if err := p.engine.SyncMoods(ctx, bob, []string{mood2})[mood2]; err != nil {
		t.Fatal(err)
	}
	p.pds.SetStatus(aDID, "")
	users, err := p.engine.AccountStatus(ctx, aDID, model.StatusActive)
	if err != nil || len(users) != 1 || users[0] != alice {
		t.Fatalf("reactivated %v, %v; want [alice]", users, err)
	}
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseReactivated, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := p.store.Mood(mood1); m.Rkey == "" || !p.pds.Has(aDID, m.Rkey) {
		t.Fatalf("mood not written after reactivation: %+v", m)
	}
}

// TestInactiveFoundByThePDS: a repo the PDS refuses parks the user even
// when no #account event was seen; the status is recorded.
func TestInactiveFoundByThePDS(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, alice, "")
	p.pds.SetStatus(aDID, model.StatusTakendown)
	if err := p.engine.SyncMoods(ctx, alice, []string{mood1})[mood1]; !model.IsPermanent(err) {
		t.Fatalf("intent of a taken-down account: %v", err)
	}
	if b, _ := p.store.Binding(ctx, alice); b == nil || b.Status != model.StatusTakendown {
		t.Fatalf("binding %+v: status not recorded", b)
	}
}

// TestDeleteSeenOnInactiveRepoStands: a delete op seen on the firehose
// soft-deletes its mood even when the repo can no longer be read.
func TestDeleteSeenOnInactiveRepoStands(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "r1")
	p.pds.SetStatus(aDID, model.StatusDeactivated)
	v, err := p.engine.ApplyDelete(context.Background(), aliceAcct, "r1")
	if err != nil || v != reconcile.ClassDeletedOnPDS {
		t.Fatalf("verdict %s, %v", v, err)
	}
	if m := p.store.Mood(mood1); !m.Deleted {
		t.Fatalf("mood not soft-deleted: %+v", m)
	}
}

// TestAccountDeletedAfterRowChanged: #account deleted unsets atproto of the
// moods of the user bound to the DID, even after the users row names
// another DID or is gone.
func TestAccountDeletedAfterRowChanged(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.synced(t, 2)
	p.live(mood2, bob, "r2")
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{DryRun: false}); err != nil {
		t.Fatal(err)
	}
	p.store.PutAccount(model.Account{User: alice, DID: ""}) // the row lost its DID
	if _, err := p.engine.AccountStatus(ctx, aDID, model.StatusDeleted); err != nil {
		t.Fatal(err)
	}
	moods, _ := p.store.UserMoods(ctx, alice)
	for _, m := range moods {
		if m.Rkey != "" {
			t.Fatalf("mood %s keeps rkey %s of a deleted account", m.ID, m.Rkey)
		}
	}
	if p.store.Mood(mood2).Rkey != "r2" {
		t.Fatal("bob's mood touched")
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

// TestOneDIDOneUser: two users rows naming one DID get no writes.
func TestOneDIDOneUser(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.store.PutAccount(model.Account{User: bob, DID: aDID})
	p.live(mood2, bob, "")
	if err := p.engine.SyncMoods(ctx, bob, []string{mood2})[mood2]; !model.IsPermanent(err) {
		t.Fatalf("write for a DID two rows claim: %v", err)
	}
	if recs, _ := p.pds.ListRecords(ctx, aDID); len(recs) != 0 {
		t.Fatalf("records written: %+v", recs)
	}
	if _, err := p.engine.AccountStatus(ctx, aDID, model.StatusDeleted); !model.IsPermanent(err) {
		t.Fatalf("status of a DID two rows claim attributed: %v", err)
	}
}

// TestDeleteChecksRef: the publisher's delete of a mood whose stored rkey
// now holds another mood's record leaves that record alone.
func TestDeleteChecksRef(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.store.PutMood(model.Mood{ID: mood1, User: alice, Text: "x", Deleted: true, Rkey: "r1"})
	p.live(mood2, alice, "r1")
	p.write(aDID, "r1", mood2)
	if err := p.engine.SyncMoods(ctx, alice, []string{mood1})[mood1]; err != nil {
		t.Fatal(err)
	}
	if !p.pds.Has(aDID, "r1") {
		t.Fatal("another mood's record deleted")
	}
	if m := p.store.Mood(mood1); m.Rkey != "" {
		t.Fatalf("deleted mood keeps its rkey: %+v", m)
	}
}
