package publisher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// docs reads every document of a collection as raw BSON, to show nothing
// was written.
func docs(t *testing.T, s *mongostore.Store, collection string) string {
	t.Helper()
	cur, err := s.DB.Collection(collection).Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var all []bson.Raw
	if err := cur.All(context.Background(), &all); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, d := range all {
		b.WriteString(d.String() + "\n")
	}
	return b.String()
}

func insertDoc(t *testing.T, s *mongostore.Store, collection string, doc bson.D) {
	t.Helper()
	if _, err := s.DB.Collection(collection).InsertOne(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
}

// TestIntentsNamingMalformedMoodsAreDeadLettered: against the embedded
// Mongo-wire server, an intent naming a mood whose `when` is a string,
// whose `mood` is a number or whose `user` is missing ends as one dead
// letter saying so; nothing is written to the PDS or to Mongo, and each
// document is counted.
func TestIntentsNamingMalformedMoodsAreDeadLettered(t *testing.T) {
	store := devenv.NewStore(t)
	var reported atomic.Int64
	store.OnMalformed = func(string, string, string) { reported.Add(1) }
	pds := reconciletest.NewPDS()
	r := newRigOn(t, devenv.NewNATS(t), reconcile.NewEngine(store, pds, nil))
	insertDoc(t, store, mongostore.UsersCollection, bson.D{{Key: "_id", Value: "auth0|alice"},
		{Key: "atproto", Value: bson.D{{Key: "did", Value: "did:plc:alice"}, {Key: "password", Value: "pw"}}}})
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	whenText, moodNumber, noUser := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	insertDoc(t, store, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: whenText}, {Key: "user", Value: "auth0|alice"},
		{Key: "mood", Value: "text"}, {Key: "when", Value: "yesterday"}})
	insertDoc(t, store, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: moodNumber}, {Key: "user", Value: "auth0|alice"},
		{Key: "mood", Value: 3.5}, {Key: "when", Value: when}, {Key: "deleted", Value: true},
		{Key: "atproto", Value: bson.D{{Key: "rkey", Value: "3kaaaaaaaaa01"}}}})
	insertDoc(t, store, mongostore.MoodsCollection, bson.D{{Key: "_id", Value: noUser}, {Key: "mood", Value: "whose?"}, {Key: "when", Value: when}})
	before := docs(t, store, mongostore.MoodsCollection)

	r.run()
	for _, in := range []intent.Intent{
		{Op: intent.OpCreate, User: "auth0|alice", MongoID: whenText.Hex()},
		{Op: intent.OpDelete, User: "auth0|alice", MongoID: moodNumber.Hex()},
		{Op: intent.OpCreate, User: "auth0|alice", MongoID: noUser.Hex()},
	} {
		if err := intent.Publish(context.Background(), r.js, in); err != nil {
			t.Fatal(err)
		}
	}
	r.drained()

	dead := DeadLetters(t, r.js)
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	for i, want := range []string{"when is a string, not a date", "mood is a number, not a string", "user missing"} {
		reason := dead[i].Header.Get(HeaderReason)
		if !strings.Contains(reason, "malformed") || !strings.Contains(reason, want) || !strings.Contains(reason, "nothing written") {
			t.Errorf("dead letter %d: reason %q, want it to say the document is malformed (%s)", i, reason, want)
		}
	}
	if recs, _ := pds.ListRecords(context.Background(), "did:plc:alice"); len(recs) != 0 {
		t.Errorf("%d records written for malformed moods", len(recs))
	}
	if docs(t, store, mongostore.MoodsCollection) != before {
		t.Error("a malformed mood was written")
	}
	if reported.Load() < 3 {
		t.Errorf("%d malformed documents reported, want each of the 3", reported.Load())
	}
}

// TestIntentsOfUsersWithMalformedRowsAreDeadLettered: a users row whose
// atproto has no DID or a malformed one is no account, one without a
// password cannot log in: their intents end as dead letters, each row is
// counted, and nothing is written (the PDS client's one public read, of
// the record's key, is answered "not found" by a stand-in that counts
// every other call).
func TestIntentsOfUsersWithMalformedRowsAreDeadLettered(t *testing.T) {
	store := devenv.NewStore(t)
	var reported, calls atomic.Int64
	store.OnMalformed = func(string, string, string) { reported.Add(1) }
	pds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && req.URL.Path == "/xrpc/com.atproto.repo.getRecord" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"RecordNotFound","message":"Could not locate record"}`))
			return
		}
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(pds.Close)
	r := newRigOn(t, devenv.NewNATS(t), reconcile.NewEngine(store, pdsclient.New(pds.URL, store, nil), nil))
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	for user, atproto := range map[string]bson.D{
		"auth0|nodid":  {{Key: "handle", Value: "nodid.test"}, {Key: "password", Value: "pw"}},
		"auth0|baddid": {{Key: "did", Value: "did:plc:"}, {Key: "password", Value: "pw"}},
		"auth0|nopw":   {{Key: "did", Value: "did:plc:nopw"}},
	} {
		insertDoc(t, store, mongostore.UsersCollection, bson.D{{Key: "_id", Value: user}, {Key: "atproto", Value: atproto}})
		id := devenv.InsertMood(t, store, user, "fine", when)
		if err := intent.Publish(context.Background(), r.js, intent.Intent{Op: intent.OpCreate, User: user, MongoID: id}); err != nil {
			t.Fatal(err)
		}
	}
	before := docs(t, store, mongostore.MoodsCollection)
	r.run()
	r.drained()

	reasons := map[string]string{}
	for _, m := range DeadLetters(t, r.js) {
		in, _ := intent.Parse(m.Header.Get(HeaderSubject), m.Data)
		reasons[in.User] = m.Header.Get(HeaderReason)
	}
	for user, want := range map[string]string{
		"auth0|nodid": "has no PDS account", "auth0|baddid": "has no PDS account", "auth0|nopw": "no PDS session or password",
	} {
		if !strings.Contains(reasons[user], want) {
			t.Errorf("%s: dead letter reason %q, want %q", user, reasons[user], want)
		}
	}
	if len(reasons) != 3 {
		t.Errorf("dead letters of %d users, want 3", len(reasons))
	}
	if docs(t, store, mongostore.MoodsCollection) != before {
		t.Error("a mood was written")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls to the PDS besides reads of the record's key", n)
	}
	if reported.Load() < 3 {
		t.Errorf("%d malformed rows reported, want each of the 3", reported.Load())
	}
}
