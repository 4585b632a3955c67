package mongostore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// The store's queries and compare-and-set writes, against the embedded
// Mongo-wire server (or MOODSYNC_TEST_MONGO_URI): every write reports
// whether the document was in the expected state and leaves it alone when
// it was not.

var when = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

var ctx = context.Background()

func insertUser(t *testing.T, s *mongostore.Store, user string, atproto bson.D) {
	t.Helper()
	doc := bson.D{{Key: "_id", Value: user}}
	if atproto != nil {
		doc = append(doc, bson.E{Key: "atproto", Value: atproto})
	}
	if _, err := s.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
}

func mood(t *testing.T, s *mongostore.Store, id string) *model.Mood {
	t.Helper()
	m, err := s.Moods(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	return m[id]
}

func check(t *testing.T, what string, got bool, err error, want bool) {
	t.Helper()
	if err != nil || got != want {
		t.Fatalf("%s = %v, %v; want %v", what, got, err, want)
	}
}

func TestMoodsAreReadAsTheAppWritesThem(t *testing.T) {
	s := devenv.NewStore(t)
	a := devenv.InsertMood(t, s, "auth0|alice", "sunny", when)
	b := devenv.InsertMood(t, s, "auth0|alice", "rainy", when.Add(time.Minute))
	devenv.InsertMood(t, s, "auth0|bob", "bob's", when)
	devenv.SoftDelete(t, s, b)

	got := mood(t, s, a)
	want := &model.Mood{ID: a, User: "auth0|alice", Text: "sunny", When: when}
	if *got != *want {
		t.Fatalf("mood %+v, want %+v", got, want)
	}
	if m := mood(t, s, b); !m.Deleted {
		t.Fatalf("soft-deleted mood read as %+v", m)
	}
	if m, err := s.Moods(ctx, []string{"0123456789abcdef01234567"}); err != nil || len(m) != 0 {
		t.Fatalf("a missing mood: %v, %v", m, err)
	}
	if _, err := s.Moods(ctx, []string{"nothex"}); !model.IsPermanent(err) {
		t.Fatalf("a bad id: %v, want a permanent error", err)
	}
	moods, err := s.UserMoods(ctx, "auth0|alice")
	if err != nil || len(moods) != 2 {
		t.Fatalf("alice's moods: %d, %v; want 2 (deleted ones included)", len(moods), err)
	}
}

func TestRkeyCompareAndSet(t *testing.T) {
	s := devenv.NewStore(t)
	id := devenv.InsertMood(t, s, "auth0|alice", "sunny", when)

	ok, err := s.SetRkey(ctx, id, "3kaaaaaaaaa01")
	check(t, "SetRkey on a mood without atproto", ok, err, true)
	ok, err = s.SetRkey(ctx, id, "3kaaaaaaaaa02")
	check(t, "SetRkey on a mood that has an rkey", ok, err, false)
	if got := mood(t, s, id).Rkey; got != "3kaaaaaaaaa01" {
		t.Fatalf("rkey %q after a lost compare-and-set", got)
	}
	if m, err := s.MoodByRkey(ctx, "auth0|alice", "3kaaaaaaaaa01"); err != nil || m == nil || m.ID != id {
		t.Fatalf("MoodByRkey: %+v, %v", m, err)
	}
	if m, err := s.MoodByRkey(ctx, "auth0|bob", "3kaaaaaaaaa01"); err != nil || m != nil {
		t.Fatalf("MoodByRkey of another user: %+v, %v", m, err)
	}

	ok, err = s.SwapRkey(ctx, id, "3kaaaaaaaaa09", "3kaaaaaaaaa03")
	check(t, "SwapRkey from a key the mood does not hold", ok, err, false)
	ok, err = s.SwapRkey(ctx, id, "3kaaaaaaaaa01", "3kaaaaaaaaa03")
	check(t, "SwapRkey from its key", ok, err, true)

	ok, err = s.ClearRkey(ctx, id, "3kaaaaaaaaa01")
	check(t, "ClearRkey of a key it no longer holds", ok, err, false)
	ok, err = s.ClearRkey(ctx, id, "3kaaaaaaaaa03")
	check(t, "ClearRkey of its key", ok, err, true)
	if got := mood(t, s, id).Rkey; got != "" {
		t.Fatalf("rkey %q after ClearRkey", got)
	}

	// A legacy script's empty atproto counts as unset.
	_, err = s.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid(t, id)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "atproto", Value: bson.D{{Key: "rkey", Value: ""}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ok, err = s.SetRkey(ctx, id, "3kaaaaaaaaa04")
	check(t, "SetRkey over an empty rkey", ok, err, true)

	ok, err = s.SoftDeleteByRkey(ctx, id, "3kaaaaaaaaa01")
	check(t, "SoftDeleteByRkey of another key", ok, err, false)
	ok, err = s.SoftDeleteByRkey(ctx, id, "3kaaaaaaaaa04")
	check(t, "SoftDeleteByRkey of its key", ok, err, true)
	if m := mood(t, s, id); !m.Deleted || m.Rkey != "" {
		t.Fatalf("mood after SoftDeleteByRkey: %+v", m)
	}
	ok, err = s.SetRkey(ctx, id, "3kaaaaaaaaa05")
	check(t, "SetRkey on a soft-deleted mood", ok, err, false)
}

func TestUserWideWrites(t *testing.T) {
	s := devenv.NewStore(t)
	a := devenv.InsertMood(t, s, "auth0|alice", "one", when)
	devenv.InsertMood(t, s, "auth0|alice", "two", when)
	bob := devenv.InsertMood(t, s, "auth0|bob", "bob's", when)
	for _, id := range []string{a, bob} {
		if _, err := s.SetRkey(ctx, id, "3kaaaaaaaaa01"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.ClearUserRkeys(ctx, "auth0|alice"); err != nil || n != 1 {
		t.Fatalf("ClearUserRkeys = %d, %v; want 1", n, err)
	}
	if mood(t, s, a).Rkey != "" || mood(t, s, bob).Rkey == "" {
		t.Fatal("ClearUserRkeys touched the wrong moods")
	}
	if n, err := s.DeleteUserMoods(ctx, "auth0|alice", time.Time{}); err != nil || n != 2 {
		t.Fatalf("DeleteUserMoods = %d, %v; want 2", n, err)
	}
	if mood(t, s, bob) == nil {
		t.Fatal("DeleteUserMoods deleted another user's mood")
	}
}

func TestAccounts(t *testing.T) {
	s := devenv.NewStore(t)
	insertUser(t, s, "auth0|alice", bson.D{{Key: "did", Value: "did:plc:alice"}, {Key: "handle", Value: "alice.test"}, {Key: "password", Value: "pw"}})
	insertUser(t, s, "auth0|nopds", nil)

	acct, err := s.Account(ctx, "auth0|alice")
	if err != nil || acct == nil || *acct != (model.Account{User: "auth0|alice", DID: "did:plc:alice", Handle: "alice.test"}) {
		t.Fatalf("Account = %+v, %v", acct, err)
	}
	for _, user := range []string{"auth0|nopds", "auth0|nobody"} {
		if acct, err := s.Account(ctx, user); err != nil || acct != nil {
			t.Fatalf("Account(%s) = %+v, %v; want none", user, acct, err)
		}
	}
	if acct, err := s.AccountByDID(ctx, "did:plc:alice"); err != nil || acct == nil || acct.User != "auth0|alice" {
		t.Fatalf("AccountByDID = %+v, %v", acct, err)
	}
	if pw, err := s.Password(ctx, "did:plc:alice"); err != nil || pw != "pw" {
		t.Fatalf("Password = %q, %v", pw, err)
	}
	accts, err := s.Accounts(ctx)
	if err != nil || len(accts) != 1 || accts[0].User != "auth0|alice" {
		t.Fatalf("Accounts = %+v, %v", accts, err)
	}
	users, err := s.UsersOfDID(ctx, "did:plc:alice")
	if err != nil || !slices.Equal(users, []string{"auth0|alice"}) {
		t.Fatalf("UsersOfDID = %v, %v", users, err)
	}
}

func TestBindingsCompareAndSet(t *testing.T) {
	s := devenv.NewStore(t)
	ok, err := s.Bind(ctx, "auth0|alice", "did:plc:one", "")
	check(t, "first Bind", ok, err, true)
	ok, err = s.Bind(ctx, "auth0|alice", "did:plc:two", "")
	check(t, "a second first Bind", ok, err, false)
	if err := s.SetStatus(ctx, "auth0|alice", "did:plc:one", model.StatusDeactivated); err != nil {
		t.Fatal(err)
	}
	b, err := s.Binding(ctx, "auth0|alice")
	if err != nil || b == nil || b.DID != "did:plc:one" || !b.Inactive() {
		t.Fatalf("Binding = %+v, %v", b, err)
	}
	ok, err = s.Bind(ctx, "auth0|alice", "did:plc:two", "did:plc:other")
	check(t, "Bind from a DID it is not bound to", ok, err, false)
	ok, err = s.Bind(ctx, "auth0|alice", "did:plc:two", "did:plc:one")
	check(t, "rebind", ok, err, true)
	b, err = s.Binding(ctx, "auth0|alice")
	if err != nil || b.DID != "did:plc:two" || b.Status != "" {
		t.Fatalf("after a rebind: %+v, %v (the old account's status must go)", b, err)
	}
	if bs, err := s.BindingsOfDID(ctx, "did:plc:two"); err != nil || len(bs) != 1 {
		t.Fatalf("BindingsOfDID = %+v, %v", bs, err)
	}
	if b, err := s.Binding(ctx, "auth0|nobody"); err != nil || b != nil {
		t.Fatalf("Binding of nobody = %+v, %v", b, err)
	}
}

func TestSessionsAndCursorsPersist(t *testing.T) {
	s := devenv.NewStore(t)
	if sess, err := s.LoadSession(ctx, "did:plc:alice"); err != nil || sess != nil {
		t.Fatalf("no session yet: %+v, %v", sess, err)
	}
	in := pdsclient.Session{DID: "did:plc:alice", Host: "http://pds", AccessToken: "a", RefreshToken: "r"}
	if err := s.SaveSession(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.AccessToken = "a2"
	if err := s.SaveSession(ctx, in); err != nil {
		t.Fatal(err)
	}
	sess, err := s.LoadSession(ctx, "did:plc:alice")
	if err != nil || sess == nil || sess.AccessToken != "a2" || sess.RefreshToken != "r" || sess.UpdatedAt.IsZero() {
		t.Fatalf("session = %+v, %v", sess, err)
	}
	if err := s.DeleteSession(ctx, "did:plc:alice"); err != nil {
		t.Fatal(err)
	}
	if sess, err := s.LoadSession(ctx, "did:plc:alice"); err != nil || sess != nil {
		t.Fatalf("session after delete: %+v, %v", sess, err)
	}

	if _, ok, err := s.LoadCursor(ctx, "wss://pds"); err != nil || ok {
		t.Fatalf("cursor before any: ok=%v, %v", ok, err)
	}
	for _, seq := range []int64{7, 42} {
		if err := s.SaveCursor(ctx, "wss://pds", seq); err != nil {
			t.Fatal(err)
		}
	}
	if seq, ok, err := s.LoadCursor(ctx, "wss://pds"); err != nil || !ok || seq != 42 {
		t.Fatalf("cursor = %d, %v, %v", seq, ok, err)
	}
	if _, ok, _ := s.LoadCursor(ctx, "wss://relay"); ok {
		t.Fatal("a cursor of another stream")
	}
	if err := s.DeleteCursor(ctx, "wss://pds"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LoadCursor(ctx, "wss://pds"); ok {
		t.Fatal("cursor after delete")
	}
}

func oid(t *testing.T, id string) bson.ObjectID {
	t.Helper()
	o, err := bson.ObjectIDFromHex(id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestDeleteUserMoodsUpTo: a purge asked at a time erases the moods whose
// ObjectID was made up to then, and none made after.
func TestDeleteUserMoodsUpTo(t *testing.T) {
	s := devenv.NewStore(t)
	asked := time.Date(2026, 12, 1, 12, 0, 0, 500e6, time.UTC)
	insert := func(at time.Time) string {
		oid := bson.NewObjectIDFromTimestamp(at)
		oid[11] = 0xff // not the smallest id of its second
		if _, err := s.DB.Collection(mongostore.MoodsCollection).InsertOne(ctx, bson.D{
			{Key: "_id", Value: oid}, {Key: "user", Value: "auth0|alice"}, {Key: "mood", Value: "m"}, {Key: "when", Value: at},
		}); err != nil {
			t.Fatal(err)
		}
		return oid.Hex()
	}
	before, same, after := insert(asked.Add(-time.Hour)), insert(asked), insert(asked.Add(time.Second))
	if n, err := s.DeleteUserMoods(ctx, "auth0|alice", asked); err != nil || n != 2 {
		t.Fatalf("DeleteUserMoods = %d, %v; want 2", n, err)
	}
	if mood(t, s, before) != nil || mood(t, s, same) != nil || mood(t, s, after) == nil {
		t.Fatal("DeleteUserMoods erased the wrong moods")
	}
}

// TestInsertMoodNeverOverwrites: restore's insert adds a mood once, and
// leaves an existing document as it is.
func TestInsertMoodNeverOverwrites(t *testing.T) {
	s := devenv.NewStore(t)
	m := model.Mood{ID: "607f1f77bcf86cd799439201", User: "auth0|alice", Text: "lost", When: when, Rkey: "3kaaaaaaaaa01"}
	ok, err := s.InsertMood(ctx, m)
	check(t, "InsertMood of a missing mood", ok, err, true)
	got := mood(t, s, m.ID)
	if got == nil || got.User != m.User || got.Text != m.Text || !got.When.Equal(m.When) || got.Rkey != m.Rkey {
		t.Fatalf("inserted %+v, want %+v", got, m)
	}
	m.Text = "another"
	ok, err = s.InsertMood(ctx, m)
	check(t, "InsertMood of an existing id", ok, err, false)
	if mood(t, s, m.ID).Text != "lost" {
		t.Fatal("InsertMood overwrote a document")
	}
}
