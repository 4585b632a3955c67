package reconcile_test

import (
	"context"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

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
