package mongostore_test

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// reports collects what the store reports of malformed documents.
type reports struct {
	mu  sync.Mutex
	got map[string]string // collection/_id → why
}

func watch(s *mongostore.Store) (*reports, *bytes.Buffer) {
	r := &reports{got: map[string]string{}}
	s.OnMalformed = func(collection, id, why string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got[collection+"/"+id] = why
	}
	var logs bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	return r, &logs
}

func (r *reports) why(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[key]
}

func insert(t *testing.T, s *mongostore.Store, collection string, doc bson.D) {
	t.Helper()
	if _, err := s.DB.Collection(collection).InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedMoodsAreFlaggedNotFatal: a mood whose `when` is a string,
// whose `mood` is a number or whose `user` is missing does not fail the
// read of the others: it is returned with only its id (and user) and the
// reason, reported (counted, logged with its _id); one whose _id is not an
// ObjectID cannot be named by anything and is only reported.
func TestMalformedMoodsAreFlaggedNotFatal(t *testing.T) {
	s := devenv.NewStore(t)
	r, logs := watch(s)
	good := devenv.InsertMood(t, s, "auth0|alice", "fine", when)
	whenText, moodNumber, noUser := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	insert(t, s, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: whenText}, {Key: "user", Value: "auth0|alice"},
		{Key: "mood", Value: "when is text"}, {Key: "when", Value: "2025-10-14"},
		{Key: "atproto", Value: bson.D{{Key: "rkey", Value: "3kaaaaaaaaa01"}}}})
	insert(t, s, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: moodNumber}, {Key: "user", Value: "auth0|alice"},
		{Key: "mood", Value: 42}, {Key: "when", Value: when}})
	insert(t, s, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: noUser}, {Key: "mood", Value: "whose?"}, {Key: "when", Value: when}})
	insert(t, s, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: "not-an-objectid"}, {Key: "user", Value: "auth0|alice"},
		{Key: "mood", Value: "x"}, {Key: "when", Value: when}})

	moods, err := s.UserMoods(ctx, "auth0|alice")
	if err != nil {
		t.Fatalf("one bad document failed the read of all: %v", err)
	}
	byID := map[string]string{}
	for _, m := range moods {
		byID[m.ID] = m.Malformed
	}
	if len(moods) != 3 || byID[good] != "" || byID[whenText.Hex()] != "when is a string, not a date" ||
		byID[moodNumber.Hex()] != "mood is a number, not a string" {
		t.Fatalf("alice's moods: %v", byID)
	}

	got, err := s.Moods(ctx, []string{good, whenText.Hex(), moodNumber.Hex(), noUser.Hex()})
	if err != nil {
		t.Fatal(err)
	}
	if m := got[noUser.Hex()]; m == nil || m.Malformed != "user missing" || m.User != "" {
		t.Fatalf("mood without user: %+v", m)
	}
	if m := got[whenText.Hex()]; m.User != "auth0|alice" || m.Text != "" || m.Rkey != "" || !m.When.IsZero() {
		t.Fatalf("a malformed mood carries more than its id and user: %+v", m)
	}
	if m, err := s.MoodByRkey(ctx, "auth0|alice", "3kaaaaaaaaa01"); err != nil || m == nil || m.Malformed == "" {
		t.Fatalf("MoodByRkey of a malformed mood: %+v, %v", m, err)
	}

	for id, why := range map[string]string{
		whenText.Hex(): "when is a string, not a date", moodNumber.Hex(): "mood is a number, not a string",
		noUser.Hex(): "user missing", "not-an-objectid": "_id is a string, not an ObjectID",
	} {
		if got := r.why("moods/" + id); got != why {
			t.Errorf("moods/%s reported as %q, want %q", id, got, why)
		}
		if !strings.Contains(logs.String(), "id="+id) {
			t.Errorf("no log line names %s", id)
		}
	}
	if r.why("moods/"+good) != "" {
		t.Error("a good mood reported")
	}
}

// TestMalformedUsersRowsAreNoAccount: a users row whose atproto has no DID,
// a DID that is not one, or a DID of the wrong type is no account (skipped
// by Accounts, nil from Account), reported; a row without atproto is a user
// without a PDS account, not reported; one without a password is an
// account that cannot log in, reported when a login asks for it.
func TestMalformedUsersRowsAreNoAccount(t *testing.T) {
	s := devenv.NewStore(t)
	r, _ := watch(s)
	row := func(id string, atproto bson.D) {
		doc := bson.D{{Key: "_id", Value: id}}
		if atproto != nil {
			doc = append(doc, bson.E{Key: "atproto", Value: atproto})
		}
		insert(t, s, mongostore.UsersCollection, doc)
	}
	row("auth0|good", bson.D{{Key: "did", Value: "did:plc:good"}, {Key: "password", Value: "pw"}})
	row("auth0|nopds", nil)
	row("auth0|nodid", bson.D{{Key: "handle", Value: "nodid.test"}, {Key: "password", Value: "pw"}})
	row("auth0|baddid", bson.D{{Key: "did", Value: "plc:not a did"}, {Key: "password", Value: "pw"}})
	row("auth0|numdid", bson.D{{Key: "did", Value: 7}, {Key: "password", Value: "pw"}})
	row("auth0|nopw", bson.D{{Key: "did", Value: "did:plc:nopw"}})

	accts, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, a := range accts {
		users = append(users, a.User)
	}
	slices.Sort(users)
	if strings.Join(users, ",") != "auth0|good,auth0|nopw" {
		t.Fatalf("accounts %v, want the good row and the one without a password", users)
	}
	for user, why := range map[string]string{
		"auth0|nodid": "atproto.did missing", "auth0|baddid": "atproto.did is not a DID", "auth0|numdid": "atproto.did is a number, not a string",
	} {
		if acct, err := s.Account(ctx, user); err != nil || acct != nil {
			t.Errorf("Account(%s) = %+v, %v; want none", user, acct, err)
		}
		if got := r.why("users/" + user); got != why {
			t.Errorf("users/%s reported as %q, want %q", user, got, why)
		}
	}
	if r.why("users/auth0|nopds") != "" || r.why("users/auth0|good") != "" {
		t.Error("a row that is fine reported")
	}
	if pw, err := s.Password(ctx, "did:plc:nopw"); err != nil || pw != "" {
		t.Fatalf("Password = %q, %v", pw, err)
	}
	if got := r.why("users/auth0|nopw"); !strings.Contains(got, "atproto.password missing") {
		t.Errorf("a row without password reported as %q", got)
	}
}
