package reconcile_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// TestEngineKeepsNoLockOfUsersItIsDoneWith: intents naming ever new users
// (anyone can publish one) leave nothing behind in the engine.
func TestEngineKeepsNoLockOfUsersItIsDoneWith(t *testing.T) {
	e := reconcile.NewEngine(reconciletest.NewStore(), reconciletest.NewPDS(), nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := "auth0|stranger" + strconv.Itoa(i)
			for id, err := range e.SyncMoods(ctx, user, []string{"507f1f77bcf86cd799439011"}) {
				if err != nil && !model.IsPermanent(err) {
					t.Errorf("mood %s of %s: %v", id, user, err)
				}
			}
			if err := e.Purge(ctx, user, "", time.Time{}); err != nil {
				t.Errorf("purge %s: %v", user, err)
			}
		}()
	}
	wg.Wait()
	if n := e.LockedUsers(); n != 0 {
		t.Fatalf("the engine keeps the locks of %d users it is done with", n)
	}
}
