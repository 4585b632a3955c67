package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
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

// TestRepairAccountConverges carries out a whole repair on the fakes: after
// it only the notices are left, the spoofed and invalid records are
// untouched, and a second repair finds nothing to do.
func TestRepairAccountConverges(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	r, results, err := e.RepairAccount(ctx, f.acct, reconcile.FixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Drift() != 9 {
		t.Errorf("drift %d before repair, want 9: %+v", r.Drift(), r.Findings)
	}
	for _, res := range results {
		if res.Changed() || res.Skipped != "" {
			t.Errorf("%s %s: verdict %s, skipped %q", res.Fix.Kind, res.Fix.Rkey, res.Verdict, res.Skipped)
		}
	}
	after, err := e.CompareAccount(ctx, f.acct)
	if err != nil {
		t.Fatal(err)
	}
	if after.Drift() != 0 {
		t.Fatalf("drift after repair: %+v", after.Findings)
	}
	if len(after.Of(reconcile.ClassSpoof)) != 1 || len(after.Of(reconcile.ClassInvalid)) != 1 {
		t.Fatalf("notices not kept: %+v", after.Findings)
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
	for rkey, want := range map[string]bool{"3kaaaaaaaaa04": false, "3kaaaaaaaaa05": false, "3kaaaaaaaaa07": false, "3kaaaaaaaaa14": false, "3kaaaaaaaaa12": true, "3kaaaaaaaaa13": true} {
		if f.pds.Has(f.acct.DID, rkey) != want {
			t.Errorf("record %s exists: %v, want %v", rkey, !want, want)
		}
	}
	_, again, err := e.RepairAccount(ctx, f.acct, reconcile.FixOptions{})
	if err != nil || len(again) != 0 {
		t.Fatalf("second repair: %d fixes, %v", len(again), err)
	}
}

// TestApplyFixesKeepOrphans: with the orphan policy off, orphans and the
// pointer to them stay.
func TestApplyFixesKeepOrphans(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	_, results, err := e.RepairAccount(ctx, f.acct, reconcile.FixOptions{KeepOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, r := range results {
		if r.Skipped != "" {
			skipped++
		}
	}
	if skipped != 4 { // three orphans and the pointer of the half-deleted mood
		t.Errorf("%d fixes skipped, want 4", skipped)
	}
	if !f.pds.Has(f.acct.DID, "3kaaaaaaaaa05") || f.store.Mood(f.ids["half-deleted"]).Rkey != "3kaaaaaaaaa05" {
		t.Error("kept orphan or its pointer removed")
	}
}

// TestApplyFixesSeesNewerState: a fix planned on an old snapshot is decided
// again on the state it finds, so it never undoes newer work.
func TestApplyFixesSeesNewerState(t *testing.T) {
	f := newDriftFixture(t)
	ctx := context.Background()
	e := reconcile.NewEngine(f.store, f.pds, nil)
	r, err := e.CompareAccount(ctx, f.acct)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile the stale mood's record is written again (say, restored).
	stale := f.store.Mood(f.ids["stale"])
	f.pds.Put(f.acct.DID, model.Record{Rkey: stale.Rkey, Value: model.NewRecordValue(stale)})
	for _, res := range e.ApplyFixes(ctx, f.acct, reconcile.PlanCleanup(r), reconcile.FixOptions{}) {
		if res.Fix.MoodID == stale.ID && (!res.Changed() || res.Verdict != reconcile.VerdictIgnore) {
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

// TestAntiEntropyRun: the first pass runs at once on a first start and
// repairs every user; a pass stored as recent is not run again early.
func TestAntiEntropyRun(t *testing.T) {
	f := newDriftFixture(t)
	state := &memCursors{seq: map[string]int64{}}
	passes := make(chan reconcile.PassResult, 1)
	ae := &reconcile.AntiEntropy{
		Engine: reconcile.NewEngine(f.store, f.pds, nil), Users: f.store, State: state, Every: time.Hour,
		OnPass: func(r reconcile.PassResult) { passes <- r },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ae.Run(ctx) }()
	res := <-passes
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.Users != 2 || res.Drift != 10 || res.Failed != 0 { // bob's spoofed mood is not synced
		t.Fatalf("pass %+v: want 2 users, 10 drift, 0 failed", res)
	}
	if _, ok := state.seq[reconcile.AntiEntropyStream]; !ok {
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
}
