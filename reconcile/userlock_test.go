package reconcile

import (
	"strconv"
	"sync"
	"testing"
)

// LockedUsers is how many users' locks the engine keeps (for tests of
// package reconcile_test).
func (e *Engine) LockedUsers() int { return e.userLocks.size() }

func TestKeyedMutexExcludesPerKeyAndForgetsReleasedKeys(t *testing.T) {
	var k keyedMutex
	const keys, workers, rounds = 8, 4, 200
	var counts [keys]int // each guarded by its key's lock; the race detector checks it
	var wg sync.WaitGroup
	for i := range keys {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					unlock := k.lock("user" + strconv.Itoa(i))
					counts[i]++
					unlock()
				}
			}()
		}
	}
	wg.Wait()
	for i, n := range counts {
		if n != workers*rounds {
			t.Errorf("key %d: %d increments, want %d", i, n, workers*rounds)
		}
	}
	if n := k.size(); n != 0 {
		t.Fatalf("%d keys kept after every lock was released", n)
	}

	unlock := k.lock("held")
	if n := k.size(); n != 1 {
		t.Fatalf("%d keys while one is held, want 1", n)
	}
	unlock()
	if n := k.size(); n != 0 {
		t.Fatalf("%d keys after release, want 0", n)
	}
}
