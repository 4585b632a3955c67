package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

type realParts struct {
	pds    *devenv.PDS
	store  *mongostore.Store
	client *pdsclient.Client
	engine *reconcile.Engine
}

func newRealParts(t *testing.T) *realParts {
	pds := devenv.NeedPDS(t)
	store := devenv.NewStore(t)
	client := pdsclient.New(pds.URL, store, nil)
	return &realParts{pds: pds, store: store, client: client, engine: reconcile.NewEngine(store, client, nil)}
}

func (r *realParts) mood(t *testing.T, id string) *model.Mood {
	t.Helper()
	m, err := r.store.Moods(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	return m[id]
}

func (r *realParts) records(t *testing.T, did string) []model.Record {
	t.Helper()
	recs, err := r.pds.Records(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestEngineCreateDeleteAgainstPDS(t *testing.T) {
	r := newRealParts(t)
	ctx := context.Background()
	alice := r.pds.CreateUser(t, r.store)
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	id := devenv.InsertMood(t, r.store, alice.User, "sunny", when)

	for i := 0; i < 3; i++ {
		if err := r.engine.SyncMoods(ctx, alice.User, []string{id})[id]; err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	recs := r.records(t, alice.DID)
	if len(recs) != 1 {
		t.Fatalf("want 1 record, got %d", len(recs))
	}
	rec := recs[0]
	m := r.mood(t, id)
	if m.Rkey != rec.Rkey {
		t.Fatalf("mongo rkey %q, record rkey %q", m.Rkey, rec.Rkey)
	}
	want := model.RecordValue{Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: id, MongoID: id}
	if rec.Value != want {
		t.Fatalf("record %+v, want %+v", rec.Value, want)
	}

	devenv.SoftDelete(t, r.store, id)
	if err := r.engine.SyncMoods(ctx, alice.User, []string{id})[id]; err != nil {
		t.Fatal(err)
	}
	if n := len(r.records(t, alice.DID)); n != 0 {
		t.Fatalf("want no records after delete, got %d", n)
	}
	if m := r.mood(t, id); m.Rkey != "" || !m.Deleted {
		t.Fatalf("after delete: %+v", m)
	}
}
