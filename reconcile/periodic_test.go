package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// fakeLister serves listRepos pages of a fixed set of repos and counts the
// calls.
type fakeLister struct {
	mu    sync.Mutex
	repos []reconcile.ListedRepo
	calls int
}

func (f *fakeLister) ListRepos(_ context.Context, cursor string, limit int) ([]reconcile.ListedRepo, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	start := 0
	if cursor != "" {
		fmt.Sscan(cursor, &start)
	}
	end := min(start+limit, len(f.repos))
	next := ""
	if end < len(f.repos) {
		next = fmt.Sprint(end)
	}
	return slices.Clone(f.repos[start:end]), next, nil
}

// TestPeriodicPassQueuesOnlyWhatChanged: the periodic pass reads revs from
// listRepos pages and the clean passes and moods digests in bulk, and
// queues only the users whose listed rev or moods changed since their last
// clean pass, who have none, whose repo is inactive, or whom the listing
// lacks; a full pass queues everyone.
func TestPeriodicPassQueuesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	store := reconciletest.NewStore()
	lister := &fakeLister{}
	users := []string{"same", "newrev", "newmood", "noclean", "unlisted", "inactive", "rebound"}
	for i, u := range users {
		acct := model.Account{User: "auth0|" + u, DID: "did:plc:" + u}
		store.PutAccount(acct)
		store.PutMood(model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994%05d", i), User: acct.User, Text: "sunny", When: time.Unix(0, 0)})
		moods, _ := store.UserMoods(ctx, acct.User)
		did := acct.DID
		if u == "rebound" {
			did = "did:plc:someoneelse"
		}
		if _, err := store.Bind(ctx, acct.User, did, ""); err != nil {
			t.Fatal(err)
		}
		if u != "noclean" {
			if err := store.SetCleanPass(ctx, acct.User, did, model.CleanPass{Rev: "rev1", Moods: model.MoodsDigest(moods)}); err != nil {
				t.Fatal(err)
			}
		}
		rev := "rev1"
		if u == "newrev" {
			rev = "rev2"
		}
		if u != "unlisted" {
			lister.repos = append(lister.repos, reconcile.ListedRepo{DID: acct.DID, Rev: rev, Active: u != "inactive"})
		}
		if u == "newmood" {
			store.PutMood(model.Mood{ID: "507f1f77bcf86cd799499999", User: acct.User, Text: "new", When: time.Unix(0, 0)})
		}
	}
	for i := 0; i < 5; i++ { // repos of no user
		lister.repos = append(lister.repos, reconcile.ListedRepo{DID: fmt.Sprintf("did:plc:other%d", i), Rev: "x", Active: true})
	}
	q := &memQueue{}
	sw := &reconcile.Sweep{Users: store, Queue: q, State: &memCursors{seq: map[string]int64{}},
		Unchanged: &reconcile.Unchanged{Repos: lister, State: store, PageSize: 3}}
	n, err := sw.Ensure(ctx, reconcile.CausePeriodic, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"auth0|inactive periodic", "auth0|newmood periodic", "auth0|newrev periodic", "auth0|noclean periodic", "auth0|rebound periodic", "auth0|unlisted periodic"}
	got := slices.Clone(q.queued)
	sort.Strings(got)
	if n != len(want) || !slices.Equal(got, want) {
		t.Fatalf("queued %d: %q, want %q", n, got, want)
	}
	if lister.calls != 4 { // 11 repos, 3 a page
		t.Fatalf("%d listRepos calls, want 4", lister.calls)
	}
	q.queued = nil
	if n, err := sw.Ensure(ctx, reconcile.CauseFull, time.Time{}); err != nil || n != len(users) {
		t.Fatalf("full pass queued %d, %v", n, err)
	}
}
