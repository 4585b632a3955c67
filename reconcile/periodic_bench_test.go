package reconcile_test

// BenchmarkPeriodicPassListRepos: a periodic pass over N users (default
// 100,000; MOODSYNC_BENCH_PASS_USERS) who all have a clean pass and did not
// change, Mongo on the embedded Mongo-wire server (users, bindings, one
// mood each), the PDS a fake serving listRepos pages. It reports the
// pass's wall time, the PDS calls (listRepos; getRepo and getRepoStatus
// are never made by the pass, and nobody is queued), and the Go heap
// allocated during the pass.
//
//	go test -run '^$' -bench BenchmarkPeriodicPassListRepos -benchtime 3x -timeout 30m ./reconcile/

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

func BenchmarkPeriodicPassListRepos(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("MOODSYNC_BENCH_PASS_USERS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	store, err := mongostore.Connect(devenv.MongoURI(b), "pass"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.DB.Drop(ctx); _ = store.Close(ctx) }()
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	lister := &fakeLister{}
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	const batch = 10_000
	for lo := 0; lo < n; lo += batch {
		var users, moods []any
		for i := lo; i < min(lo+batch, n); i++ {
			user, did := fmt.Sprintf("auth0|pass%07d", i), fmt.Sprintf("did:plc:pass%07d", i)
			users = append(users, bson.D{{Key: "_id", Value: user}, {Key: "atproto", Value: bson.D{{Key: "did", Value: did}}}})
			oid, _ := bson.ObjectIDFromHex(fmt.Sprintf("5f00000000000000%08d", i))
			moods = append(moods, bson.D{{Key: "_id", Value: oid}, {Key: "user", Value: user}, {Key: "mood", Value: "sunny"}, {Key: "when", Value: when}})
			lister.repos = append(lister.repos, reconcile.ListedRepo{DID: did, Rev: "3kh5dye2qpc2a", Active: true})
		}
		if _, err := store.DB.Collection(mongostore.UsersCollection).InsertMany(ctx, users); err != nil {
			b.Fatal(err)
		}
		if _, err := store.DB.Collection(mongostore.MoodsCollection).InsertMany(ctx, moods); err != nil {
			b.Fatal(err)
		}
	}
	digests, err := store.MoodDigests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for lo := 0; lo < n; lo += batch {
		var bindings []any
		for i := lo; i < min(lo+batch, n); i++ {
			user, did := fmt.Sprintf("auth0|pass%07d", i), fmt.Sprintf("did:plc:pass%07d", i)
			bindings = append(bindings, bson.D{{Key: "_id", Value: user}, {Key: "did", Value: did},
				{Key: "clean", Value: bson.D{{Key: "rev", Value: "3kh5dye2qpc2a"}, {Key: "moods", Value: digests[user]}, {Key: "at", Value: when}}}})
		}
		if _, err := store.DB.Collection(mongostore.BindingsCollection).InsertMany(ctx, bindings); err != nil {
			b.Fatal(err)
		}
	}
	q := &memQueue{}
	sw := &reconcile.Sweep{Users: store, Queue: q, State: &memCursors{seq: map[string]int64{}},
		Unchanged: &reconcile.Unchanged{Repos: lister, State: store}}
	b.ResetTimer()
	var wall time.Duration
	var allocated uint64
	for i := 0; i < b.N; i++ {
		lister.calls = 0
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		queued, err := sw.Ensure(ctx, reconcile.CausePeriodic, time.Time{})
		wall += time.Since(start)
		runtime.ReadMemStats(&after)
		allocated += after.TotalAlloc - before.TotalAlloc
		if err != nil || queued != 0 {
			b.Fatalf("queued %d, %v", queued, err)
		}
		if lister.calls > 100 {
			b.Fatalf("%d PDS calls for %d unchanged users", lister.calls, n)
		}
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/pass")
	b.ReportMetric(float64(lister.calls), "pds-calls/pass")
	b.ReportMetric(float64(allocated)/float64(b.N)/(1<<20), "MiB-allocated/pass")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "MiB-heap-sys")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d users, one mood each, all unchanged: %d listRepos calls, 0 getRepoStatus, 0 getRepo, none queued", n, lister.calls)
}
