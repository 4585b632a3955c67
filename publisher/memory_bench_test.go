package publisher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

func TestMain(m *testing.M) {
	devenv.ServeNATSIfChild()
	os.Exit(m.Run())
}

// BenchmarkDistinctUsersHeap sends 100,000 create intents, each naming
// another user (a 500-byte sub: near the 512-byte bound, so a leak per
// user would show), through JetStream (embedded NATS, in a child process
// so that the server's own memory is not measured), the publisher and
// the reconcile engine over the in-memory store and PDS (the moods do not
// exist, so nothing is written and nothing is stored: what stays is what
// moodsync keeps). It reports the heap after GC before and after; nothing
// may grow with the number of users seen (DESIGN.md, "Bad input"): the
// run fails if the heap ends more than 5 MB above where it started.
//
// Run: go test -run '^$' -bench DistinctUsersHeap -benchtime 1x ./publisher/
func BenchmarkDistinctUsersHeap(b *testing.B) {
	const users = 100_000
	ctx := context.Background()
	_, js := devenv.ConnectJetStream(b, devenv.NewNATSProcess(b))
	if err := publisher.EnsureStreams(ctx, js); err != nil {
		b.Fatal(err)
	}
	engine := reconcile.NewEngine(reconciletest.NewStore(), reconciletest.NewPDS(), nil)
	var applied, other atomic.Int64
	pub := publisher.New(js, engine, publisher.Config{}, nil)
	pub.Observe = func(_, outcome string) {
		if outcome == publisher.OutcomeApplied {
			applied.Add(1)
		} else {
			other.Add(1)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pub.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	pad := strings.Repeat("u", 490)
	sent := 0
	send := func(n int) {
		for i := 0; i < n; i++ {
			in := intent.Intent{Op: intent.OpCreate, User: fmt.Sprintf("auth0|%09d", sent) + pad, MongoID: bson.NewObjectID().Hex()}
			data, _ := json.Marshal(in)
			if _, err := js.PublishAsync(in.Subject(), data); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("JetStream did not acknowledge the intents")
		}
		devenv.Eventually(b, 5*time.Minute, "every intent applied", func() bool {
			return applied.Load()+other.Load() >= int64(sent)
		})
	}
	// Warm up (the first fetches, pools, the runtime's own caches), then
	// measure from there.
	send(2_000)
	before := heapAfterGC()
	b.ResetTimer()
	start := time.Now()
	send(users)
	elapsed := time.Since(start)
	b.StopTimer()
	after := heapAfterGC()

	if n := other.Load(); n != 0 {
		b.Errorf("%d intents not applied", n)
	}
	grew := (float64(after) - float64(before)) / (1 << 20)
	b.ReportMetric(float64(before)/(1<<20), "heap-before-MB")
	b.ReportMetric(float64(after)/(1<<20), "heap-after-MB")
	b.ReportMetric(grew, "heap-growth-MB")
	b.ReportMetric(float64(users)/elapsed.Seconds(), "intents/s")
	b.ReportMetric(float64(engine.LockedUsers()), "locks-held")
	if grew > 5 {
		b.Errorf("heap after GC grew %.1f MB over %d distinct users, want at most 5", grew, users)
	}
}

// heapAfterGC is the live heap once garbage is collected.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
