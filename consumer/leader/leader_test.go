package leader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
)

// testTTL keeps the tests short; the arithmetic is the same as at 10s.
const testTTL = 2 * time.Second

// within bounds every wait: far above MaxTakeover(testTTL), so a busy
// machine does not fail a test that is about order, not speed.
const within = 60 * time.Second

// replica is one campaigning lease with its own NATS connection, whose work
// records when it ran.
type replica struct {
	lease  *Lease
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	board  *board
	once   sync.Once

	mu      sync.Mutex
	changes []string
}

// board watches every replica's work: how many run at once, and in what
// order they started and stopped.
type board struct {
	running atomic.Int32
	most    atomic.Int32
	mu      sync.Mutex
	log     []string // "start <id>", "stop <id>"
}

func (b *board) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = append(b.log, s)
}

func (b *board) events() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.log...)
}

func (b *board) work(id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n := b.running.Add(1)
		for {
			m := b.most.Load()
			if n <= m || b.most.CompareAndSwap(m, n) {
				break
			}
		}
		b.note("start " + id)
		<-ctx.Done()
		b.note("stop " + id)
		b.running.Add(-1)
		return nil
	}
}

func start(t *testing.T, url, id string, b *board) *replica {
	t.Helper()
	nc, js := devenv.ConnectJetStream(t, url)
	r := &replica{nc: nc, board: b, done: make(chan error, 1)}
	r.lease = New(js, Config{ID: id, TTL: testTTL, Log: devenvLog(t), OnChange: func(leading bool, reason string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.changes = append(r.changes, reason)
	}})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.lease.Run(ctx, b.work(id)) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *replica) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s: Run: %v", r.lease.ID(), err)
			}
		case <-time.After(within):
			t.Errorf("%s: Run did not return", r.lease.ID())
		}
	})
}

func (r *replica) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.changes...)
}

func leaders(rs ...*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if r.lease.Leading() {
			out = append(out, r)
		}
	}
	return out
}

func TestExactlyOneOfThreeLeadsAndACleanStopHandsOver(t *testing.T) {
	url := devenv.NewNATS(t)
	b := &board{}
	rs := []*replica{start(t, url, "a", b), start(t, url, "b", b), start(t, url, "c", b)}
	devenv.Eventually(t, within, "one leader", func() bool { return len(leaders(rs...)) == 1 })
	first := leaders(rs...)[0]
	for _, r := range rs {
		if r != first {
			devenv.Eventually(t, within, r.lease.ID()+" sees the holder", func() bool { return r.lease.Holder() == first.lease.ID() })
		}
	}

	// A clean stop deletes the key: one of the others takes over.
	first.stop(t)
	rest := []*replica{}
	for _, r := range rs {
		if r != first {
			rest = append(rest, r)
		}
	}
	devenv.Eventually(t, within, "a new leader", func() bool { return len(leaders(rest...)) == 1 })
	if got := first.reasons(); len(got) != 2 || got[0] != Acquired || got[1] != Released {
		t.Errorf("first leader's changes = %v, want [acquired released]", got)
	}
	if m := b.most.Load(); m != 1 {
		t.Errorf("%d replicas worked at once", m)
	}
	ev := b.events()
	if len(ev) < 3 || ev[0] != "start "+first.lease.ID() || ev[1] != "stop "+first.lease.ID() {
		t.Errorf("work order = %v: the second leader started before the first stopped", ev)
	}
}

func TestAbruptDeathHandsOverAfterExpiry(t *testing.T) {
	url := devenv.NewNATS(t)
	b := &board{}
	a := start(t, url, "a", b)
	devenv.Eventually(t, within, "a leads", a.lease.Leading)
	s := start(t, url, "standby", b)
	devenv.Eventually(t, within, "standby sees a", func() bool { return s.lease.Holder() == "a" })

	// a's link to NATS dies: no renewal, no release. a must stop its work
	// on its own, and the standby lead only after the key expired.
	died := time.Now()
	a.nc.Close()
	devenv.Eventually(t, within, "standby leads", s.lease.Leading)
	took := time.Since(died)
	devenv.Eventually(t, within, "a stopped", func() bool { return !a.lease.Leading() })
	ev := b.events()
	want := []string{"start a", "stop a", "start standby"}
	if len(ev) != 3 || ev[0] != want[0] || ev[1] != want[1] || ev[2] != want[2] {
		t.Errorf("work order = %v, want %v (the dead leader must stop before the standby starts)", ev, want)
	}
	if got := a.reasons(); len(got) != 2 || got[1] != Lost {
		t.Errorf("a's changes = %v, want [acquired lost]", got)
	}
	t.Logf("takeover after %s (TTL %s, bound %s)", took.Round(time.Millisecond), testTTL, MaxTakeover(testTTL))
}

func TestTakenLeaseStopsTheWorkAndIsWonBack(t *testing.T) {
	url := devenv.NewNATS(t)
	b := &board{}
	a := start(t, url, "a", b)
	devenv.Eventually(t, within, "a leads", a.lease.Leading)

	// Someone (an operator, a replica with a wrong clock) overwrites the
	// key: a's next renewal fails its revision check and the work stops.
	_, js := devenv.ConnectJetStream(t, url)
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), DefaultKey, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	devenv.Eventually(t, within, "a stops leading", func() bool { return !a.lease.Leading() })
	devenv.Eventually(t, within, "a sees the intruder", func() bool { return a.lease.Holder() == "intruder" })
	// The intruder never renews: its value expires and a leads again.
	devenv.Eventually(t, within, "a leads again", a.lease.Leading)
	if got := a.reasons(); len(got) < 3 || got[0] != Acquired || got[1] != Lost || got[2] != Acquired {
		t.Errorf("a's changes = %v, want [acquired lost acquired]", got)
	}
	if m := b.most.Load(); m != 1 {
		t.Errorf("%d works at once", m)
	}
}

func TestExistingBucketKeepsItsTTL(t *testing.T) {
	url := devenv.NewNATS(t)
	_, js := devenv.ConnectJetStream(t, url)
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, BucketConfig(DefaultBucket, 3*time.Second)); err != nil {
		t.Fatal(err)
	}
	b := &board{}
	r := start(t, url, "a", b)
	devenv.Eventually(t, within, "a leads", r.lease.Leading)
	if got := r.lease.TTL(); got != 3*time.Second {
		t.Errorf("lease TTL = %s, want the bucket's 3s", got)
	}
}

func TestBucketWithoutTTLIsRefused(t *testing.T) {
	url := devenv.NewNATS(t)
	_, js := devenv.ConnectJetStream(t, url)
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultBucket}); err != nil {
		t.Fatal(err)
	}
	err := New(js, Config{}).Run(ctx, func(context.Context) error { t.Error("work ran"); return nil })
	if !errors.Is(err, errNoTTL) {
		t.Errorf("Run = %v, want the no-TTL error", err)
	}
}

func TestWorkFailureEndsRunAndReleases(t *testing.T) {
	url := devenv.NewNATS(t)
	_, js := devenv.ConnectJetStream(t, url)
	boom := errors.New("boom")
	err := New(js, Config{TTL: testTTL}).Run(context.Background(), func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	kv, err := js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), DefaultKey); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("lease key after failure: %v, want released", err)
	}
}

func TestDefaultTakeoverIsWithinFifteenSeconds(t *testing.T) {
	if got := MaxTakeover(DefaultTTL); got > 15*time.Second {
		t.Errorf("MaxTakeover(%s) = %s, over the 15s the design allows", DefaultTTL, got)
	}
	l := New(nil, Config{})
	if l.holdFor() >= l.TTL() || l.renewEvery() >= l.holdFor() {
		t.Errorf("holder must renew (every %s) well before it stops (%s), and stop before the TTL (%s)", l.renewEvery(), l.holdFor(), l.TTL())
	}
}
