package reconcile

import "sync"

// userLocks serialises work on one user inside the process. An entry lives
// only while someone holds or waits for it, so the map is bounded by the
// work in flight, not by the number of users (or user strings in bad
// intents) ever seen.
type userLocks struct {
	mu    sync.Mutex
	users map[string]*userLock
}

type userLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by userLocks.mu
}

// lock locks user and returns the unlock function.
func (l *userLocks) lock(user string) func() {
	l.mu.Lock()
	if l.users == nil {
		l.users = map[string]*userLock{}
	}
	ul := l.users[user]
	if ul == nil {
		ul = &userLock{}
		l.users[user] = ul
	}
	ul.refs++
	l.mu.Unlock()

	ul.Lock()
	return func() {
		ul.Unlock()
		l.mu.Lock()
		if ul.refs--; ul.refs == 0 {
			delete(l.users, user)
		}
		l.mu.Unlock()
	}
}

// held is how many users have an entry (tests).
func (l *userLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// LockedUsers is how many users the engine holds a lock entry for: those
// with work in flight (tests, and a check that nothing leaks).
func (e *Engine) LockedUsers() int { return e.locks.held() }
