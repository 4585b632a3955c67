package main

// The whole-user reconcile, the account lifecycle and the trust rules on
// the real parts: the dev PDS, NATS JetStream, the Mongo-wire server, and
// `moodsync run` itself.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// TestReconcileIntentRepairsEveryDriftClass: a reconcile intent per user,
// worked by the publisher, repairs every drift class the audit reports —
// unsynced, soft- and hard-deleted orphans, duplicates, stale rkeys, a
// legacy mongoId-only record — and leaves only the notices (spoof, invalid,
// text mismatch).
func TestReconcileIntentRepairsEveryDriftClass(t *testing.T) {
	w := newAEWorld(t)
	ctx := context.Background()
	d := seedEveryDrift(t, w)
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	runPublisher(t, js, publisher.New(js, w.engine, publisher.Config{}, nil))
	for _, u := range []*devenv.Account{d.alice, d.bob, d.carol} {
		if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpReconcile, User: u.User}); err != nil {
			t.Fatal(err)
		}
	}
	want := d.notices(w)
	var got []string
	devenv.Eventually(t, 60*time.Second, "only the notices left", func() bool {
		got = w.auditFacts(ctx)
		return slices.Equal(got, want)
	})
	d.checkRepaired(t, w)
}

// runPublisher runs p until the test ends.
func runPublisher(t *testing.T, js jetstream.JetStream, p *publisher.Publisher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// lifeWorld is `moodsync run` on the real parts, with what a test of the
// account lifecycle needs around it.
type lifeWorld struct {
	*aeWorld
	d    *daemon
	http string
	js   jetstream.JetStream
	dead *deadletter.Box
}

func newLifeWorld(t *testing.T) *lifeWorld { return newLifeWorldOn(newAEWorld(t)) }

// newLifeWorldOn is a lifeWorld around ae.
func newLifeWorldOn(ae *aeWorld) *lifeWorld {
	t := ae.t
	w := &lifeWorld{aeWorld: ae}
	natsURL := devenv.NewNATS(t)
	_, w.js = devenv.ConnectJetStream(t, natsURL)
	w.http = freeAddr(t)
	w.d = &daemon{t: t, env: []string{
		"MOODSYNC_PDS_URL=" + w.pds.URL,
		"MOODSYNC_PLC_URL=" + w.pds.PLCURL,
		"MOODSYNC_MONGO_URI=" + devenv.MongoURI(t),
		"MOODSYNC_MONGO_DB=" + w.store.DB.Name(),
		"MOODSYNC_NATS_URL=" + natsURL,
		"MOODSYNC_HTTP_ADDR=" + w.http,
		"MOODSYNC_ANTI_ENTROPY_EVERY=0",
		"MOODSYNC_LOG_FORMAT=text",
	}}
	return w
}

func (w *lifeWorld) start() {
	w.d.start()
	devenv.Eventually(w.t, 60*time.Second, "following the firehose", func() bool {
		return strings.Contains(w.d.logs.String(), "following firehose")
	})
	if w.dead == nil {
		var err error
		if w.dead, err = deadletter.Open(context.Background(), w.js); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *lifeWorld) stop() {
	if code := w.d.stop(); code != 0 {
		w.t.Fatalf("run exited %d", code)
	}
}

// create inserts a mood of a and publishes its create intent.
func (w *lifeWorld) create(a *devenv.Account, text string) string {
	w.t.Helper()
	id := devenv.InsertMood(w.t, w.store, a.User, text, time.Now())
	w.publish(intent.Intent{Op: intent.OpCreate, MongoID: id, User: a.User})
	return id
}

func (w *lifeWorld) publish(in intent.Intent) {
	w.t.Helper()
	if err := intent.Publish(context.Background(), w.js, in); err != nil {
		w.t.Fatal(err)
	}
}

// synced waits until the mood has an rkey whose record is in did's repo.
func (w *lifeWorld) synced(id, did, what string) {
	w.t.Helper()
	devenv.Eventually(w.t, 60*time.Second, what, func() bool {
		m := w.mood(id)
		if m == nil || m.Rkey == "" {
			return false
		}
		for _, r := range w.records(did) {
			if r.Rkey == m.Rkey && r.Value.MoodID() == id {
				return true
			}
		}
		return false
	})
}

// deadFor waits for a dead letter of the user whose reason has want.
func (w *lifeWorld) deadFor(user, want string) deadletter.Letter {
	w.t.Helper()
	var got deadletter.Letter
	devenv.Eventually(w.t, 60*time.Second, "a dead letter of "+user+" saying "+want, func() bool {
		letters, err := w.dead.List(context.Background(), deadletter.Filter{User: user})
		if err != nil {
			return false
		}
		for _, l := range letters {
			if strings.Contains(l.Reason, want) {
				got = l
				return true
			}
		}
		return false
	})
	return got
}

// status waits until moodsync has recorded the account status of a.
func (w *lifeWorld) status(a *devenv.Account, want string) {
	w.t.Helper()
	devenv.Eventually(w.t, 30*time.Second, a.User+" recorded as "+want, func() bool {
		b, err := w.store.Binding(context.Background(), a.User)
		return err == nil && b != nil && b.Status == want
	})
}

// session is a's own session, as the app's user would have it.
func (w *lifeWorld) session(a *devenv.Account) *atclient.APIClient {
	w.t.Helper()
	api, err := w.pds.Login(context.Background(), a)
	if err != nil {
		w.t.Fatal(err)
	}
	return api
}

// admin posts an admin XRPC call to the dev PDS.
func (w *lifeWorld) admin(nsid string, body string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.pds.URL+"/xrpc/"+nsid, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+w.pds.AdminPassword)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("%s: HTTP %d", nsid, resp.StatusCode)
	}
}

// TestAccountLifecycleOnTheRealPDS walks deactivation, reactivation and
// takedown with `moodsync run`: a deactivated user's intents are
// dead-lettered with the reason while another user's intents and firehose
// events flow; reactivation makes the user converge with no new intent; a
// takedown's intents are dead-lettered; a delete op replayed from the
// stored cursor after the account was deactivated soft-deletes its mood
// and the stream goes on.
func TestAccountLifecycleOnTheRealPDS(t *testing.T) {
	w := newLifeWorld(t)
	ctx := context.Background()
	alice, bob, carol := w.user(), w.user(), w.user()
	w.start()
	defer func() { w.d.cancel() }()

	// Deactivated: parked, and nobody else waits.
	w.synced(w.create(alice, "before"), alice.DID, "alice's first mood synced")
	aliceAPI := w.session(alice)
	if err := aliceAPI.Post(ctx, syntax.NSID("com.atproto.server.deactivateAccount"), map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	w.status(alice, model.StatusDeactivated)
	parked := w.create(alice, "while deactivated")
	w.deadFor(alice.User, "deactivated")
	if m := w.mood(parked); m.Rkey != "" {
		t.Fatalf("a deactivated account got a write: %+v", m)
	}
	bobs := w.create(bob, "bob meanwhile")
	w.synced(bobs, bob.DID, "bob's mood synced while alice is deactivated")
	asBob := w.as(bob)
	asBob.del(w.mood(bobs).Rkey)
	devenv.Eventually(t, 30*time.Second, "bob's PDS-side delete reached Mongo", func() bool { return w.mood(bobs).Deleted })

	// Active again: the parked mood reaches the PDS with no new intent.
	// activateAccount takes no body at all.
	resp, err := aliceAPI.Do(ctx, atclient.NewAPIRequest(http.MethodPost, syntax.NSID("com.atproto.server.activateAccount"), nil))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("activateAccount: %v %v", resp, err)
	}
	resp.Body.Close()
	w.synced(parked, alice.DID, "alice's parked mood written after reactivation, no new intent")

	// Taken down: dead letters.
	w.synced(w.create(carol, "carol's"), carol.DID, "carol's mood synced")
	w.admin("com.atproto.admin.updateSubjectStatus", fmt.Sprintf(
		`{"subject":{"$type":"com.atproto.admin.defs#repoRef","did":%q},"takedown":{"applied":true,"ref":"test"}}`, carol.DID))
	w.status(carol, model.StatusTakendown)
	w.create(carol, "while taken down")
	w.deadFor(carol.User, "takendown")

	// A delete op replayed after the account was deactivated: moodsync
	// is down while alice deletes a record and then deactivates; on
	// restart the stored cursor replays the delete, the repo can no longer
	// be read, and the delete stands.
	followed := sum(scrape(t, w.http), "moodsync_firehose_mood_ops_total")
	kept := w.create(alice, "deleted while moodsync was down")
	w.synced(kept, alice.DID, "alice's mood synced")
	devenv.Eventually(t, 30*time.Second, "the create followed and the cursor stored", func() bool {
		m := scrape(t, w.http)
		return sum(m, "moodsync_firehose_mood_ops_total") > followed &&
			sum(m, "moodsync_firehose_saved_seq") == sum(m, "moodsync_firehose_seq")
	})
	w.stop()
	w.as(alice).del(w.mood(kept).Rkey)
	if err := w.session(alice).Post(ctx, syntax.NSID("com.atproto.server.deactivateAccount"), map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	w.d = &daemon{t: t, env: w.d.env}
	w.start()
	devenv.Eventually(t, 60*time.Second, "the replayed delete soft-deleted the mood", func() bool { return w.mood(kept).Deleted })
	after := w.create(bob, "bob after the restart")
	w.synced(after, bob.DID, "bob's intent flows after the replay")
	w.stop()
}

// TestTrustOnTheRealPDS: a purge naming another user's DID is
// dead-lettered and touches neither user; a DID two users rows claim gets
// no cross writes; a publisher delete whose stored rkey now holds another
// mood's record leaves that record alone.
func TestTrustOnTheRealPDS(t *testing.T) {
	w := newLifeWorld(t)
	ctx := context.Background()
	alice, bob := w.user(), w.user()
	w.start()
	defer w.stop()
	aMood, bMood := w.create(alice, "alice's"), w.create(bob, "bob's")
	w.synced(aMood, alice.DID, "alice synced")
	w.synced(bMood, bob.DID, "bob synced")

	// Purge of bob naming alice's DID.
	w.publish(intent.Intent{Op: intent.OpPurge, User: bob.User, DID: alice.DID})
	w.deadFor(bob.User, "nothing deleted")
	if len(w.records(alice.DID)) != 1 || len(w.records(bob.DID)) != 1 || w.mood(aMood) == nil || w.mood(bMood) == nil {
		t.Fatal("a purge naming another user's DID deleted something")
	}

	// A second users row claiming alice's DID.
	mallory := "auth0|mallory-" + bson.NewObjectID().Hex()
	if _, err := w.store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{
		{Key: "_id", Value: mallory},
		{Key: "atproto", Value: bson.D{{Key: "did", Value: alice.DID}, {Key: "handle", Value: alice.Handle}, {Key: "password", Value: alice.Password}}},
	}); err != nil {
		t.Fatal(err)
	}
	mMood := devenv.InsertMood(t, w.store, mallory, "mallory's", time.Now())
	w.publish(intent.Intent{Op: intent.OpCreate, MongoID: mMood, User: mallory})
	w.deadFor(mallory, "more than one users row")
	for _, r := range w.records(alice.DID) {
		if r.Value.MoodID() == mMood {
			t.Fatal("a mood of one row written into the repo of another row's DID")
		}
	}
	if _, err := w.store.DB.Collection(mongostore.UsersCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: mallory}}); err != nil {
		t.Fatal(err)
	}

	// A deleted mood whose stored rkey holds another mood's record.
	other := devenv.InsertMood(t, w.store, alice.User, "the record's owner", time.Now())
	w.as(alice).put(map[string]any{"mood": "the record's owner", "when": time.Now().UTC().Format(model.WhenLayout), "ref": other})
	w.synced(other, alice.DID, "the other mood linked to a record")
	// Linked to that record by the firehose, or to one of its own by the
	// first-start reconcile if that read the moods first (and then the
	// user's record is a duplicate): the key is the one the mood holds.
	rkey := w.mood(other).Rkey
	gone := devenv.InsertMood(t, w.store, alice.User, "deleted, pointing at a reused key", time.Now())
	oid, _ := bson.ObjectIDFromHex(gone)
	if _, err := w.store.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}, {Key: "atproto", Value: bson.D{{Key: "rkey", Value: rkey}}}}}}); err != nil {
		t.Fatal(err)
	}
	w.publish(intent.Intent{Op: intent.OpDelete, MongoID: gone, User: alice.User})
	devenv.Eventually(t, 30*time.Second, "the deleted mood's rkey unset", func() bool { return w.mood(gone).Rkey == "" })
	found := false
	for _, r := range w.records(alice.DID) {
		found = found || (r.Rkey == rkey && r.Value.MoodID() == other)
	}
	if !found {
		t.Fatal("the publisher's delete removed another mood's record")
	}
}

// TestChangedDIDOnTheRealPDS: the users row of a user with synced moods
// moves to a new account; a reconcile intent soft-deletes nothing, writes
// every live mood into the new repo and points it there; the old repo is
// left as it was.
func TestChangedDIDOnTheRealPDS(t *testing.T) {
	w := newAEWorld(t)
	ctx := context.Background()
	old := w.user()
	var ids []string
	for i := range 12 { // more than the mass-delete guard allows
		ids = append(ids, devenv.InsertMood(t, w.store, old.User, fmt.Sprintf("mood %d", i), time.Now().Add(-time.Duration(i)*time.Minute)))
	}
	w.sync(old, ids...)
	fresh, err := w.pds.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.DB.Collection(mongostore.UsersCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: old.User}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "atproto", Value: bson.D{{Key: "did", Value: fresh.DID}, {Key: "handle", Value: fresh.Handle}, {Key: "password", Value: fresh.Password}}}}}}); err != nil {
		t.Fatal(err)
	}
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	runPublisher(t, js, publisher.New(js, w.engine, publisher.Config{}, nil))
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpReconcile, User: old.User}); err != nil {
		t.Fatal(err)
	}
	// The records are written first and the moods pointed at them after:
	// wait for both.
	devenv.Eventually(t, 60*time.Second, "every mood in the new repo, pointed there", func() bool {
		recs := w.records(fresh.DID)
		if len(recs) != len(ids) {
			return false
		}
		byRkey := map[string]string{}
		for _, r := range recs {
			byRkey[r.Rkey] = r.Value.MoodID()
		}
		for _, id := range ids {
			if m := w.mood(id); m.Deleted || byRkey[m.Rkey] != id {
				return false
			}
		}
		return true
	})
	if n := len(w.records(old.DID)); n != len(ids) {
		t.Errorf("the old repo has %d records, want the %d it had", n, len(ids))
	}
}

// TestGapReconcileDoesNotHoldTheStream: while the queued reconcile of a
// user whose repo holds 2,000 records runs (duplicates of one mood: each is
// read and deleted), another user's PDS-side delete reaches Mongo within
// 2 s.
func TestGapReconcileDoesNotHoldTheStream(t *testing.T) {
	w := newLifeWorld(t)
	ctx := context.Background()
	big, bob := w.user(), w.user()
	// 2,000 records of one mood, written as the user before moodsync
	// follows the firehose (so only the reconcile acts on them): the oldest
	// is linked, the others are duplicates, each read and deleted. (One
	// document: the embedded Mongo-wire server scans whole collections.)
	api := w.session(big)
	when := time.Now().UTC()
	one := devenv.InsertMood(t, w.store, big.User, "written 2,000 times", when)
	for batch := range 10 {
		writes := make([]map[string]any, 200)
		for i := range writes {
			writes[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": model.Collection,
				"value": map[string]any{"$type": model.Collection, "mood": fmt.Sprintf("copy %d", batch*200+i), "when": when.Format(model.WhenLayout), "ref": one}}
		}
		if err := api.Post(ctx, syntax.NSID("com.atproto.repo.applyWrites"), map[string]any{"repo": big.DID, "writes": writes}, nil); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		recs, err := w.client.ListRecords(ctx, big.DID)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	w.start()
	defer w.stop()
	w.publish(intent.Intent{Op: intent.OpReconcile, User: big.User, Cause: "gap"})
	bobs := w.create(bob, "bob's")
	w.synced(bobs, bob.DID, "bob's mood synced")
	devenv.Eventually(t, 60*time.Second, "the reconcile deleting duplicates", func() bool { n := count(); return n > 0 && n < 1990 })

	start := time.Now()
	w.as(bob).del(w.mood(bobs).Rkey)
	devenv.Eventually(t, 2*time.Second, "bob's PDS-side delete in Mongo", func() bool { return w.mood(bobs).Deleted })
	t.Logf("bob's delete reached Mongo after %v while the reconcile of 2,000 records ran", time.Since(start).Round(time.Millisecond))
	if n := count(); n == 0 {
		t.Fatal("the reconcile had finished: the delete did not overlap it")
	}
}
