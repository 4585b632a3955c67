package publisher_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// racingStore is the engine's Mongo store, except that each time the engine
// is about to set the rkey of a doomed mood, the app soft-deletes that mood
// at the same moment, on its own connections: the app's $set of `deleted`
// and the engine's compare-and-set of `atproto` reach the server together.
type racingStore struct {
	*mongostore.Store
	doomed map[string]bool
	app    chan<- string

	mu    sync.Mutex
	raced map[string]bool
}

func (s *racingStore) SetRkey(ctx context.Context, id, rkey string) (bool, error) {
	s.mu.Lock()
	race := s.doomed[id] && !s.raced[id]
	s.raced[id] = true
	s.mu.Unlock()
	if race {
		s.app <- id
	}
	return s.Store.SetRkey(ctx, id, rkey)
}

// The app soft-deletes half of a user's moods while the publisher is
// storing their rkeys, on the Mongo-wire server the tests use (the embedded
// FerretDB behind its gate, unless MOODSYNC_TEST_MONGO_URI names a MongoDB).
// Every soft delete survives the compare-and-set, no deleted mood keeps a
// record, and every live mood ends with its one record.
func TestSoftDeletesRacingRkeyCompareAndSetSurvive(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	const n = 100
	ids := make([]string, n)
	doomed := map[string]bool{}
	for i := range ids {
		ids[i] = devenv.InsertMood(t, h.store, alice.User, fmt.Sprintf("mood %d", i), when.Add(time.Duration(i)*time.Second))
		if i%2 == 1 {
			doomed[ids[i]] = true
		}
	}

	// The app: its own client, soft-deleting each doomed mood when told to,
	// then publishing the delete intent, as it does after its Mongo write.
	client, err := mongo.Connect(options.Client().ApplyURI(devenv.MongoURI(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	moods := client.Database(h.store.DB.Name()).Collection(mongostore.MoodsCollection)
	toDelete := make(chan string)
	appDone := make(chan struct{})
	go func() {
		defer close(appDone)
		for range doomed {
			id := <-toDelete
			oid, _ := bson.ObjectIDFromHex(id)
			res, err := moods.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: oid}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}}}})
			if err == nil && res.MatchedCount != 1 {
				err = fmt.Errorf("matched %d moods", res.MatchedCount)
			}
			if err == nil {
				err = intent.Publish(context.Background(), h.js, intent.Intent{Op: intent.OpDelete, User: alice.User, MongoID: id})
			}
			if err != nil {
				t.Errorf("app: soft delete of %s: %v", id, err)
			}
		}
	}()

	rs := &racingStore{Store: h.store, doomed: doomed, app: toDelete, raced: map[string]bool{}}
	h.engineStore = rs
	h.start()
	for _, id := range ids {
		h.publish(create(alice.User, id))
	}
	select {
	case <-appDone: // every doomed mood was soft-deleted while its rkey was being set
	case <-time.After(2 * time.Minute):
		t.Fatal("the publisher did not reach the compare-and-set of every doomed mood")
	}
	h.drained(60 * time.Second)

	records := map[string]int{}
	for _, r := range h.records(alice.DID) {
		records[r.Value.MoodID()]++
	}
	lost := 0
	for _, id := range ids {
		m := h.mood(id)
		switch {
		case doomed[id] && !m.Deleted:
			lost++
			t.Errorf("mood %s: the soft delete was lost (rkey %q, %d records)", id, m.Rkey, records[id])
		case doomed[id] && (records[id] != 0 || m.Rkey != ""):
			t.Errorf("deleted mood %s: %d records, rkey %q", id, records[id], m.Rkey)
		case !doomed[id] && (records[id] != 1 || m.Rkey == "" || m.Deleted):
			t.Errorf("live mood %s: %d records, rkey %q, deleted %v", id, records[id], m.Rkey, m.Deleted)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d soft deletes lost", lost, len(doomed))
	}
}
