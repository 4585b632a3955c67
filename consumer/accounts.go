package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// accounts is the DID → user map of `users.atproto.did`. The whole map is
// loaded at start and reloaded at most once per refresh interval, and only
// after a miss: a relay's stream of foreign DIDs costs one map lookup each,
// while a user whose row appears later (or whose DID stops being claimed
// twice) is picked up within the interval of the event that missed, even
// when no other event follows (Consumer.reloader). One DID is looked up
// directly on its #identity and #account events.
type accounts struct {
	store   Store
	refresh time.Duration
	// missed is set by a miss the map could not answer and cleared by a
	// load: a load is owed.
	missed atomic.Bool

	mu       sync.RWMutex
	byDID    map[string]model.Account
	loadedAt time.Time
	// conflicts is how many DIDs the last load left out because more than
	// one users row claims them.
	conflicts int
}

func newAccounts(store Store, refresh time.Duration) *accounts {
	return &accounts{store: store, refresh: refresh, byDID: map[string]model.Account{}}
}

// get returns the account of did from the map alone.
func (a *accounts) get(did string) (model.Account, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	acct, ok := a.byDID[did]
	return acct, ok
}

// hasBytes reports whether did is mapped (without allocating).
func (a *accounts) hasBytes(did []byte) bool {
	a.mu.RLock()
	_, ok := a.byDID[string(did)]
	a.mu.RUnlock()
	return ok
}

// stale reports whether a miss may reload the map.
func (a *accounts) stale(now time.Time) bool {
	return !now.Before(a.reloadAt())
}

// miss notes an event of a DID the map does not hold, dropped without a
// reload. It reports whether this is the first miss since the last load
// (the one to wake the reloader).
func (a *accounts) miss() bool {
	return !a.missed.Load() && !a.missed.Swap(true)
}

// reloadAt is when the map may be reloaded next.
func (a *accounts) reloadAt() time.Time {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.loadedAt.Add(a.refresh)
}

// load replaces the map with the store's users and returns the accounts
// that were not in it before (none on the first load).
func (a *accounts) load(ctx context.Context) ([]model.Account, error) {
	// Cleared before the read: a miss from here on may be of a row the
	// read does not see yet, and asks again.
	a.missed.Store(false)
	list, err := a.store.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	fresh := make(map[string]model.Account, len(list))
	claimed := map[string]int{}
	for _, acct := range list {
		if acct.DID != "" {
			fresh[acct.DID] = acct
			claimed[acct.DID]++
		}
	}
	// One DID, one user: a DID two rows claim is attributed to neither
	// until the rows are fixed (the engine refuses their writes too).
	a.conflicts = 0
	for did, n := range claimed {
		if n > 1 {
			delete(fresh, did)
			a.conflicts++
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var added []model.Account
	if !a.loadedAt.IsZero() {
		for did, acct := range fresh {
			if old, ok := a.byDID[did]; !ok || old.User != acct.User {
				added = append(added, acct)
			}
		}
	}
	a.byDID = fresh
	a.loadedAt = time.Now()
	return added, nil
}

// lookup reads one DID from the store and updates the map. added says the
// DID was not mapped to this user before.
func (a *accounts) lookup(ctx context.Context, did string) (acct *model.Account, added bool, err error) {
	acct, err = a.store.AccountByDID(ctx, did)
	if err != nil {
		return nil, false, err
	}
	if acct != nil {
		users, err := a.store.UsersOfDID(ctx, did)
		if err != nil {
			return nil, false, err
		}
		if len(users) > 1 {
			acct = nil // claimed twice: attributed to nobody
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, had := a.byDID[did]
	if acct == nil {
		delete(a.byDID, did)
		return nil, false, nil
	}
	a.byDID[did] = *acct
	return acct, !had || old.User != acct.User, nil
}

// all returns every mapped account.
func (a *accounts) all() []model.Account {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]model.Account, 0, len(a.byDID))
	for _, acct := range a.byDID {
		out = append(out, acct)
	}
	return out
}

// noteMiss notes an event dropped because its DID is not in the map and
// the map was loaded too recently to load again; the first such miss since
// a load wakes the reloader.
func (c *Consumer) noteMiss() {
	if c.accounts.miss() {
		select {
		case c.reloadKick <- struct{}{}:
		default:
		}
	}
}

// reloader loads the users map once the refresh interval is up after a
// miss the map could not answer. Without it, the dropped event of a user
// whose row appeared meanwhile waited for another miss, which on a quiet
// PDS might never come.
func (c *Consumer) reloader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reloadKick:
		}
		for c.accounts.missed.Load() {
			if !backoff.Sleep(ctx, time.Until(c.accounts.reloadAt())) {
				return
			}
			if err := c.reloadAccounts(ctx); err != nil {
				return // ctx ended
			}
		}
	}
}

// reloadAccounts loads the users map again, unless it was loaded within the
// refresh interval, and queues a reconcile of every user it finds new:
// their earlier events were dropped while their row was unknown (or their
// DID claimed twice). It returns an error only when ctx ends.
func (c *Consumer) reloadAccounts(ctx context.Context) error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	if !c.accounts.stale(time.Now()) {
		return nil
	}
	var added []model.Account
	err := c.retry(ctx, "reload users", func() error {
		var err error
		added, err = c.accounts.load(ctx)
		return err
	})
	if err != nil {
		return err
	}
	for _, acct := range added {
		if err := c.reconcileUser(ctx, acct, "new user"); err != nil {
			return err
		}
	}
	return nil
}
