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
