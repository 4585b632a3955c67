package reconcile_test

import (
	"context"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

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
