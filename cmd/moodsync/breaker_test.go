package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// TestMassDeleteBreakerHoldsASilentRestore: a PDS restored without any
// cursor signal (records gone, no delete ops) for 30 users of 3 moods each.
// Every user is within their own guard, but the breaker across all users
// (here 20 an hour) holds the soft deletes past it, the alert's metric
// moves, and the held moods stay live; an operator's release lets them go.
func TestMassDeleteBreakerHoldsASilentRestore(t *testing.T) {
	ctx := context.Background()
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	m := newMetrics(prometheus.NewRegistry())
	e := reconcile.NewEngine(store, pds, nil)
	e.Observe = m.engineAction
	e.Breaker = &mongostore.Breaker{Store: devenv.NewStore(t), Limit: 20}
	var users []string
	for u := range 30 {
		user, did := fmt.Sprintf("auth0|u%02d", u), fmt.Sprintf("did:plc:u%02d", u)
		store.PutAccount(model.Account{User: user, DID: did})
		for i := range 3 {
			mood := model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994%02d%03d", u, i), User: user, Text: "x", When: time.Unix(int64(1000+i), 0)}
			mood.Rkey = model.Rkey(&mood, 0)
			store.PutMood(mood) // synced; the restored repo has no record of it
		}
		users = append(users, user)
	}
	softDeleted := func() int {
		n := 0
		for _, u := range users {
			moods, _ := store.UserMoods(ctx, u)
			for _, mood := range moods {
				if mood.Deleted {
					n++
				}
			}
		}
		return n
	}
	held := 0
	for _, u := range users {
		out, err := e.ReconcileUser(ctx, u, reconcile.CausePeriodic, reconcile.ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.BreakerHeld {
			held += len(out.Plan.Held)
		}
	}
	if n := softDeleted(); n > 20 {
		t.Fatalf("%d moods soft-deleted, the breaker allows 20", n)
	}
	if held < 90-20 || testutil.ToFloat64(m.breakerHeld) < float64(90-20) {
		t.Fatalf("held %d, metric %v; want at least 70", held, testutil.ToFloat64(m.breakerHeld))
	}
	// Held across a restart: the next pass (another engine, same store)
	// holds them still.
	again := reconcile.NewEngine(store, pds, nil)
	again.Breaker = &mongostore.Breaker{Store: e.Breaker.(*mongostore.Breaker).Store, Limit: 20}
	if out, err := again.ReconcileUser(ctx, users[29], reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil || !out.BreakerHeld {
		t.Fatalf("after a restart: held %v, %v", out != nil && out.BreakerHeld, err)
	}
	if _, err := again.Breaker.(*mongostore.Breaker).Release(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := again.ReconcileUser(ctx, users[29], reconcile.CauseIntent, reconcile.ReconcileOptions{BypassBreaker: true}); err != nil || out.BreakerHeld {
		t.Fatalf("after the release: held %v, %v", out != nil && out.BreakerHeld, err)
	}
}
