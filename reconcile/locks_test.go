package reconcile

import (
	"fmt"
	"sync"
	"testing"
)

// TestUserLocksReleased: the lock table holds an entry only while a user's
// lock is held or awaited, and serialises one user's work.
func TestUserLocksReleased(t *testing.T) {
	var l userLocks
	for i := range 1000 {
		l.lock(fmt.Sprintf("user-%d", i))()
	}
	if n := l.held(); n != 0 {
		t.Fatalf("%d entries left after every lock was released", n)
	}
	var wg sync.WaitGroup
	counter := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.lock("same")()
			counter++ // the race detector fails this if the lock does not serialise
		}()
	}
	wg.Wait()
	if counter != 50 || l.held() != 0 {
		t.Fatalf("counter %d, entries %d", counter, l.held())
	}
}
