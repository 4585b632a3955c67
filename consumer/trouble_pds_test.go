package consumer

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// troubleRig is the daemon's parts as `run` wires them — publisher (with
// parking), firehose follower, one engine — on the real PDS behind a proxy
// that can fail the writes into one repo (the firehose is read from the
// PDS itself). The moods are in memory, so what is measured is moodsync
// and the PDS, not the embedded FerretDB (which, under -race, stores a few
// rkeys a second: BENCHMARKS.md); parked users are kept on the embedded
// Mongo-wire server, as in production.
type troubleRigPDS struct {
	pds      *devenv.PDS
	proxy    *devenv.Proxy
	mem      *reconciletest.Store
	sessions *reconciletest.Sessions
	publish  func(in intent.Intent) error
	dead     *deadletter.Box
	pending  func() int
	consumer *Consumer
	limited  atomic.Int64
}

func newTroubleRigPDS(t testing.TB) *troubleRigPDS {
	ctx := context.Background()
	pds := devenv.NeedPDS(t)
	r := &troubleRigPDS{pds: pds, proxy: devenv.NewProxy(t, pds.URL), mem: reconciletest.NewStore(), sessions: reconciletest.NewSessions()}
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	if err := publisher.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	r.publish = func(in intent.Intent) error { return intent.Publish(ctx, js, in) }
	var err error
	if r.dead, err = deadletter.Open(ctx, js); err != nil {
		t.Fatal(err)
	}
	r.pending = func() int {
		n, err := publisher.Unfinished(ctx, js)
		if err != nil {
			return -1
		}
		return n
	}
	client := pdsclient.New(r.proxy.URL, r.sessions, nil)
	client.OnRateLimited = func(string) { r.limited.Add(1) }
	engine := reconcile.NewEngine(r.mem, client, nil)
	queue := publisher.Queue{JS: js}
	sweep := &reconcile.Sweep{Users: r.mem, Queue: queue, State: r.mem}
	pub := publisher.New(js, engine, publisher.Config{}, testLog(t))
	pub.Park = devenv.NewStore(t)
	fh, err := FirehoseURL(pds.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{FirehoseURL: fh, PLCURL: pds.PLCURL, Log: testLog(t)}, engine, r.mem, queue, sweep)
	if err != nil {
		t.Fatal(err)
	}
	r.consumer = c
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = pub.Run(runCtx) }()
	go func() { defer wg.Done(); _ = c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// user makes a PDS account known to the in-memory users.
func (r *troubleRigPDS) user(t testing.TB) *devenv.Account {
	a, err := r.pds.CreateAccount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.mem.PutAccount(model.Account{User: a.User, DID: a.DID})
	r.sessions.SetPassword(a.DID, a.Password)
	return a
}

func (r *troubleRigPDS) mood(user string, when time.Time) string {
	id := bson.NewObjectID().Hex()
	r.mem.PutMood(model.Mood{ID: id, User: user, Text: "sunny", When: when})
	return id
}

// settle waits until the follower is ready and no intent is pending.
func (r *troubleRigPDS) settle(t testing.TB) {
	devenv.Eventually(t, 2*time.Minute, "the daemon settled", func() bool { return r.consumer.Ready() && r.pending() == 0 })
}

// poll waits for cond, checking every 5 ms (in memory: cheap), and returns
// how long it took; it fails the test past within.
func poll(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// rateWindow is the length of the proxy's rate-limit windows (seconds): a
// 429 names the end of the window it falls in as its ratelimit-reset.
const rateWindow = 6

// TestOneUsersTroubleStaysTheirs is issue 17 on the real PDS: every write
// into one user's repo is answered 500, then 429 with ratelimit-reset,
// while 1,200 create intents of that user are queued. Another user's
// create intents (six, 2 s apart) are applied, and their deletes on the
// PDS soft-delete their moods, each within seconds; no write reaches the
// 429'd account before the reset it was told; nothing is dead-lettered;
// once writes pass again each of the 1,200 moods gets exactly one record.
func TestOneUsersTroubleStaysTheirs(t *testing.T) {
	r := newTroubleRigPDS(t)
	ctx := context.Background()
	trouble, bystander := r.user(t), r.user(t)
	r.settle(t)
	// Warm both sessions.
	for _, a := range []*devenv.Account{trouble, bystander} {
		id := r.mood(a.User, time.Now())
		if err := r.publish(intent.Intent{Op: intent.OpCreate, User: a.User, MongoID: id}); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, "warm-up mood synced", func() bool { return r.mem.Mood(id).Rkey != "" })
	}

	var mu sync.Mutex
	type answer struct{ at, reset time.Time }
	var limited []answer
	rateLimited := false
	r.proxy.FailWrites(trouble.DID, func() (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if !rateLimited {
			return http.StatusInternalServerError, nil
		}
		now := time.Now()
		reset := time.Unix((now.Unix()/rateWindow+1)*rateWindow, 0)
		limited = append(limited, answer{now, reset})
		return http.StatusTooManyRequests, http.Header{
			"Ratelimit-Limit": {"5000"}, "Ratelimit-Remaining": {"0"},
			"Ratelimit-Reset": {strconv.FormatInt(reset.Unix(), 10)}, "Ratelimit-Policy": {"5000;w=3600"},
		}
	})

	const queued = 1200
	base := time.Now().Add(-time.Hour)
	ids := make([]string, queued)
	for i := range ids {
		ids[i] = r.mood(trouble.User, base.Add(time.Duration(i)*time.Second))
		if err := r.publish(intent.Intent{Op: intent.OpCreate, User: trouble.User, MongoID: ids[i]}); err != nil {
			t.Fatal(err)
		}
	}

	api, err := r.pds.Login(ctx, bystander)
	if err != nil {
		t.Fatal(err)
	}
	var applied, softDeleted []time.Duration
	start := time.Now()
	for i := range 6 {
		if i == 3 {
			mu.Lock()
			rateLimited = true
			mu.Unlock()
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * 2 * time.Second))) // the scenario's pace
		id := r.mood(bystander.User, time.Now())
		if err := r.publish(intent.Intent{Op: intent.OpCreate, User: bystander.User, MongoID: id}); err != nil {
			t.Fatal(err)
		}
		applied = append(applied, poll(t, 15*time.Second, "bystander's create applied", func() bool { return r.mem.Mood(id).Rkey != "" }))
		deleted := time.Now()
		err := api.Post(ctx, syntax.NSID("com.atproto.repo.deleteRecord"),
			map[string]any{"repo": bystander.DID, "collection": model.Collection, "rkey": r.mem.Mood(id).Rkey}, nil)
		if err != nil {
			t.Fatal(err)
		}
		poll(t, 15*time.Second, "bystander's PDS-side delete soft-deletes the mood", func() bool { return r.mem.Mood(id).Deleted })
		softDeleted = append(softDeleted, time.Since(deleted))
	}
	t.Logf("bystander create intent → rkey in Mongo: p50 %s, max %s; PDS delete → soft delete: p50 %s, max %s",
		p50(applied), slices.Max(applied).Round(time.Millisecond), p50(softDeleted), slices.Max(softDeleted).Round(time.Millisecond))

	time.Sleep(2 * rateWindow * time.Second) // two more rate-limit windows: the scenario
	r.proxy.FailWrites(trouble.DID, nil)
	refused := r.proxy.Refused()
	mu.Lock()
	for i := 1; i < len(limited); i++ {
		if limited[i].at.Before(limited[i-1].reset) {
			t.Errorf("a write at %s reached the PDS before the reset %s it was told at %s",
				limited[i].at.Format(time.StampMilli), limited[i-1].reset.Format(time.StampMilli), limited[i-1].at.Format(time.StampMilli))
		}
	}
	t.Logf("writes into the troubled repo while it failed: %d (%d answered 429; %d rate-limited errors seen)", refused, len(limited), r.limited.Load())
	mu.Unlock()

	took := poll(t, 5*time.Minute, "every queued mood synced once writes pass", func() bool {
		moods, _ := r.mem.UserMoods(ctx, trouble.User)
		n := 0
		for _, m := range moods {
			if m.Rkey != "" {
				n++
			}
		}
		return n == queued+1
	})
	t.Logf("the troubled user's %d moods synced %s after writes passed again", queued, took.Round(time.Millisecond))
	recs, err := r.pds.Records(ctx, trouble.DID)
	if err != nil {
		t.Fatal(err)
	}
	byMood := map[string]int{}
	for _, rec := range recs {
		byMood[rec.Value.MoodID()]++
	}
	for _, id := range ids {
		if byMood[id] != 1 {
			t.Fatalf("mood %s has %d records, want 1", id, byMood[id])
		}
	}
	if len(recs) != queued+1 {
		t.Fatalf("%d records in the troubled repo, want %d", len(recs), queued+1)
	}
	letters, err := r.dead.List(context.Background(), deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 0 {
		t.Fatalf("%d dead letters for transient failures: %+v", len(letters), letters)
	}
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

// BenchmarkBystanderLatency: a bystander's create intent → rkey in Mongo,
// with nobody in trouble, then with one user whose every write is answered
// 500 and who has 1,200 create intents queued; side by side in one run
// (wall clock, in-memory moods: BENCHMARKS.md). MOODSYNC_BENCH_SAMPLES
// (20) is the intents per phase.
//
//	go test -run '^$' -bench BystanderLatency -benchtime 1x ./consumer/
func BenchmarkBystanderLatency(b *testing.B) {
	samples := envInt("MOODSYNC_BENCH_SAMPLES", 20)
	for range b.N {
		r := newTroubleRigPDS(b)
		trouble, bystander := r.user(b), r.user(b)
		r.settle(b)
		measure := func() []time.Duration {
			var out []time.Duration
			for range samples {
				id := r.mood(bystander.User, time.Now())
				if err := r.publish(intent.Intent{Op: intent.OpCreate, User: bystander.User, MongoID: id}); err != nil {
					b.Fatal(err)
				}
				out = append(out, poll(b, time.Minute, "bystander's create applied", func() bool { return r.mem.Mood(id).Rkey != "" }))
				time.Sleep(gap() / 4) // spread the samples (375–625 ms)
			}
			return out
		}
		// Warm both sessions, then nobody in trouble.
		for _, a := range []*devenv.Account{trouble, bystander} {
			id := r.mood(a.User, time.Now())
			_ = r.publish(intent.Intent{Op: intent.OpCreate, User: a.User, MongoID: id})
			poll(b, 30*time.Second, "warm-up", func() bool { return r.mem.Mood(id).Rkey != "" })
		}
		none := measure()
		r.proxy.FailWrites(trouble.DID, func() (int, http.Header) { return http.StatusInternalServerError, nil })
		base := time.Now().Add(-time.Hour)
		for i := range 1200 {
			id := r.mood(trouble.User, base.Add(time.Duration(i)*time.Second))
			if err := r.publish(intent.Intent{Op: intent.OpCreate, User: trouble.User, MongoID: id}); err != nil {
				b.Fatal(err)
			}
		}
		inTrouble := measure()
		b.ReportMetric(float64(p50(none).Microseconds())/1000, "p50-none-ms")
		b.ReportMetric(float64(p50(inTrouble).Microseconds())/1000, "p50-trouble-ms")
		b.ReportMetric(float64(slices.Max(none).Microseconds())/1000, "max-none-ms")
		b.ReportMetric(float64(slices.Max(inTrouble).Microseconds())/1000, "max-trouble-ms")
		b.ReportMetric(float64(r.proxy.Refused()), "troubled-writes")
	}
}
