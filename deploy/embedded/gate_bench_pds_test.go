//go:build !production

package embedded_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/deploy/embedded"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// What the gate costs: create intents through NATS JetStream, the publisher
// and the engine, to the real PDS, with Mongo on the embedded FerretDB
// through its gate and straight (the way it ran before the gate, losing
// concurrent updates). Each round runs both on fresh accounts, back to back
// in alternating order, so the ratio compares runs under the same load,
// after one untimed round of each.
//
// Run: go test -run '^$' -bench EmbeddedMongoGate -benchtime 3x ./deploy/embedded/
const (
	gateBenchUsers   = 4   // the publisher's default concurrency
	gateBenchPerUser = 100 // moods (create intents) per user and round
)

func BenchmarkEmbeddedMongoGate(b *testing.B) {
	pds := devenv.NeedPDS(b)
	gated, err := embedded.StartMongo("127.0.0.1:0", b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gated.Close)
	straight, err := embedded.StartMongoUngated("127.0.0.1:0", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(straight.Close)

	// One untimed round of each warms FerretDB, the PDS and the caches.
	intentsToPDS(b, pds, gated.URI())
	intentsToPDS(b, pds, straight.URI())

	var tGated, tStraight time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tGated += intentsToPDS(b, pds, gated.URI())
			tStraight += intentsToPDS(b, pds, straight.URI())
		} else {
			tStraight += intentsToPDS(b, pds, straight.URI())
			tGated += intentsToPDS(b, pds, gated.URI())
		}
	}
	intents := float64(b.N * gateBenchUsers * gateBenchPerUser)
	b.ReportMetric(intents/tGated.Seconds(), "gated-intents/s")
	b.ReportMetric(intents/tStraight.Seconds(), "ungated-intents/s")
	b.ReportMetric(tStraight.Seconds()/tGated.Seconds(), "gated/ungated")
	b.ReportMetric(0, "ns/op")
}

// intentsToPDS seeds fresh users and moods in a fresh database on uri and
// times a burst of one create intent per mood until the publisher has
// applied them all.
func intentsToPDS(b *testing.B, pds *devenv.PDS, uri string) time.Duration {
	b.Helper()
	ctx := context.Background()
	store, err := mongostore.Connect(uri, fmt.Sprintf("bench%d", time.Now().UnixNano()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.DB.Drop(ctx); _ = store.Close(ctx) }()
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	client := pdsclient.New(pds.URL, store, nil)
	var moods []intent.Intent
	when := time.Now().UTC().Truncate(time.Millisecond)
	for range gateBenchUsers {
		a, err := pds.CreateAccount(ctx)
		if err != nil {
			b.Fatal(err)
		}
		_, err = store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{
			{Key: "_id", Value: a.User},
			{Key: "atproto", Value: bson.D{{Key: "did", Value: a.DID}, {Key: "password", Value: a.Password}}},
		})
		if err != nil {
			b.Fatal(err)
		}
		var docs []any
		for j := range gateBenchPerUser {
			id := bson.NewObjectID()
			docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "user", Value: a.User},
				{Key: "mood", Value: fmt.Sprintf("mood %d", j)}, {Key: "when", Value: when.Add(time.Duration(j) * time.Millisecond)}})
			moods = append(moods, intent.Intent{Op: intent.OpCreate, MongoID: id.Hex(), User: a.User})
		}
		if _, err := store.DB.Collection(mongostore.MoodsCollection).InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
		// Log in outside the timer (an applyWrites with no writes).
		if err := client.ApplyWrites(ctx, a.DID, nil); err != nil {
			b.Fatal(err)
		}
	}

	_, js := devenv.ConnectJetStream(b, devenv.NewNATS(b))
	if err := publisher.EnsureStreams(ctx, js); err != nil {
		b.Fatal(err)
	}
	pub := publisher.New(js, reconcile.NewEngine(store, client, nil), publisher.Config{}, nil)
	var (
		mu      sync.Mutex
		applied int
		failed  string
		done    = make(chan struct{})
	)
	pub.Observe = func(op, outcome string) {
		mu.Lock()
		defer mu.Unlock()
		switch outcome {
		case publisher.OutcomeApplied:
			if applied++; applied == len(moods) {
				close(done)
			}
		case publisher.OutcomeDead:
			if failed == "" {
				failed = op
				close(done)
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { _ = pub.Run(runCtx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	start := time.Now()
	for _, in := range moods {
		if err := intent.Publish(ctx, js, in); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatal("intents not applied within 10 minutes")
	}
	elapsed := time.Since(start)
	if failed != "" {
		b.Fatalf("a %s intent was dead-lettered", failed)
	}
	n, err := store.DB.Collection(mongostore.MoodsCollection).CountDocuments(ctx,
		bson.D{{Key: "atproto.rkey", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil || int(n) != len(moods) {
		b.Fatalf("%d of %d moods carry an rkey (%v)", n, len(moods), err)
	}
	return elapsed
}
