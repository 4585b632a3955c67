package mongostore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// TestMarksAndUsersRow: the marks for operators land on the bindings (by
// user, by DID) and on nobody without one; the users row is shown without
// its password, which is only said to be there or not.
func TestMarksAndUsersRow(t *testing.T) {
	store := devenv.NewStore(t)
	ctx := context.Background()
	at := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	for _, b := range []struct{ user, did string }{{"auth0|a", "did:plc:a"}, {"auth0|b", "did:plc:b"}} {
		if _, err := store.Bind(ctx, b.user, b.did, ""); err != nil {
			t.Fatal(err)
		}
	}
	rec := model.ReconcileMark{At: at, Cause: "periodic", Drift: 2, Fixed: 1, Held: 1, Error: "create mood x: boom"}
	if err := store.NoteReconcile(ctx, "auth0|a", rec); err != nil {
		t.Fatal(err)
	}
	if err := store.NoteReconcile(ctx, "auth0|nobody", rec); err != nil {
		t.Fatal(err)
	}
	ev := model.EventMark{At: at.Add(time.Minute), Kind: model.EventCommit, Seq: 42}
	if err := store.NoteEvent(ctx, "did:plc:a", ev); err != nil {
		t.Fatal(err)
	}
	if err := store.NoteEvent(ctx, "did:plc:unbound", ev); err != nil {
		t.Fatal(err)
	}
	a, err := store.Binding(ctx, "auth0|a")
	if err != nil {
		t.Fatal(err)
	}
	if a.LastReconcile == nil || *a.LastReconcile != rec || a.LastEvent == nil || *a.LastEvent != ev {
		t.Fatalf("binding of a: %+v (reconcile %+v, event %+v)", a, a.LastReconcile, a.LastEvent)
	}
	if b, _ := store.Binding(ctx, "auth0|b"); b.LastReconcile != nil || b.LastEvent != nil {
		t.Fatalf("binding of b marked: %+v", b)
	}
	if n, _ := store.DB.Collection(mongostore.BindingsCollection).CountDocuments(ctx, bson.D{}); n != 2 {
		t.Fatalf("%d bindings, want 2: a mark made one", n)
	}
	// A rebind keeps the marks: they are the user's, not the account's.
	if ok, err := store.Bind(ctx, "auth0|a", "did:plc:a2", "did:plc:a"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if a, _ := store.Binding(ctx, "auth0|a"); a.LastReconcile == nil {
		t.Fatal("rebind forgot the last reconcile")
	}

	users := store.DB.Collection(mongostore.UsersCollection)
	_, err = users.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "auth0|full"}, {Key: "atproto", Value: bson.D{{Key: "did", Value: "did:plc:full"}, {Key: "handle", Value: "full.test"}, {Key: "password", Value: "s3cret-pw"}}}},
		bson.D{{Key: "_id", Value: "auth0|nopw"}, {Key: "atproto", Value: bson.D{{Key: "did", Value: "did:plc:nopw"}, {Key: "handle", Value: "nopw.test"}, {Key: "password", Value: ""}}}},
		bson.D{{Key: "_id", Value: "auth0|bare"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]*model.UsersRow{
		"auth0|full":    {User: "auth0|full", DID: "did:plc:full", Handle: "full.test", HasPassword: true},
		"auth0|nopw":    {User: "auth0|nopw", DID: "did:plc:nopw", Handle: "nopw.test"},
		"auth0|bare":    {User: "auth0|bare"},
		"auth0|missing": nil,
	} {
		got, err := store.UsersRow(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("UsersRow(%s) = %+v, want %+v", user, got, want)
		}
		if got != nil && strings.Contains(got.DID+got.Handle+got.User, "s3cret") {
			t.Errorf("UsersRow(%s) shows the password", user)
		}
	}
}
