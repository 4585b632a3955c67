package consumer

import (
	"context"
	"testing"

	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// TestSkipPathAllocatesNothing: a #commit of a repo that is not a user's
// costs no allocation, from the frame bytes to the cursor.
func TestSkipPathAllocatesNothing(t *testing.T) {
	dir := identity.NewMockDirectory()
	g := newGenRepo(t, "did:plc:stranger", dir)
	fr := commitFrame(t, g.commit(t, 1, g.postOp()))
	store := reconciletest.NewStore()
	store.PutAccount(model.Account{User: "auth0|alice", DID: "did:plc:alice"})
	c, err := New(Config{FirehoseURL: "ws://127.0.0.1:1/xrpc/com.atproto.sync.subscribeRepos", SkipVerify: true},
		reconcile.NewEngine(store, reconciletest.NewPDS(), nil), store, discardQueue{}, &reconcile.Sweep{Users: store, Queue: discardQueue{}, State: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.accounts.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.handleFrame(ctx, fr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per skipped commit", allocs)
	}
	if s := c.Stats(); s.Dropped < 1000 || s.Cursor != 1 {
		t.Fatalf("stats %+v", s)
	}
}
