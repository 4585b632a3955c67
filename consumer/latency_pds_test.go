package consumer

// BenchmarkLatency measures how long a user waits, on the real PDS, with
// the daemon's parts wired as `moodsync run` wires them (the firehose
// follower, verifying; the publisher on embedded NATS JetStream; one
// engine), Mongo either in memory (memstore: moodsync's own cost) or on
// the embedded Mongo-wire server (ferretdb):
//
//   - repair: a record created on the PDS, as the user, for a live mood
//     without rkey → the mood's atproto.rkey set in Mongo;
//   - pds-delete: that record deleted on the PDS → the mood soft-deleted;
//   - intent: a create intent published → the record written on the PDS
//     (readable from then on), and → its rkey stored in Mongo;
//   - pds-frame: for the first two, how long the PDS itself took to put
//     the commit on its firehose (a bare subscriber in this process).
//
// Each is measured idle (one op every 2 s on average, with jitter so the
// ops do not lock onto the PDS's own polling) and busy (100 ops/s spread
// over 10 users, open loop). Nothing polls the parts being timed: the
// engine's store and PDS are wrapped, and each write marks the time it
// returned.
//
//	go test -run '^$' -bench BenchmarkLatency -benchtime 1x -timeout 30m ./consumer/
//
// MOODSYNC_BENCH_IDLE_SAMPLES (default 15) and MOODSYNC_BENCH_BUSY_SECONDS
// (default 5) size the phases.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/gorilla/websocket"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

const (
	latUsers    = 10
	latBusyRate = 100 // ops per second, over all users
	latWait     = 30 * time.Second
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// latClock keeps the first time each event was seen and wakes waiters.
type latClock struct {
	mu   sync.Mutex
	at   map[string]time.Time
	wake chan struct{}
}

func newLatClock() *latClock { return &latClock{at: map[string]time.Time{}, wake: make(chan struct{})} }

func (c *latClock) mark(key string) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.at[key]; !ok {
		c.at[key] = now
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// wait returns when key was marked, or false after timeout.
func (c *latClock) wait(key string, timeout time.Duration) (time.Time, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		t, ok := c.at[key]
		w := c.wake
		c.mu.Unlock()
		if ok {
			return t, true
		}
		select {
		case <-w:
		case <-deadline.C:
			return time.Time{}, false
		}
	}
}

// markingStore marks the Mongo writes that end a measurement.
type markingStore struct {
	reconcile.Store
	clock *latClock
}

func (s markingStore) SetRkey(ctx context.Context, id, rkey string) (bool, error) {
	ok, err := s.Store.SetRkey(ctx, id, rkey)
	if ok {
		s.clock.mark("mongo-rkey " + id)
	}
	return ok, err
}

func (s markingStore) SoftDeleteByRkey(ctx context.Context, id, rkey string) (bool, error) {
	ok, err := s.Store.SoftDeleteByRkey(ctx, id, rkey)
	if ok {
		s.clock.mark("mongo-softdelete " + id)
	}
	return ok, err
}

// markingPDS marks the PDS writes that make a mood's record readable.
type markingPDS struct {
	reconcile.PDS
	clock *latClock
}

func (p markingPDS) CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error {
	err := p.PDS.CreateRecord(ctx, did, rkey, v)
	if err == nil {
		p.clock.mark("pds-record " + v.MoodID())
	}
	return err
}

func (p markingPDS) ApplyWrites(ctx context.Context, did string, writes []model.Write) error {
	err := p.PDS.ApplyWrites(ctx, did, writes)
	if err == nil {
		for _, w := range writes {
			if !w.Delete {
				p.clock.mark("pds-record " + w.Value.MoodID())
			}
		}
	}
	return err
}

// latStore is what the rig needs of a store: the engine's and the
// consumer's sides, and the sweep's.
type latStore interface {
	reconcile.Store
	Store
}

// latUser is one user, with a client logged in as them (the app's user
// writing to their own repo, not moodsync).
type latUser struct {
	acct *devenv.Account
	api  *atclient.APIClient
}

// latRig is the daemon's parts on the real PDS.
type latRig struct {
	b        *testing.B
	pds      *devenv.PDS
	clock    *latClock
	users    []latUser
	newMood  func(user string) string
	publish  func(ctx context.Context, in intent.Intent) error
	pending  func() int
	consumer *Consumer
}

// sample is one op's timings from its start.
type sample struct {
	frame time.Duration // the PDS's commit on its firehose (repair, pds-delete)
	done  time.Duration // Mongo updated (repair, pds-delete); record written (intent)
	mongo time.Duration // intent only: rkey stored in Mongo
	ok    bool
}

func newLatRig(b *testing.B, ferret bool) *latRig {
	b.Helper()
	ctx := context.Background()
	r := &latRig{b: b, pds: devenv.NeedPDS(b), clock: newLatClock()}

	var store latStore
	var sessions pdsclient.SessionStore
	if ferret {
		s := devenv.NewStore(b)
		store, sessions = s, s
		for i := 0; i < latUsers; i++ {
			r.users = append(r.users, latUser{acct: r.pds.CreateUser(b, s)})
		}
		r.newMood = func(user string) string { return devenv.InsertMood(b, s, user, "sunny", when) }
	} else {
		s := reconciletest.NewStore()
		mem := reconciletest.NewSessions()
		store, sessions = s, mem
		for i := 0; i < latUsers; i++ {
			a, err := r.pds.CreateAccount(ctx)
			if err != nil {
				b.Fatal(err)
			}
			s.PutAccount(model.Account{User: a.User, DID: a.DID})
			mem.SetPassword(a.DID, a.Password)
			r.users = append(r.users, latUser{acct: a})
		}
		r.newMood = func(user string) string {
			id := bson.NewObjectID().Hex()
			s.PutMood(model.Mood{ID: id, User: user, Text: "sunny", When: when})
			return id
		}
	}
	for i := range r.users {
		api, err := r.pds.Login(ctx, r.users[i].acct)
		if err != nil {
			b.Fatal(err)
		}
		r.users[i].api = api
	}

	_, js := devenv.ConnectJetStream(b, devenv.NewNATS(b))
	if err := publisher.EnsureStreams(ctx, js); err != nil {
		b.Fatal(err)
	}
	r.publish = func(ctx context.Context, in intent.Intent) error { return intent.Publish(ctx, js, in) }
	r.pending = func() int {
		n, err := publisher.Unfinished(ctx, js)
		if err != nil {
			return -1
		}
		return n
	}
	client := pdsclient.New(r.pds.URL, sessions, nil)
	engine := reconcile.NewEngine(markingStore{store, r.clock}, markingPDS{client, r.clock}, nil)
	queue := publisher.Queue{JS: js}
	sweep := &reconcile.Sweep{Users: store, Queue: queue, State: store}
	pub := publisher.New(js, engine, publisher.Config{}, nil)
	fh, err := FirehoseURL(r.pds.URL)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{FirehoseURL: fh, PLCURL: r.pds.PLCURL}, engine, store, queue, sweep)
	if err != nil {
		b.Fatal(err)
	}
	r.consumer = c
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = pub.Run(runCtx) }()
	go func() { defer wg.Done(); _ = c.Run(runCtx) }()
	go func() { defer wg.Done(); r.subscribe(runCtx, fh) }()
	b.Cleanup(func() { cancel(); wg.Wait() })

	// The first start queues a reconcile of every user: let it finish.
	r.settle()
	return r
}

// settle waits until the follower is ready and no intent is pending.
func (r *latRig) settle() {
	deadline := time.Now().Add(2 * time.Minute)
	for !r.consumer.Ready() || r.pending() != 0 {
		if time.Now().After(deadline) {
			r.b.Fatal("the daemon did not settle")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subscribe is a bare firehose subscriber: it marks when each op's commit
// arrived, which is the PDS's own delay.
func (r *latRig) subscribe(ctx context.Context, url string) {
	con, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		r.b.Error(err)
		return
	}
	go func() { <-ctx.Done(); con.Close() }()
	for {
		_, data, err := con.ReadMessage()
		if err != nil {
			return
		}
		xev, err := decodeFrame(data)
		if err != nil || xev.RepoCommit == nil {
			continue
		}
		for _, op := range xev.RepoCommit.Ops {
			r.clock.mark("frame " + xev.RepoCommit.Repo + " " + op.Action + " " + op.Path)
		}
	}
}

func since(t0, t time.Time, ok bool) time.Duration {
	if !ok {
		return -1
	}
	return t.Sub(t0)
}

// repair creates a record on the PDS for a new mood without rkey.
func (r *latRig) repair(ctx context.Context, u latUser) (sample, string, string) {
	id := r.newMood(u.acct.User)
	rkey := syntax.NewTIDNow(0).String()
	path := model.Collection + "/" + rkey
	rec := moodRecord(id)
	rec["$type"] = model.Collection
	t0 := time.Now()
	err := u.api.Post(ctx, syntax.NSID("com.atproto.repo.createRecord"),
		map[string]any{"repo": u.acct.DID, "collection": model.Collection, "rkey": rkey, "record": rec}, nil)
	if err != nil {
		r.b.Errorf("createRecord: %v", err)
		return sample{}, "", ""
	}
	tf, okf := r.clock.wait("frame "+u.acct.DID+" create "+path, latWait)
	tm, okm := r.clock.wait("mongo-rkey "+id, latWait)
	return sample{frame: since(t0, tf, okf), done: since(t0, tm, okm), ok: okf && okm}, id, rkey
}

// pdsDelete deletes a repaired mood's record on the PDS.
func (r *latRig) pdsDelete(ctx context.Context, u latUser, id, rkey string) sample {
	path := model.Collection + "/" + rkey
	t0 := time.Now()
	err := u.api.Post(ctx, syntax.NSID("com.atproto.repo.deleteRecord"),
		map[string]any{"repo": u.acct.DID, "collection": model.Collection, "rkey": rkey}, nil)
	if err != nil {
		r.b.Errorf("deleteRecord: %v", err)
		return sample{}
	}
	tf, okf := r.clock.wait("frame "+u.acct.DID+" delete "+path, latWait)
	tm, okm := r.clock.wait("mongo-softdelete "+id, latWait)
	return sample{frame: since(t0, tf, okf), done: since(t0, tm, okm), ok: okf && okm}
}

// intentCreate publishes a create intent for a new mood.
func (r *latRig) intentCreate(ctx context.Context, u latUser) sample {
	id := r.newMood(u.acct.User)
	t0 := time.Now()
	if err := r.publish(ctx, intent.Intent{Op: intent.OpCreate, MongoID: id, User: u.acct.User}); err != nil {
		r.b.Errorf("publish: %v", err)
		return sample{}
	}
	tr, okr := r.clock.wait("pds-record "+id, latWait)
	tm, okm := r.clock.wait("mongo-rkey "+id, latWait)
	return sample{done: since(t0, tr, okr), mongo: since(t0, tm, okm), frame: -1, ok: okr && okm}
}

// latResults collects samples by measure.
type latResults struct {
	mu sync.Mutex
	by map[string][]time.Duration
	// failed counts ops that did not complete within latWait.
	failed map[string]int
}

func (l *latResults) add(phase, kind string, s sample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by, l.failed = map[string][]time.Duration{}, map[string]int{}
	}
	if !s.ok {
		l.failed[phase+" "+kind]++
		return
	}
	switch kind {
	case "intent":
		l.by[phase+" intent→record"] = append(l.by[phase+" intent→record"], s.done)
		l.by[phase+" intent→mongo"] = append(l.by[phase+" intent→mongo"], s.mongo)
	default:
		l.by[phase+" "+kind+" commit→mongo"] = append(l.by[phase+" "+kind+" commit→mongo"], s.done)
		l.by[phase+" "+kind+" pds-frame"] = append(l.by[phase+" "+kind+" pds-frame"], s.frame)
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (l *latResults) report(b *testing.B) {
	keys := make([]string, 0, len(l.by))
	for k := range l.by {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-34s %5s %9s %9s %9s %9s\n", "measure", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
	for _, k := range keys {
		d := l.by[k]
		fmt.Fprintf(&sb, "%-34s %5d %9.1f %9.1f %9.1f %9.1f\n", k, len(d),
			ms(quantile(d, .5)), ms(quantile(d, .95)), ms(quantile(d, .99)), ms(quantile(d, 1)))
		name := strings.NewReplacer(" ", "-", "→", "-to-").Replace(k)
		b.ReportMetric(ms(quantile(d, .5)), name+"-p50-ms")
		b.ReportMetric(ms(quantile(d, .99)), name+"-p99-ms")
	}
	for k, n := range l.failed {
		fmt.Fprintf(&sb, "%s: %d ops not done within %s\n", k, n, latWait)
	}
	// To stderr: the testing package cuts a benchmark's log short.
	fmt.Fprintf(os.Stderr, "%s:%s", b.Name(), sb.String())
}

func BenchmarkLatency(b *testing.B) {
	idle := envInt("MOODSYNC_BENCH_IDLE_SAMPLES", 15)
	busy := time.Duration(envInt("MOODSYNC_BENCH_BUSY_SECONDS", 5)) * time.Second
	for _, v := range []struct {
		name   string
		ferret bool
	}{{"memstore", false}, {"ferretdb", true}} {
		b.Run(v.name, func(b *testing.B) {
			var res latResults
			for i := 0; i < b.N; i++ {
				r := newLatRig(b, v.ferret)
				ctx := context.Background()
				// Warm up outside the figures: a login of the publisher's
				// client per user, the verifier's key of each DID.
				for _, u := range r.users {
					r.repair(ctx, u)
					r.intentCreate(ctx, u)
				}
				r.settle()
				r.idle(ctx, &res, idle)
				r.busy(ctx, &res, busy)
			}
			res.report(b)
			b.ReportMetric(0, "ns/op")
		})
	}
}

// gap is the pause between idle ops: 2 s on average, uniformly 1.5–2.5 s.
func gap() time.Duration { return 1500*time.Millisecond + rand.N(time.Second) }

// idle runs n ops of each kind, one at a time.
func (r *latRig) idle(ctx context.Context, res *latResults, n int) {
	for i := 0; i < n; i++ {
		u := r.users[i%len(r.users)]
		s, id, rkey := r.repair(ctx, u)
		res.add("idle", "repair", s)
		time.Sleep(gap())
		if id != "" {
			res.add("idle", "pds-delete", r.pdsDelete(ctx, u, id, rkey))
			time.Sleep(gap())
		}
		res.add("idle", "intent", r.intentCreate(ctx, u))
		time.Sleep(gap())
	}
}

// busy runs each kind at latBusyRate ops/s over every user for d, open
// loop: an op starts on schedule whether or not earlier ones finished.
func (r *latRig) busy(ctx context.Context, res *latResults, d time.Duration) {
	n := int(d.Seconds() * latBusyRate)
	type made struct {
		u        latUser
		id, rkey string
	}
	var mu sync.Mutex
	var repaired []made
	run := func(kind string, op func(i int)) {
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / latBusyRate)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			<-tick.C
			wg.Add(1)
			go func() { defer wg.Done(); op(i) }()
		}
		wg.Wait()
		r.settle()
	}
	run("repair", func(i int) {
		u := r.users[i%len(r.users)]
		s, id, rkey := r.repair(ctx, u)
		res.add("busy", "repair", s)
		if id != "" {
			mu.Lock()
			repaired = append(repaired, made{u, id, rkey})
			mu.Unlock()
		}
	})
	run("pds-delete", func(i int) {
		mu.Lock()
		if i >= len(repaired) {
			mu.Unlock()
			return
		}
		m := repaired[i]
		mu.Unlock()
		res.add("busy", "pds-delete", r.pdsDelete(ctx, m.u, m.id, m.rkey))
	})
	run("intent", func(i int) {
		res.add("busy", "intent", r.intentCreate(ctx, r.users[i%len(r.users)]))
	})
}
