package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// driftFixture is one user with every kind of drift, in the fakes.
type driftFixture struct {
	store *reconciletest.Store
	pds   *reconciletest.PDS
	acct  model.Account
	ids   map[string]string // name → mood id
}

func newDriftFixture(t *testing.T) *driftFixture {
	t.Helper()
	f := &driftFixture{
		store: reconciletest.NewStore(), pds: reconciletest.NewPDS(),
		acct: model.Account{User: "auth0|alice", DID: "did:plc:alice"},
		ids:  map[string]string{},
	}
	f.store.PutAccount(f.acct)
	f.store.PutAccount(model.Account{User: "auth0|bob", DID: "did:plc:bob"})
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	n := 0
	mood := func(name, user, rkey string, deleted bool) *model.Mood {
		n++
		m := model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994390%02d", n), User: user, Text: name, When: when.Add(time.Duration(n) * time.Minute), Rkey: rkey, Deleted: deleted}
		f.store.PutMood(m)
		f.ids[name] = m.ID
		return &m
	}
	record := func(rkey string, m *model.Mood) {
		f.pds.Put(f.acct.DID, model.Record{Rkey: rkey, Value: model.NewRecordValue(m)})
	}
	record("3kaaaaaaaaa01", mood("synced", f.acct.User, "3kaaaaaaaaa01", false))
	mood("not-synced", f.acct.User, "", false)
	record("3kaaaaaaaaa03", mood("unlinked", f.acct.User, "", false))
	record("3kaaaaaaaaa04", mood("orphan", f.acct.User, "", true))
	record("3kaaaaaaaaa05", mood("half-deleted", f.acct.User, "3kaaaaaaaaa05", true))
	dup := mood("duplicated", f.acct.User, "3kaaaaaaaaa06", false)
	record("3kaaaaaaaaa06", dup)
	record("3kaaaaaaaaa07", dup)
	mood("stale", f.acct.User, "3kaaaaaaaaa08", false)
	mood("stale-deleted", f.acct.User, "3kaaaaaaaaa09", true)
	record("3kaaaaaaaaa11", mood("adopt", f.acct.User, "3kaaaaaaaaa10", false))
	record("3kaaaaaaaaa12", mood("spoofed", "auth0|bob", "", false))
	f.pds.Put(f.acct.DID, model.Record{Rkey: "3kaaaaaaaaa13", Invalid: "record is not CBOR-decodable"})
	gone := &model.Mood{ID: "507f1f77bcf86cd799439099", Text: "gone", When: when}
	record("3kaaaaaaaaa14", gone)
	return f
}

// memCursors keeps the anti-entropy position in memory.
type memCursors struct{ seq map[string]int64 }

func (m *memCursors) LoadCursor(_ context.Context, s string) (int64, bool, error) {
	v, ok := m.seq[s]
	return v, ok, nil
}

func (m *memCursors) SaveCursor(_ context.Context, s string, v int64) error {
	m.seq[s] = v
	return nil
}

// msgHandler reports the "in" attribute of one log message.
type msgHandler struct {
	msg  string
	seen chan string
}

func (h *msgHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *msgHandler) WithGroup(string) slog.Handler            { return h }
func (h *msgHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "in" {
				h.seen <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

// memQueue records the reconciles asked for.
type memQueue struct {
	mu     sync.Mutex
	queued []string // "user cause"
}

func (q *memQueue) Enqueue(_ context.Context, user string, cause reconcile.Cause) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued = append(q.queued, user+" "+string(cause))
	return nil
}

func (q *memQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}

// TestSweepEnsure: a sweep queues every user once; a second caller that
// wants everyone since before that sweep started queues nobody; a forced
// one (zero since) always queues.
func TestSweepEnsure(t *testing.T) {
	f := newDriftFixture(t)
	q := &memQueue{}
	sw := &reconcile.Sweep{Users: f.store, Queue: q, State: &memCursors{seq: map[string]int64{}}}
	ctx := context.Background()
	before := time.Now()
	if n, err := sw.Ensure(ctx, reconcile.CauseFirstStart, before); err != nil || n != 2 {
		t.Fatalf("first sweep: %d queued, %v", n, err)
	}
	if n, err := sw.Ensure(ctx, reconcile.CausePeriodic, before.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("periodic sweep right after: %d queued, %v; want none", n, err)
	}
	if n, err := sw.Ensure(ctx, reconcile.CauseOutdatedCursor, time.Now()); err != nil || n != 2 {
		t.Fatalf("sweep owed since after the last one: %d queued, %v", n, err)
	}
	if n, err := sw.Ensure(ctx, reconcile.CauseFutureCursor, time.Time{}); err != nil || n != 2 {
		t.Fatalf("forced sweep: %d queued, %v", n, err)
	}
	if q.len() != 6 {
		t.Fatalf("queued %v", q.queued)
	}
}

// TestAntiEntropyRun: the first pass runs at once on a first start and
// queues every user; a pass stored as recent is not run again early.
func TestAntiEntropyRun(t *testing.T) {
	f := newDriftFixture(t)
	state := &memCursors{seq: map[string]int64{}}
	q := &memQueue{}
	passes := make(chan reconcile.PassResult, 1)
	ae := &reconcile.AntiEntropy{
		Sweep: &reconcile.Sweep{Users: f.store, Queue: q, State: state}, Every: time.Hour,
		OnPass: func(r reconcile.PassResult) { passes <- r },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ae.Run(ctx) }()
	res := <-passes
	if res.Queued != 2 {
		t.Fatalf("pass %+v: want 2 users queued", res)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := state.seq[reconcile.SweepStream]; !ok {
		t.Fatal("time of the pass not stored")
	}
	// Restarted right after: the next pass is scheduled an hour away.
	scheduled := make(chan string, 1)
	ae.Log = slog.New(&msgHandler{msg: "anti-entropy: next pass scheduled", seen: scheduled})
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- ae.Run(ctx) }()
	if in := <-scheduled; in != "1h0m0s" && in != "59m59s" {
		t.Errorf("next pass in %s, want an hour", in)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-passes:
		t.Fatalf("a pass ran early after a restart: %+v", r)
	default:
	}
	if q.len() != 2 {
		t.Fatalf("queued %v, want each user once", q.queued)
	}
}
