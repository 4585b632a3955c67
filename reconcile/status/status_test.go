package status_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

const (
	alice    = "auth0|alice"
	aliceDID = "did:plc:alice"
	password = "pw-s3cret-do-not-show"
)

// world is Mongo-wire and NATS for real, the PDS in memory.
type world struct {
	t     *testing.T
	store *mongostore.Store
	pds   *reconciletest.PDS
	js    jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	w := &world{t: t, store: devenv.NewStore(t), pds: reconciletest.NewPDS(), js: js}
	if err := publisher.EnsureStreams(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	_, err := w.store.DB.Collection(mongostore.UsersCollection).InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: alice},
		{Key: "atproto", Value: bson.D{{Key: "did", Value: aliceDID}, {Key: "handle", Value: "alice.test"}, {Key: "password", Value: password}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// mood inserts a mood of alice; a record is put on the PDS when onPDS.
func (w *world) mood(text, rkey string, deleted, onPDS bool) string {
	w.t.Helper()
	id := devenv.InsertMood(w.t, w.store, alice, text, time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC))
	set := bson.D{}
	if rkey != "" {
		set = append(set, bson.E{Key: "atproto", Value: bson.D{{Key: "rkey", Value: rkey}}})
	}
	if deleted {
		set = append(set, bson.E{Key: "deleted", Value: true})
	}
	if len(set) > 0 {
		oid, _ := bson.ObjectIDFromHex(id)
		if _, err := w.store.DB.Collection(mongostore.MoodsCollection).UpdateOne(context.Background(),
			bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: set}}); err != nil {
			w.t.Fatal(err)
		}
	}
	if onPDS {
		m := &model.Mood{ID: id, Text: text, When: time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)}
		w.pds.Put(aliceDID, model.Record{Rkey: rkey, Value: model.NewRecordValue(m)})
	}
	return id
}

func (w *world) reader() *status.Reader {
	r := status.NewReader(w.store, w.pds, 0)
	r.Queues = deadletter.Queues{JS: w.js}
	return r
}

func (w *world) read(r *status.Reader, user string) *status.User {
	w.t.Helper()
	u, err := r.Read(context.Background(), user)
	if err != nil {
		w.t.Fatal(err)
	}
	return u
}

// TestStatusOfAUserWithDrift reads every section for a user with moods in
// each state, drift, a pending intent and a dead letter, and shows no
// password.
func TestStatusOfAUserWithDrift(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.mood("synced", "3kaaaaaaaaa01", false, true)
	notSynced := w.mood("not synced", "", false, false)
	w.mood("deleted, record still there", "3kaaaaaaaaa03", true, true)
	w.mood("deleted", "", true, false)
	if _, err := w.store.Bind(ctx, alice, aliceDID, ""); err != nil {
		t.Fatal(err)
	}
	mark := model.ReconcileMark{At: time.Date(2025, 10, 14, 19, 0, 0, 0, time.UTC), Cause: "periodic"}
	if err := w.store.NoteReconcile(ctx, alice, mark); err != nil {
		t.Fatal(err)
	}
	if err := intent.Publish(ctx, w.js, intent.Intent{Op: intent.OpCreate, MongoID: notSynced, User: alice}); err != nil {
		t.Fatal(err)
	}
	if err := intent.Publish(ctx, w.js, intent.Intent{Op: intent.OpReconcile, User: "auth0|bob"}); err != nil {
		t.Fatal(err)
	}
	letter := nats.NewMsg("moods.dead.create")
	letter.Data = []byte(`{"op":"create","user":"auth0|alice","mongoId":"` + notSynced + `"}`)
	letter.Header.Set(publisher.HeaderReason, "PDS login refused for did:plc:alice")
	letter.Header.Set(publisher.HeaderSubject, "moods.intent.create")
	if _, err := w.js.PublishMsg(ctx, letter); err != nil {
		t.Fatal(err)
	}

	u := w.read(w.reader(), alice)
	if !u.Known() {
		t.Fatal("alice unknown")
	}
	if want := (model.UsersRow{User: alice, DID: aliceDID, Handle: "alice.test", HasPassword: true}); u.UsersRow == nil || *u.UsersRow != want {
		t.Errorf("users row %+v", u.UsersRow)
	}
	if u.Binding == nil || u.Binding.DID != aliceDID || u.Binding.Status != "" {
		t.Errorf("binding %+v", u.Binding)
	}
	if u.PDS == nil || !u.PDS.Active || u.PDS.DID != aliceDID {
		t.Errorf("PDS %+v", u.PDS)
	}
	if want := (status.Moods{Total: 4, LiveSynced: 1, LiveNotSynced: 1, SoftDeletedWithRkey: 1, SoftDeletedWithoutRkey: 1}); u.Moods != want {
		t.Errorf("moods %+v, want %+v", u.Moods, want)
	}
	if u.Drift.Summary == nil || u.Drift.Drift != 2 || u.Drift.Notices != 0 || len(u.Drift.Plan) != 3 {
		t.Errorf("drift %+v (%+v)", u.Drift, u.Drift.Summary)
	}
	if u.Intents.Pending == nil || u.Intents.Count != 1 || u.Intents.Waiting != 2 || u.Intents.Intents[0].MongoID != notSynced {
		t.Errorf("intents %+v (%+v)", u.Intents, u.Intents.Pending)
	}
	if u.DeadLetters.Count != 1 || u.DeadLetters.Letters[0].Reason != "PDS login refused for did:plc:alice" {
		t.Errorf("dead letters %+v", u.DeadLetters)
	}
	if u.LastReconcile == nil || *u.LastReconcile != mark || u.LastEvent != nil {
		t.Errorf("last reconcile %+v, last event %+v", u.LastReconcile, u.LastEvent)
	}
	js, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), password) {
		t.Fatal("the password is in the status")
	}

	// Listing is bounded; counting is not.
	r := w.reader()
	r.Keep = 1
	if err := intent.Publish(ctx, w.js, intent.Intent{Op: intent.OpReconcile, User: alice}); err != nil {
		t.Fatal(err)
	}
	if u := w.read(r, alice); u.Intents.Count != 2 || len(u.Intents.Intents) != 1 {
		t.Errorf("keep 1: intents %+v", u.Intents.Pending)
	}
}

// TestStatusChangesNothing: reading the status of a user whose account was
// deactivated behind moodsync's back says so, from the PDS, and records
// nothing: not the status, not a reconcile, not a binding.
func TestStatusChangesNothing(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.mood("synced", "3kaaaaaaaaa01", false, true)
	w.mood("gone from the PDS", "3kaaaaaaaaa02", false, false)
	u := w.read(w.reader(), alice)
	if u.Binding != nil {
		t.Fatalf("binding %+v before any reconcile", u.Binding)
	}
	if u.Drift.Summary == nil || u.Drift.Drift != 1 || u.Drift.Plan[0].Kind != reconcile.FixSoftDelete {
		t.Fatalf("drift %+v", u.Drift.Summary)
	}
	if b, _ := w.store.Binding(ctx, alice); b != nil {
		t.Fatalf("a status bound the user: %+v", b)
	}

	if _, err := w.store.Bind(ctx, alice, aliceDID, ""); err != nil {
		t.Fatal(err)
	}
	w.pds.SetStatus(aliceDID, model.StatusDeactivated)
	u = w.read(w.reader(), alice)
	if u.PDS == nil || u.PDS.Active || u.PDS.Status != model.StatusDeactivated {
		t.Errorf("PDS %+v", u.PDS)
	}
	if u.Drift.Summary != nil || !strings.Contains(u.Drift.Error, "deactivated") {
		t.Errorf("drift of a deactivated repo: %+v", u.Drift)
	}
	b, err := w.store.Binding(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != "" || b.LastReconcile != nil {
		t.Fatalf("a status recorded something: %+v", b)
	}
	moods, err := w.store.UserMoods(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range moods {
		if m.Deleted || m.Rkey == "" {
			t.Fatalf("a status changed a mood: %+v", m)
		}
	}
}

// TestStatusOfNobodyAndWithoutNATS: a user moodsync knows nothing of is
// not Known; without NATS the queues say why and the rest is read.
func TestStatusOfNobodyAndWithoutNATS(t *testing.T) {
	w := newWorld(t)
	if u := w.read(w.reader(), "auth0|nobody"); u.Known() || u.UsersRow != nil || u.PDS != nil || u.Drift.Error == "" {
		t.Fatalf("nobody: %+v", u)
	}
	r := status.NewReader(w.store, w.pds, 0)
	r.NATSErr = context.DeadlineExceeded
	u := w.read(r, alice)
	if !strings.Contains(u.Intents.Error, "NATS") || !strings.Contains(u.DeadLetters.Error, "NATS") || u.UsersRow == nil {
		t.Fatalf("without NATS: %+v", u)
	}
}
