package reconcile

// The periodic pass, a thousand users a call. Before it queues anyone, the
// pass reads the rev of every repo from the PDS's listRepos pages (up to
// 1,000 repos a call) and, from Mongo in two streamed reads, every
// binding's last clean pass and every user's moods digest. A user whose
// listed rev and moods digest are what their last clean pass recorded is
// not queued: there is nothing new to compare (incremental.go says why
// that is safe). Everyone else is queued for the one whole-user reconcile
// as before — a user with no clean pass, a changed rev or moods, an
// inactive repo, or one the listing lacks (their reconcile asks
// getRepoStatus for them, and reads the repo when anything changed). At a
// million users a daily pass is about a thousand listRepos calls, not a
// million getRepoStatus calls.

import (
	"context"
	"fmt"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// ListedRepo is one repo of a listRepos page.
type ListedRepo struct {
	DID    string
	Rev    string
	Active bool
}

// RepoLister pages through the repos the PDS hosts
// (com.atproto.sync.listRepos); next is "" after the last page.
type RepoLister interface {
	ListRepos(ctx context.Context, cursor string, limit int) (repos []ListedRepo, next string, err error)
}

// CleanState reads, in bulk, what a periodic pass compares with: every
// binding (with its last clean pass) and every user's moods digest
// (model.MoodsDigest; a user without moods may be absent).
type CleanState interface {
	AllBindings(ctx context.Context) (map[string]model.Binding, error)
	MoodDigests(ctx context.Context) (map[string]string, error)
}

// Unchanged finds the users a periodic pass need not queue.
type Unchanged struct {
	Repos RepoLister
	State CleanState
	// PageSize is the listRepos limit (default and most: 1000).
	PageSize int
}

// UnchangedResult is what Find read.
type UnchangedResult struct {
	Skip  map[string]bool // users unchanged since their last clean pass
	Pages int             // listRepos calls
	Repos int             // repos listed
}

// Find returns the users of accts whose repo rev (as listed) and moods are
// as their last clean pass saw them.
func (u *Unchanged) Find(ctx context.Context, accts []model.Account) (UnchangedResult, error) {
	res := UnchangedResult{Skip: map[string]bool{}}
	limit := u.PageSize
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	revs := map[string]string{} // DID → rev, active repos only
	for cursor := ""; ; {
		page, next, err := u.Repos.ListRepos(ctx, cursor, limit)
		if err != nil {
			return res, fmt.Errorf("listRepos: %w", err)
		}
		res.Pages++
		res.Repos += len(page)
		for _, r := range page {
			if r.Active && r.Rev != "" {
				revs[r.DID] = r.Rev
			}
		}
		if next == "" || len(page) == 0 || next == cursor {
			break
		}
		cursor = next
	}
	bindings, err := u.State.AllBindings(ctx)
	if err != nil {
		return res, fmt.Errorf("read bindings: %w", err)
	}
	digests, err := u.State.MoodDigests(ctx)
	if err != nil {
		return res, fmt.Errorf("read moods: %w", err)
	}
	empty := model.MoodsDigest(nil)
	for _, a := range accts {
		b, ok := bindings[a.User]
		rev, listed := revs[a.DID]
		if !ok || !listed || b.DID != a.DID || b.Clean == nil {
			continue
		}
		d, ok := digests[a.User]
		if !ok {
			d = empty
		}
		fp := model.CleanPass{Rev: rev, Moods: d}
		if fp.Same(b.Clean) {
			res.Skip[a.User] = true
		}
	}
	return res, nil
}
