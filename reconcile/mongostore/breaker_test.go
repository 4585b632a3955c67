package mongostore_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// TestBreakerBoundsEveryTaker: takers at once (replicas, commands) never
// get more soft deletes than the bound between them; the breaker trips and
// stays tripped — a new Breaker over the same store, as after a restart,
// holds too — until released.
func TestBreakerBoundsEveryTaker(t *testing.T) {
	s := devenv.NewStore(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b := &mongostore.Breaker{Store: s, Limit: 100, Now: func() time.Time { return now }}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				ok, err := b.Take(ctx, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					granted.Add(3)
				}
			}
		}()
	}
	wg.Wait()
	if g := granted.Load(); g > 100 || g < 99 {
		t.Fatalf("%d soft deletes granted, want the 99 that fit in 100", g)
	}
	restarted := &mongostore.Breaker{Store: s, Limit: 100, Now: func() time.Time { return now.Add(3 * time.Hour) }}
	if ok, err := restarted.Take(ctx, 1); ok || err != nil {
		t.Fatalf("a tripped breaker let one through after a restart, hours later: %v, %v", ok, err)
	}
	st, err := restarted.Release(ctx)
	if err != nil || !st.Tripped || st.Held == 0 {
		t.Fatalf("release: %+v, %v", st, err)
	}
	if ok, err := restarted.Take(ctx, 1); !ok || err != nil {
		t.Fatalf("a released breaker holds: %v, %v", ok, err)
	}
}
