package mongostore_test

import (
	"context"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestParkedLifecycle: parking merges what is owed, a claim takes a due
// user (once), a failed retry keeps what is owed with its backoff, intents
// parked during a retry survive it, and a user owed nothing is unparked.
func TestParkedLifecycle(t *testing.T) {
	s := devenv.NewStore(t)
	ctx := context.Background()
	now := time.Now()
	a := model.ParkedMood{ID: "507f1f77bcf86cd799439011", Op: "create"}
	b := model.ParkedMood{ID: "507f1f77bcf86cd799439012", Op: "delete"}
	if err := s.Park(ctx, "u", model.Parked{Moods: []model.ParkedMood{a, a}, LastError: "500"}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Park(ctx, "u", model.Parked{Moods: []model.ParkedMood{a, b}, Reconcile: []string{"gap"}}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	p, err := s.Parked(ctx, "u")
	if err != nil || p == nil || len(p.Moods) != 2 || p.Owed() != 3 || p.LastError != "500" || p.NextTry.After(now.Add(time.Second)) {
		t.Fatalf("parked %+v, %v: want a and b once, one reconcile, the first next try", p, err)
	}
	claimed, err := s.ClaimParked(ctx, "u", now.Add(time.Second), now.Add(time.Minute))
	if err != nil || claimed == nil {
		t.Fatalf("claim: %+v, %v", claimed, err)
	}
	if again, _ := s.ClaimParked(ctx, "u", now.Add(time.Second), now.Add(time.Minute)); again != nil {
		t.Fatal("claimed twice within the lease")
	}
	// a applied, the rest failed: a is removed, the failure recorded.
	still, err := s.FinishParked(ctx, claimed, model.Parked{Moods: []model.ParkedMood{a}}, "429", now.Add(30*time.Second))
	if err != nil || !still {
		t.Fatalf("finish: %v, %v", still, err)
	}
	p, _ = s.Parked(ctx, "u")
	if len(p.Moods) != 1 || p.Moods[0] != b || p.Failures != 1 || p.LastError != "429" || !p.NextTry.Equal(now.Add(30*time.Second).UTC().Truncate(time.Millisecond)) {
		t.Fatalf("after a failed retry: %+v", p)
	}
	if due, _ := s.ParkedDue(ctx, now.Add(time.Second), 10); len(due) != 0 {
		t.Fatalf("due before its next try: %q", due)
	}
	// A retry that succeeds while a is parked again: a stays owed.
	claimed, _ = s.ClaimParked(ctx, "u", now.Add(time.Minute), now.Add(2*time.Minute))
	if err := s.Park(ctx, "u", model.Parked{Moods: []model.ParkedMood{a}}, now); err != nil {
		t.Fatal(err)
	}
	still, err = s.FinishParked(ctx, claimed, model.Parked{Moods: claimed.Moods, Reconcile: claimed.Reconcile}, "", time.Time{})
	if err != nil || !still {
		t.Fatalf("finish with intents parked meanwhile: %v, %v", still, err)
	}
	p, _ = s.Parked(ctx, "u")
	if p == nil || len(p.Moods) == 0 {
		t.Fatalf("an intent parked during the retry was lost: %+v", p)
	}
	// Nothing new: owed nothing, unparked.
	claimed, _ = s.ClaimParked(ctx, "u", time.Now().Add(time.Second), time.Now().Add(time.Minute))
	if claimed == nil {
		t.Fatal("not due after a retry that succeeded")
	}
	still, err = s.FinishParked(ctx, claimed, model.Parked{Moods: claimed.Moods, Reconcile: claimed.Reconcile}, "", time.Time{})
	if err != nil || still {
		t.Fatalf("finish: %v, %v: want unparked", still, err)
	}
	if p, _ := s.Parked(ctx, "u"); p != nil {
		t.Fatalf("still parked: %+v", p)
	}
}

// TestParkedOverflowBecomesOneReconcile: past model.MaxParkedMoods the ids
// give way to one whole-user reconcile: the document stays bounded.
func TestParkedOverflowBecomesOneReconcile(t *testing.T) {
	s := devenv.NewStore(t)
	ctx := context.Background()
	moods := make([]model.ParkedMood, model.MaxParkedMoods+1)
	for i := range moods {
		moods[i] = model.ParkedMood{ID: "id" + time.Duration(i).String(), Op: "create"}
	}
	if err := s.Park(ctx, "u", model.Parked{Moods: moods}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Park(ctx, "u", model.Parked{Moods: moods[:1]}, time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := s.Parked(ctx, "u")
	if err != nil || len(p.Moods) != 0 || len(p.Reconcile) != 1 {
		t.Fatalf("parked %d moods, reconciles %q (%v): want one reconcile", len(p.Moods), p.Reconcile, err)
	}
}
