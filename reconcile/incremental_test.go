package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// syncedUsers makes n users with one synced mood each, in the fakes.
func syncedUsers(t *testing.T, n int) (*reconciletest.Store, *reconciletest.PDS, []model.Account) {
	t.Helper()
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	var accts []model.Account
	for i := 0; i < n; i++ {
		a := model.Account{User: fmt.Sprintf("auth0|u%d", i), DID: fmt.Sprintf("did:plc:u%d", i)}
		store.PutAccount(a)
		m := model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994390%02d", i), User: a.User, Text: "sunny", When: when}
		m.Rkey = model.Rkey(&m, 0)
		store.PutMood(m)
		pds.Put(a.DID, model.Record{Rkey: m.Rkey, Value: model.NewRecordValue(&m)})
		accts = append(accts, a)
	}
	return store, pds, accts
}

// pass reconciles every account with cause and returns the users whose
// repo was read.
func pass(t *testing.T, e *reconcile.Engine, pds *reconciletest.PDS, accts []model.Account, cause reconcile.Cause) []string {
	t.Helper()
	var read []string
	for _, a := range accts {
		before := pds.Exports
		out, err := e.ReconcileUser(context.Background(), a.User, cause, reconcile.ReconcileOptions{})
		if err != nil {
			t.Fatalf("reconcile %s: %v", a.User, err)
		}
		exported := pds.Exports != before
		if exported == out.Unchanged {
			t.Fatalf("%s: exported %v, unchanged %v", a.User, exported, out.Unchanged)
		}
		if exported {
			read = append(read, a.User)
		}
	}
	return read
}

// TestPeriodicPassReadsOnlyWhatChanged: a periodic pass reads the repo of
// a user whose moods or repo changed since their last clean pass, and no
// other; a pass that fixed something records nothing, so the next one
// looks again; every other cause reads every repo.
func TestPeriodicPassReadsOnlyWhatChanged(t *testing.T) {
	store, pds, accts := syncedUsers(t, 3)
	e := reconcile.NewEngine(store, pds, nil)
	all := []string{accts[0].User, accts[1].User, accts[2].User}

	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); !slices.Equal(got, all) {
		t.Fatalf("first pass read %q, want every repo (nothing recorded yet)", got)
	}
	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); len(got) != 0 {
		t.Fatalf("nothing changed, yet the pass read %q", got)
	}

	// u1: a new mood in Mongo (not synced: the pass writes its record).
	// u2: a commit on the PDS (the same record written again).
	store.PutMood(model.Mood{ID: "507f1f77bcf86cd799439099", User: accts[1].User, Text: "new", When: time.Now()})
	recs, _ := pds.ListRecords(context.Background(), accts[2].DID)
	rec := recs[0]
	pds.Remove(accts[2].DID, rec.Rkey)
	pds.Put(accts[2].DID, rec)
	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); !slices.Equal(got, all[1:]) {
		t.Fatalf("read %q, want the two that changed", got)
	}
	// u1's pass wrote a record, so it recorded nothing: read once more,
	// found clean, recorded.
	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); !slices.Equal(got, all[1:2]) {
		t.Fatalf("read %q, want the one fixed last time", got)
	}
	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); len(got) != 0 {
		t.Fatalf("read %q, want none", got)
	}

	// A mood changed in place (soft-deleted by the app) changes the digest.
	m := store.Mood("507f1f77bcf86cd799439000")
	m.Deleted = true
	store.PutMood(*m)
	if got := pass(t, e, pds, accts, reconcile.CausePeriodic); !slices.Equal(got, all[:1]) {
		t.Fatalf("read %q, want the user whose mood was soft-deleted", got)
	}

	for _, cause := range []reconcile.Cause{reconcile.CauseFull, reconcile.CauseGap, reconcile.CauseIntent} {
		if got := pass(t, e, pds, accts, cause); !slices.Equal(got, all) {
			t.Fatalf("a %s pass read %q, want every repo", cause, got)
		}
	}
}

// TestGuardTrippedPassRecordsNothing: soft deletes held back by the
// mass-delete guard are drift left for an operator; the next pass must
// look again, not take the user as clean.
func TestGuardTrippedPassRecordsNothing(t *testing.T) {
	store, pds, accts := syncedUsers(t, 1)
	e := reconcile.NewEngine(store, pds, nil)
	e.MassDeleteLimit = 1
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	for i := 0; i < 3; i++ { // live moods whose records are gone
		store.PutMood(model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994391%02d", i), User: accts[0].User, Text: "x", When: when, Rkey: fmt.Sprintf("3kaaaaaaaaa%02d", i)})
	}
	for i := 0; i < 2; i++ {
		if got := pass(t, e, pds, accts, reconcile.CausePeriodic); len(got) != 1 {
			t.Fatalf("pass %d read %q: a tripped guard must not count as clean", i, got)
		}
	}
}

// TestRebindForgetsTheCleanPass: a user whose users row names a new DID is
// compared in full (their moods are written into the new repo).
func TestRebindForgetsTheCleanPass(t *testing.T) {
	store, pds, accts := syncedUsers(t, 1)
	e := reconcile.NewEngine(store, pds, nil)
	pass(t, e, pds, accts, reconcile.CausePeriodic)
	moved := model.Account{User: accts[0].User, DID: "did:plc:moved"}
	store.PutAccount(moved)
	out, err := e.ReconcileUser(context.Background(), moved.User, reconcile.CausePeriodic, reconcile.ReconcileOptions{})
	if err != nil || out.Unchanged || out.Cause != reconcile.CauseDIDChanged {
		t.Fatalf("after the DID changed: %+v, %v", out, err)
	}
	// The old repo's clean pass is forgotten, and the rebind's pass wrote
	// the records into the new repo: the next pass reads it again, then
	// records it clean.
	if b, _ := store.Binding(context.Background(), moved.User); b == nil || b.DID != moved.DID || b.Clean != nil {
		t.Fatalf("binding after the rebind: %+v", b)
	}
	if got := pass(t, e, pds, []model.Account{moved}, reconcile.CausePeriodic); len(got) != 1 {
		t.Fatalf("pass after the rebind read %q, want the new repo", got)
	}
	if got := pass(t, e, pds, []model.Account{moved}, reconcile.CausePeriodic); len(got) != 0 {
		t.Fatalf("read %q, want none", got)
	}
}

// TestAntiEntropyFullEvery: the periodic pass is a full one when no full
// sweep is recorded or the last is FullEvery old; otherwise it may skip
// the unchanged. A first start's sweep counts as full.
func TestAntiEntropyFullEvery(t *testing.T) {
	f := newDriftFixture(t)
	state := &memCursors{seq: map[string]int64{}}
	run := func(fullEvery time.Duration) reconcile.PassResult {
		t.Helper()
		passes := make(chan reconcile.PassResult, 1)
		ae := &reconcile.AntiEntropy{
			Sweep: &reconcile.Sweep{Users: f.store, Queue: &memQueue{}, State: state}, Every: time.Hour, FullEvery: fullEvery,
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
		delete(state.seq, reconcile.SweepStream) // the next pass is due at once
		return res
	}
	if r := run(24 * time.Hour); !r.Full {
		t.Fatalf("first pass %+v, want full (none recorded)", r)
	}
	if r := run(24 * time.Hour); r.Full {
		t.Fatalf("second pass %+v, want periodic", r)
	}
	state.seq[reconcile.FullSweepStream] = time.Now().Add(-25 * time.Hour).UnixNano()
	if r := run(24 * time.Hour); !r.Full {
		t.Fatalf("pass a day after the last full one %+v, want full", r)
	}
	if r := run(0); !r.Full {
		t.Fatalf("pass with FullEvery 0 %+v, want full", r)
	}
	sw := &reconcile.Sweep{Users: f.store, Queue: &memQueue{}, State: state}
	delete(state.seq, reconcile.FullSweepStream)
	if _, err := sw.Ensure(context.Background(), reconcile.CauseFirstStart, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := sw.LastFull(context.Background()); !ok {
		t.Fatal("a first start's sweep is not recorded as full")
	}
}
