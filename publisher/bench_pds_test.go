package publisher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// The intent → PDS benchmark. Every variant writes the same moods (benchUsers
// users × benchPerUser moods, fresh accounts each iteration, sessions warmed
// outside the timer) to the real PDS:
//
//   - raw-createRecord: the old scripts' way, one createRecord per mood;
//   - raw-applyWrites: a bare client batching each user's moods into
//     applyWrites, users in parallel: the ceiling;
//   - publisher-memstore: intents through NATS JetStream and the publisher,
//     Mongo behind its interface in memory (what moodsync itself costs);
//   - publisher-ferretdb (MOODSYNC_BENCH_FERRETDB=1): the same over the
//     embedded FerretDB, for reference only (FerretDB scans whole
//     collections; never judge speed on it).
//
// Run: go test -run '^$' -bench IntentToPDS -benchtime 5x ./publisher/
const benchUsers = 4

// benchPerUser is how many moods each user has in a round (100 unless
// MOODSYNC_BENCH_PER_USER says otherwise): the size of a user's batch.
var benchPerUser = func() int {
	if n, err := strconv.Atoi(os.Getenv("MOODSYNC_BENCH_PER_USER")); err == nil && n > 0 {
		return n
	}
	return 100
}()

type benchUser struct {
	acct  *devenv.Account
	moods []*model.Mood
}

// benchFixture makes fresh accounts with their moods (not yet in a store).
func benchFixture(b *testing.B, pds *devenv.PDS) []benchUser {
	b.Helper()
	users := make([]benchUser, benchUsers)
	when := time.Now().UTC().Truncate(time.Millisecond)
	for i := range users {
		a, err := pds.CreateAccount(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		a.User = "auth0|" + a.Handle
		users[i].acct = a
		for j := 0; j < benchPerUser; j++ {
			users[i].moods = append(users[i].moods, &model.Mood{
				ID: bson.NewObjectID().Hex(), User: a.User, Text: fmt.Sprintf("mood %d of %s", j, a.Handle),
				When: when.Add(time.Duration(j) * time.Millisecond),
			})
		}
	}
	return users
}

func (u benchUser) warm(b *testing.B, c *pdsclient.Client) {
	b.Helper()
	// A read-free authenticated no-op would do; deleting a missing record
	// is one (it answers 200) and logs the session in.
	if err := c.DeleteRecord(context.Background(), u.acct.DID, "2222222222222", ""); err != nil {
		b.Fatal(err)
	}
}

func sessionsFor(users []benchUser) *reconciletest.Sessions {
	s := reconciletest.NewSessions()
	for _, u := range users {
		s.SetPassword(u.acct.DID, u.acct.Password)
	}
	return s
}

func reportRate(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(b.N*benchUsers*benchPerUser)/elapsed.Seconds(), "moods/s")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkIntentToPDS(b *testing.B) {
	pds := devenv.NeedPDS(b)
	ctx := context.Background()

	rawCreateRecord := func() time.Duration {
		users := benchFixture(b, pds)
		c := pdsclient.New(pds.URL, sessionsFor(users), nil)
		for _, u := range users {
			u.warm(b, c)
		}
		start := time.Now()
		for _, u := range users {
			for _, m := range u.moods {
				if err := c.CreateRecord(ctx, u.acct.DID, model.Rkey(m, 0), model.NewRecordValue(m)); err != nil {
					b.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	rawApplyWrites := func() time.Duration {
		users := benchFixture(b, pds)
		c := pdsclient.New(pds.URL, sessionsFor(users), nil)
		for _, u := range users {
			u.warm(b, c)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := 0; s < len(u.moods); s += reconcile.MaxBatch {
					var writes []model.Write
					for _, m := range u.moods[s:min(s+reconcile.MaxBatch, len(u.moods))] {
						writes = append(writes, model.Write{Rkey: model.Rkey(m, 0), Value: model.NewRecordValue(m)})
					}
					if err := c.ApplyWrites(ctx, u.acct.DID, writes); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	publisherMem := func() time.Duration {
		users := benchFixture(b, pds)
		store := reconciletest.NewStore()
		for _, u := range users {
			store.PutAccount(model.Account{User: u.acct.User, DID: u.acct.DID})
			for _, m := range u.moods {
				store.PutMood(*m)
			}
		}
		return runPublisher(b, pds, users, store, sessionsFor(users), func(id string) bool {
			m := store.Mood(id)
			return m != nil && m.Rkey != ""
		})
	}
	publisherFerret := func() time.Duration {
		users := benchFixture(b, pds)
		store := devenv.NewStore(b)
		for _, u := range users {
			_, err := store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{
				{Key: "_id", Value: u.acct.User},
				{Key: "atproto", Value: bson.D{{Key: "did", Value: u.acct.DID}, {Key: "password", Value: u.acct.Password}}},
			})
			if err != nil {
				b.Fatal(err)
			}
			var docs []any
			for _, m := range u.moods {
				oid, _ := bson.ObjectIDFromHex(m.ID)
				docs = append(docs, bson.D{{Key: "_id", Value: oid}, {Key: "user", Value: m.User}, {Key: "mood", Value: m.Text}, {Key: "when", Value: m.When}})
			}
			if _, err := store.DB.Collection(mongostore.MoodsCollection).InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
		}
		return runPublisher(b, pds, users, store, store, func(id string) bool {
			m, err := store.Moods(ctx, []string{id})
			return err == nil && m[id] != nil && m[id].Rkey != ""
		})
	}

	// Each iteration is one round of every variant back to back, so the
	// ratios compare runs made under the same machine load.
	var tCreate, tApply, tMem, tFerret time.Duration
	for i := 0; i < b.N; i++ {
		tApply += rawApplyWrites()
		tMem += publisherMem()
		tCreate += rawCreateRecord()
		if os.Getenv("MOODSYNC_BENCH_FERRETDB") != "" {
			tFerret += publisherFerret()
		}
	}
	moods := float64(b.N * benchUsers * benchPerUser)
	b.ReportMetric(moods/tCreate.Seconds(), "createRecord-moods/s")
	b.ReportMetric(moods/tApply.Seconds(), "applyWrites-moods/s")
	b.ReportMetric(moods/tMem.Seconds(), "publisher-moods/s")
	b.ReportMetric(tApply.Seconds()/tMem.Seconds(), "publisher/applyWrites")
	b.ReportMetric(tCreate.Seconds()/tMem.Seconds(), "publisher/createRecord")
	if tFerret > 0 {
		b.ReportMetric(moods/tFerret.Seconds(), "publisher-ferretdb-moods/s")
	}
	b.ReportMetric(0, "ns/op")
}

// runPublisher publishes one create intent per mood and times until every
// mood carries its rkey.
func runPublisher(b *testing.B, pds *devenv.PDS, users []benchUser, store reconcile.Store, sessions pdsclient.SessionStore, synced func(id string) bool) time.Duration {
	b.Helper()
	ctx := context.Background()
	_, js := devenv.ConnectJetStream(b, devenv.NewNATS(b))
	client := pdsclient.New(pds.URL, sessions, nil)
	for _, u := range users {
		u.warm(b, client)
	}
	pub := publisher.New(js, reconcile.NewEngine(store, client, nil), publisher.Config{}, nil)
	if _, err := publisher.EnsureConsumer(ctx, js, time.Minute); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = pub.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	// The intents arrive as a burst (a mass import, the end of an outage):
	// published asynchronously, the timer running from the first.
	start := time.Now()
	for _, u := range users {
		for _, m := range u.moods {
			data, _ := json.Marshal(intent.Intent{Op: intent.OpCreate, MongoID: m.ID, User: m.User})
			if _, err := js.PublishAsync(intent.SubjectPrefix+intent.OpCreate, data); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("intents not stored within a minute")
	}
	deadline := time.Now().Add(5 * time.Minute)
	for _, u := range users {
		for _, m := range u.moods {
			for !synced(m.ID) {
				if time.Now().After(deadline) {
					b.Fatalf("mood %s not synced", m.ID)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	return time.Since(start)
}
