package reconcile_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// TestPeriodicPassExportsOnlyWhatChanged, on the real PDS and the
// Mongo-wire store, counting getRepo at a proxy: after a clean pass, a
// periodic pass exports the repo of a user whose moods changed and of one
// whose repo changed, and not of one where neither did; a full pass
// exports every repo.
func TestPeriodicPassExportsOnlyWhatChanged(t *testing.T) {
	pds := devenv.NeedPDS(t)
	store := devenv.NewStore(t)
	proxy := devenv.NewProxy(t, pds.URL)
	e := reconcile.NewEngine(store, pdsclient.New(proxy.URL, store, nil), nil)
	ctx := context.Background()
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

	users := make([]*devenv.Account, 3) // unchanged, moods changed, repo changed
	for i := range users {
		users[i] = pds.CreateUser(t, store)
		id := devenv.InsertMood(t, store, users[i].User, "sunny", when)
		if err := e.SyncMoods(ctx, users[i].User, []string{id})[id]; err != nil {
			t.Fatal(err)
		}
	}
	exports := func() int { return proxy.Count("com.atproto.sync.getRepo") }
	periodic := func(cause reconcile.Cause) (read []int) {
		t.Helper()
		for i, u := range users {
			before := exports()
			out, err := e.ReconcileUser(ctx, u.User, cause, reconcile.ReconcileOptions{})
			if err != nil {
				t.Fatalf("reconcile %d: %v", i, err)
			}
			if n := exports() - before; n != 0 || !out.Unchanged {
				if n != 1 || out.Unchanged {
					t.Fatalf("user %d: %d getRepo calls, unchanged %v", i, n, out.Unchanged)
				}
				read = append(read, i)
			}
		}
		return read
	}

	if got := periodic(reconcile.CausePeriodic); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("first pass exported users %v, want all (no clean pass recorded yet)", got)
	}
	if got := periodic(reconcile.CausePeriodic); len(got) != 0 {
		t.Fatalf("nothing changed, yet users %v were exported", got)
	}

	// User 1's moods change in Mongo (the app soft-deletes one: nothing is
	// written to the repo by the app); user 2 writes to their repo (a
	// record of another collection: a new commit, no mood changed).
	moods, err := store.UserMoods(ctx, users[1].User)
	if err != nil || len(moods) != 1 {
		t.Fatalf("moods of user 1: %v, %v", moods, err)
	}
	devenv.SoftDelete(t, store, moods[0].ID)
	api, err := pds.Login(ctx, users[2])
	if err != nil {
		t.Fatal(err)
	}
	err = api.Post(ctx, syntax.NSID("com.atproto.repo.createRecord"), map[string]any{
		"repo": users[2].DID, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": "hello", "createdAt": time.Now().UTC().Format(time.RFC3339)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := periodic(reconcile.CausePeriodic); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("exported users %v, want 1 (moods changed) and 2 (repo changed), not 0", got)
	}
	// User 1's pass deleted the soft-deleted mood's record (a fix, so
	// nothing was recorded): looked at once more, then left alone.
	if got := periodic(reconcile.CausePeriodic); !slices.Equal(got, []int{1}) {
		t.Fatalf("exported users %v, want 1 (fixed last time)", got)
	}
	if recs := devenvRecords(t, pds, users[1].DID); len(recs) != 0 {
		t.Fatalf("the soft-deleted mood's record is still there: %+v", recs)
	}
	if got := periodic(reconcile.CausePeriodic); len(got) != 0 {
		t.Fatalf("nothing changed, yet users %v were exported", got)
	}
	if got := periodic(reconcile.CauseFull); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("a full pass exported users %v, want all", got)
	}
}

func devenvRecords(t *testing.T, pds *devenv.PDS, did string) []model.Record {
	t.Helper()
	recs, err := pds.Records(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
