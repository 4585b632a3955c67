package publisher_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// harness is one moodsync deployment in a test: the real PDS (behind a
// counting proxy), an embedded NATS JetStream and a fresh Mongo database.
type harness struct {
	t     *testing.T
	pds   *devenv.PDS
	proxy *devenv.Proxy
	store *mongostore.Store
	nc    *nats.Conn
	js    jetstream.JetStream
	cfg   publisher.Config
	// engineStore, when set, is the store the engine works on instead of
	// store (a test that wraps it).
	engineStore reconcile.Store

	mu       sync.Mutex
	outcomes map[string]int // outcome → count
}

func newHarness(t *testing.T) *harness {
	pds := devenv.NeedPDS(t)
	h := &harness{
		t: t, pds: pds, proxy: devenv.NewProxy(t, pds.URL), store: devenv.NewStore(t),
		cfg:      publisher.Config{MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, AckWait: 10 * time.Second},
		outcomes: map[string]int{},
	}
	h.nc, h.js = devenv.ConnectJetStream(t, devenv.NewNATS(t))
	if err := publisher.EnsureStreams(context.Background(), h.js); err != nil {
		t.Fatal(err)
	}
	return h
}

func testLogger() *slog.Logger {
	if os.Getenv("MOODSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a publisher (one "daemon") until the returned stop is called.
func (h *harness) start() (stop func()) {
	h.t.Helper()
	client := pdsclient.New(h.proxy.URL, h.store, testLogger())
	var store reconcile.Store = h.store
	if h.engineStore != nil {
		store = h.engineStore
	}
	engine := reconcile.NewEngine(store, client, testLogger())
	pub := publisher.New(h.js, engine, h.cfg, testLogger())
	pub.Observe = func(op, outcome string) {
		h.mu.Lock()
		h.outcomes[outcome]++
		h.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("publisher: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) outcome(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.outcomes[name]
}

func (h *harness) publish(in intent.Intent) {
	h.t.Helper()
	if err := intent.Publish(context.Background(), h.js, in); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) publishRaw(subject string, data string) {
	h.t.Helper()
	if _, err := h.js.Publish(context.Background(), subject, []byte(data)); err != nil {
		h.t.Fatal(err)
	}
}

// drained waits until JetStream holds no intent that is pending or
// awaiting acknowledgement.
func (h *harness) drained(within time.Duration) {
	h.t.Helper()
	devenv.Eventually(h.t, within, "intents drained", func() bool {
		s, err := h.js.Stream(context.Background(), intent.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

func (h *harness) mood(id string) *model.Mood {
	h.t.Helper()
	m, err := h.store.Moods(context.Background(), []string{id})
	if err != nil {
		h.t.Fatal(err)
	}
	return m[id]
}

func (h *harness) records(did string) []model.Record {
	h.t.Helper()
	recs, err := h.pds.Records(context.Background(), did)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

func (h *harness) deadLetters() []*nats.Msg {
	h.t.Helper()
	return publisher.DeadLetters(h.t, h.js)
}

var when = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

func create(user, id string) intent.Intent {
	return intent.Intent{Op: intent.OpCreate, User: user, MongoID: id}
}

func TestCreateIntentMakesOneRecordAcrossRedeliveryAndRestart(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "sunny with a chance of art", when)

	stop := h.start()
	h.publish(create(alice.User, id))
	devenv.Eventually(t, 15*time.Second, "rkey stored", func() bool { return h.mood(id).Rkey != "" })
	h.publish(create(alice.User, id))
	h.drained(15 * time.Second)
	stop()

	// A new daemon, the same intent once more.
	h.start()
	h.publish(create(alice.User, id))
	h.drained(15 * time.Second)

	recs := h.records(alice.DID)
	if len(recs) != 1 {
		t.Fatalf("want exactly 1 record, got %d", len(recs))
	}
	m := h.mood(id)
	if m.Rkey != recs[0].Rkey {
		t.Fatalf("mongo atproto.rkey %q != record rkey %q", m.Rkey, recs[0].Rkey)
	}
	want := model.RecordValue{Type: model.Collection, Mood: "sunny with a chance of art",
		When: "2025-10-14T19:30:00.000Z", Ref: id, MongoID: id}
	if recs[0].Value != want {
		t.Fatalf("record %+v, want %+v", recs[0].Value, want)
	}
	if got := h.outcome(publisher.OutcomeApplied); got != 3 {
		t.Fatalf("want 3 applied intents, got %d", got)
	}
}

// writeAsUser writes a record straight to the PDS as the user would.
func writeAsUser(t *testing.T, pds *devenv.PDS, a *devenv.Account, rkey string, v any) {
	t.Helper()
	ctx := context.Background()
	api, err := pds.Login(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	err = api.Post(ctx, "com.atproto.repo.createRecord", map[string]any{
		"repo": a.DID, "collection": model.Collection, "rkey": rkey, "record": v,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

func TestCrashBetweenPDSWriteAndMongoUpdateReusesTheRkey(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "half done", when)
	m := h.mood(id)
	// The crash: the record reached the PDS, atproto.rkey never reached Mongo.
	rkey := model.Rkey(m, 0)
	writeAsUser(t, h.pds, alice, rkey, model.NewRecordValue(m))

	h.start()
	h.publish(create(alice.User, id))
	h.drained(15 * time.Second)

	recs := h.records(alice.DID)
	if len(recs) != 1 || recs[0].Rkey != rkey {
		t.Fatalf("want the one record at %s, got %+v", rkey, recs)
	}
	if got := h.mood(id).Rkey; got != rkey {
		t.Fatalf("mongo rkey %q, want %q", got, rkey)
	}
}

func TestTakenRkeyMovesToTheNextClockID(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "mine", when)
	m := h.mood(id)
	// Another mood's record already sits at this mood's first key.
	other := &model.Mood{ID: "0123456789abcdef01234567", User: alice.User, Text: "other", When: when}
	writeAsUser(t, h.pds, alice, model.Rkey(m, 0), model.NewRecordValue(other))

	h.start()
	h.publish(create(alice.User, id))
	h.drained(15 * time.Second)

	if got, want := h.mood(id).Rkey, model.Rkey(m, 1); got != want {
		t.Fatalf("rkey %q, want next clock id %q", got, want)
	}
	if n := len(h.records(alice.DID)); n != 2 {
		t.Fatalf("want 2 records (other's and mine), got %d", n)
	}
}

func TestDeleteIntentRemovesRecordAndUnsetsAtproto(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "fleeting", when)
	h.start()
	h.publish(create(alice.User, id))
	devenv.Eventually(t, 15*time.Second, "rkey stored", func() bool { return h.mood(id).Rkey != "" })

	devenv.SoftDelete(t, h.store, id)
	h.publish(intent.Intent{Op: intent.OpDelete, User: alice.User, MongoID: id})
	h.drained(15 * time.Second)

	if n := len(h.records(alice.DID)); n != 0 {
		t.Fatalf("want no record, got %d", n)
	}
	if m := h.mood(id); m.Rkey != "" || !m.Deleted {
		t.Fatalf("mood after delete: %+v", m)
	}
}

func TestDeleteBeforeCreateNeverWritesARecord(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "never", when)
	devenv.SoftDelete(t, h.store, id)
	// The delete intent overtakes the create intent.
	h.publish(intent.Intent{Op: intent.OpDelete, User: alice.User, MongoID: id})
	h.publish(create(alice.User, id))
	h.start()
	h.drained(15 * time.Second)

	if n := len(h.records(alice.DID)); n != 0 {
		t.Fatalf("want no record, got %d", n)
	}
	if h.outcome(publisher.OutcomeApplied) != 2 {
		t.Fatalf("outcomes: %v", h.outcomes)
	}
}

func syncMoods(t *testing.T, h *harness, a *devenv.Account, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = devenv.InsertMood(t, h.store, a.User, "mood", when.Add(time.Duration(i)*time.Minute))
		h.publish(create(a.User, ids[i]))
	}
	h.drained(30 * time.Second)
	if got := len(h.records(a.DID)); got != n {
		t.Fatalf("want %d records before purge, got %d", n, got)
	}
	return ids
}

func TestPurgeErasesRecordsAndMoods(t *testing.T) {
	for _, usersRowGone := range []bool{false, true} {
		name := "with users row"
		if usersRowGone {
			name = "after users row removed"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			alice := h.pds.CreateUser(t, h.store)
			bob := h.pds.CreateUser(t, h.store)
			h.start()
			syncMoods(t, h, alice, 5)
			bobIDs := syncMoods(t, h, bob, 2)

			in := intent.Intent{Op: intent.OpPurge, User: alice.User}
			if usersRowGone {
				_, err := h.store.DB.Collection(mongostore.UsersCollection).DeleteOne(context.Background(), bson.D{{Key: "_id", Value: alice.User}})
				if err != nil {
					t.Fatal(err)
				}
				in.DID = alice.DID
			}
			h.publish(in)
			h.drained(30 * time.Second)

			if n := len(h.records(alice.DID)); n != 0 {
				t.Fatalf("want no records left, got %d", n)
			}
			left, err := h.store.UserMoods(context.Background(), alice.User)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Fatalf("want no moods left, got %d", len(left))
			}
			// Bob is untouched.
			if n := len(h.records(bob.DID)); n != 2 || h.mood(bobIDs[0]) == nil {
				t.Fatalf("bob disturbed: %d records", n)
			}
			if d := h.deadLetters(); len(d) != 0 {
				t.Fatalf("unexpected dead letters: %v", d[0].Header)
			}
		})
	}
}

func TestBadIntentsAreDeadLetteredAndNothingIsWritten(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	mallory := h.pds.CreateUser(t, h.store)
	aliceMood := devenv.InsertMood(t, h.store, alice.User, "alice's", when)
	h.start()

	h.publish(create(mallory.User, aliceMood))                      // someone else's mood
	h.publishRaw("moods.intent.create", `{"op":"create",`)          // bad JSON
	h.publishRaw("moods.intent.bogus", `{"op":"bogus","user":"x"}`) // unknown op
	h.publishRaw("moods.intent.create", `{"op":"create","user":"x","mongoId":"nothex"}`)
	h.publishRaw("moods.intent.delete", `{"op":"create","user":"x","mongoId":"0123456789abcdef01234567"}`)
	// A mood of a user who has no PDS account.
	ghostMood := devenv.InsertMood(t, h.store, "auth0|ghost", "boo", when)
	h.publish(create("auth0|ghost", ghostMood))
	h.drained(15 * time.Second)

	dead := h.deadLetters()
	if len(dead) != 6 {
		t.Fatalf("want 6 dead letters, got %d", len(dead))
	}
	for _, m := range dead {
		if m.Header.Get(publisher.HeaderReason) == "" || m.Header.Get(publisher.HeaderSubject) == "" {
			t.Errorf("dead letter %s without reason/subject headers: %v", m.Subject, m.Header)
		}
	}
	if got := dead[0].Header.Get(publisher.HeaderReason); got == "" {
		t.Fatal("no reason")
	}
	if n := len(h.records(alice.DID)) + len(h.records(mallory.DID)); n != 0 {
		t.Fatalf("a bad intent wrote %d records", n)
	}
	if h.mood(aliceMood).Rkey != "" {
		t.Fatal("alice's mood was touched")
	}

	// Still serving.
	h.publish(create(alice.User, aliceMood))
	devenv.Eventually(t, 15*time.Second, "good intent applied after bad ones", func() bool { return h.mood(aliceMood).Rkey != "" })
}

func TestPDSOutageLosesAndDuplicatesNothing(t *testing.T) {
	h := newHarness(t)
	users := []*devenv.Account{h.pds.CreateUser(t, h.store), h.pds.CreateUser(t, h.store)}
	h.start()
	// Warm the sessions so the outage hits writes, not only logins.
	warm := devenv.InsertMood(t, h.store, users[0].User, "warm", when)
	h.publish(create(users[0].User, warm))
	h.drained(15 * time.Second)

	h.proxy.Down()
	var ids []string
	for i := 0; i < 50; i++ {
		u := users[i%2]
		id := devenv.InsertMood(t, h.store, u.User, "during outage", when.Add(time.Duration(i)*time.Second))
		ids = append(ids, id)
		h.publish(create(u.User, id))
	}
	// The PDS stays unreachable for 20 s: this wait is the scenario itself.
	devenv.Eventually(t, 10*time.Second, "intents retried during the outage", func() bool {
		return h.outcome(publisher.OutcomeRetry) >= 50
	})
	time.Sleep(20 * time.Second)
	h.proxy.Up(t)
	h.drained(60 * time.Second)

	total := 0
	for _, u := range users {
		total += len(h.records(u.DID))
	}
	if total != 51 {
		t.Fatalf("want 51 records (50 + warm-up), got %d", total)
	}
	for _, id := range ids {
		if h.mood(id).Rkey == "" {
			t.Fatalf("mood %s not synced", id)
		}
	}
	if d := h.deadLetters(); len(d) != 0 {
		t.Fatalf("%d intents dead-lettered during an outage", len(d))
	}
}

func TestTwoReplicasRacingOnTheSameMoodsMakeOneRecordEach(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	h.start()
	h.start() // a second replica on the same NATS and Mongo
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, devenv.InsertMood(t, h.store, alice.User, "contended", when.Add(time.Duration(i)*time.Second)))
	}
	for round := 0; round < 6; round++ {
		for _, id := range ids {
			h.publish(create(alice.User, id))
		}
	}
	// A create racing with its own soft delete must not leave a record.
	doomed := devenv.InsertMood(t, h.store, alice.User, "doomed", when.Add(time.Hour))
	h.publish(create(alice.User, doomed))
	devenv.SoftDelete(t, h.store, doomed)
	h.publish(intent.Intent{Op: intent.OpDelete, User: alice.User, MongoID: doomed})
	h.drained(30 * time.Second)

	recs := h.records(alice.DID)
	byRef := map[string]int{}
	for _, r := range recs {
		byRef[r.Value.MoodID()]++
	}
	for _, id := range ids {
		if byRef[id] != 1 {
			t.Fatalf("mood %s has %d records", id, byRef[id])
		}
		if h.mood(id).Rkey == "" {
			t.Fatalf("mood %s has no rkey", id)
		}
	}
	if byRef[doomed] != 0 {
		t.Fatalf("deleted mood still has %d records", byRef[doomed])
	}
}
