package reconcile_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// TestMalformedMoodsAreLeftAlone: against the embedded Mongo-wire server, a
// mood whose `when` is a string, whose `mood` is a number or whose `user`
// is missing is never judged from what could not be read: the whole-user
// reconcile and the firehose leave it and the records naming it alone
// (none is taken for an orphan and deleted, no mood is soft-deleted or
// linked), report them, and count each document.
func TestMalformedMoodsAreLeftAlone(t *testing.T) {
	ctx := context.Background()
	store := devenv.NewStore(t)
	var reported atomic.Int64
	store.OnMalformed = func(string, string, string) { reported.Add(1) }
	pds := reconciletest.NewPDS()
	engine := reconcile.NewEngine(store, pds, nil)
	if _, err := store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: alice},
		{Key: "atproto", Value: bson.D{{Key: "did", Value: aDID}, {Key: "password", Value: "pw"}}}}); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	insert := func(doc bson.D) string {
		id := bson.NewObjectID()
		if _, err := store.DB.Collection(mongostore.MoodsCollection).InsertOne(ctx, append(bson.D{{Key: "_id", Value: id}}, doc...)); err != nil {
			t.Fatal(err)
		}
		return id.Hex()
	}
	good := devenv.InsertMood(t, store, alice, "sunny", when)
	whenText := insert(bson.D{{Key: "user", Value: alice}, {Key: "mood", Value: "text"}, {Key: "when", Value: "yesterday"},
		{Key: "atproto", Value: bson.D{{Key: "rkey", Value: "r2"}}}})
	moodNumber := insert(bson.D{{Key: "user", Value: alice}, {Key: "mood", Value: 7}, {Key: "when", Value: when}})
	noUser := insert(bson.D{{Key: "mood", Value: "whose?"}, {Key: "when", Value: when}})
	for rkey, ref := range map[string]string{"r2": whenText, "r3": moodNumber, "r4": noUser} {
		pds.Put(aDID, model.Record{Rkey: rkey, Value: value(ref)})
	}
	before := rawMoods(t, store)

	out, err := engine.ReconcileUser(ctx, alice, reconcile.CauseGap, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	malformed := out.Report.Of(reconcile.ClassMalformed)
	if len(malformed) != 5 || out.Report.Mongo.Malformed != 2 {
		t.Errorf("malformed findings %+v (Mongo count %d): want 2 moods and the 3 records naming them", malformed, out.Report.Mongo.Malformed)
	}
	if n := len(out.Report.Of(reconcile.ClassOrphan)) + len(out.Report.Of(reconcile.ClassStaleRkey)) + len(out.Report.Of(reconcile.ClassUnlinked)); n != 0 {
		t.Errorf("%d fixes decided on malformed moods: %+v", n, out.Report.Findings)
	}
	for _, rkey := range []string{"r2", "r3", "r4"} {
		if !pds.Has(aDID, rkey) {
			t.Errorf("record %s of a malformed mood was deleted", rkey)
		}
	}
	if m, _ := store.Moods(ctx, []string{good}); m[good].Rkey == "" {
		t.Error("the good mood was not synced next to the malformed ones")
	}
	delete(before, good)
	after := rawMoods(t, store)
	for id, doc := range before {
		if after[id] != doc {
			t.Errorf("malformed mood %s was written", id)
		}
	}

	// The firehose: a record created for, and the record deleted of, a
	// malformed mood.
	v := value(moodNumber)
	verdict, err := engine.ApplyUpsert(ctx, aliceAcct, reconcile.Upsert{Rkey: "r5", Value: &v})
	if err != nil || verdict != reconcile.ClassMalformed {
		t.Errorf("upsert naming a malformed mood: %s, %v", verdict, err)
	}
	pds.Remove(aDID, "r2")
	verdict, err = engine.ApplyDelete(ctx, aliceAcct, "r2")
	if err != nil || verdict != reconcile.ClassMalformed {
		t.Errorf("delete of a malformed mood's record: %s, %v", verdict, err)
	}
	after = rawMoods(t, store)
	for id, doc := range before {
		if after[id] != doc {
			t.Errorf("malformed mood %s was written by the firehose", id)
		}
	}
	if reported.Load() < 3 {
		t.Errorf("%d malformed documents reported", reported.Load())
	}
}

// rawMoods is every moods document as stored, by _id.
func rawMoods(t *testing.T, store *mongostore.Store) map[string]string {
	t.Helper()
	cur, err := store.DB.Collection(mongostore.MoodsCollection).Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var all []bson.Raw
	if err := cur.All(context.Background(), &all); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range all {
		out[d.Lookup("_id").ObjectID().Hex()] = d.String()
	}
	return out
}
