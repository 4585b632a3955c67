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

// TestReconcileUserConverges carries out a whole-user reconcile on the
// fakes: after it only the notices and the lost mood are left (its record,
// whose document is gone, is kept for restore), the spoofed and invalid
// records are untouched, and a second reconcile finds nothing to do.
func TestReconcileUserConverges(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Report.Drift() != 9 {
		t.Errorf("drift %d before repair, want 9: %+v", out.Report.Drift(), out.Report.Findings)
	}
	for _, res := range out.Results {
		if res.Changed() || res.Skipped != "" {
			t.Errorf("%s %s: verdict %s, skipped %q", res.Fix.Kind, res.Fix.Rkey, res.Verdict, res.Skipped)
		}
	}
	after, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after.Report.Drift() != 1 || len(after.Report.Of(reconcile.ClassLost)) != 1 || len(after.Plan.Fixes) != 0 {
		t.Fatalf("drift after repair: %+v", after.Report.Findings)
	}
	if len(after.Report.Of(reconcile.ClassSpoof)) != 1 || len(after.Report.Of(reconcile.ClassInvalid)) != 1 {
		t.Fatalf("notices not kept: %+v", after.Report.Findings)
	}
	checks := map[string]func(m *model.Mood) bool{
		"not-synced":    func(m *model.Mood) bool { return m.Rkey != "" && !m.Deleted },
		"unlinked":      func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa03" },
		"half-deleted":  func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"duplicated":    func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa06" },
		"stale":         func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"stale-deleted": func(m *model.Mood) bool { return m.Rkey == "" && m.Deleted },
		"adopt":         func(m *model.Mood) bool { return m.Rkey == "3kaaaaaaaaa11" },
		"spoofed":       func(m *model.Mood) bool { return m.Rkey == "" && !m.Deleted },
	}
	for name, ok := range checks {
		if m := f.store.Mood(f.ids[name]); !ok(m) {
			t.Errorf("mood %s after repair: %+v", name, m)
		}
	}
	for rkey, want := range map[string]bool{"3kaaaaaaaaa04": false, "3kaaaaaaaaa05": false, "3kaaaaaaaaa07": false, "3kaaaaaaaaa14": true, "3kaaaaaaaaa12": true, "3kaaaaaaaaa13": true} {
		if f.pds.Has(f.acct.DID, rkey) != want {
			t.Errorf("record %s exists: %v, want %v", rkey, !want, want)
		}
	}
	again, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{})
	if err != nil || len(again.Results) != 0 {
		t.Fatalf("second reconcile: %d fixes, %v", len(again.Results), err)
	}
}

// TestReconcileKeepOrphans: with the orphan policy off, orphans and the
// pointer to them stay.
func TestReconcileKeepOrphans(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{Fix: reconcile.FixOptions{KeepOrphans: true}})
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, r := range out.Results {
		if r.Skipped != "" {
			skipped++
		}
	}
	if skipped != 3 { // two orphans and the pointer of the half-deleted mood
		t.Errorf("%d fixes skipped, want 3", skipped)
	}
	if !f.pds.Has(f.acct.DID, "3kaaaaaaaaa05") || f.store.Mood(f.ids["half-deleted"]).Rkey != "3kaaaaaaaaa05" {
		t.Error("kept orphan or its pointer removed")
	}
}

// TestReconcileSeesNewerState: a fix planned on a snapshot is decided
// again on the state it finds, so it never undoes newer work.
func TestReconcileSeesNewerState(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	stale := f.store.Mood(f.ids["stale"])
	// Between the plan and its fixes the stale mood's record is written
	// again (say, restored).
	changeMeanwhile := func(fixes []reconcile.Fix) []reconcile.Fix {
		f.pds.Put(f.acct.DID, model.Record{Rkey: stale.Rkey, Value: model.NewRecordValue(stale)})
		return fixes
	}
	out, err := e.ReconcileUser(ctx, f.acct.User, reconcile.CauseIntent, reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup, Select: changeMeanwhile})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range out.Results {
		if res.Fix.MoodID == stale.ID && (!res.Changed() || res.Verdict != reconcile.ClassIgnored) {
			t.Errorf("soft-delete of a mood whose record is back: verdict %s", res.Verdict)
		}
	}
	if m := f.store.Mood(stale.ID); m.Deleted || m.Rkey == "" {
		t.Fatalf("stale mood soft-deleted though its record is back: %+v", m)
	}
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
