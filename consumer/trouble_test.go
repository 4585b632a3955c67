package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// troubledEngine is the rig's engine, except that the firehose ops of one
// DID fail (fail) or wait (hold) while the test says so.
type troubledEngine struct {
	*reconcile.Engine
	did string

	mu    sync.Mutex
	fail  error
	hold  chan struct{}
	tries int
}

func (e *troubledEngine) trouble() (error, chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fail, e.hold
}

func (e *troubledEngine) ApplyUpsert(ctx context.Context, acct model.Account, op reconcile.Upsert, opts ...reconcile.Option) (reconcile.Class, error) {
	if acct.DID == e.did {
		e.mu.Lock()
		e.tries++
		e.mu.Unlock()
		fail, hold := e.trouble()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		if fail != nil {
			return "", fail
		}
	}
	return e.Engine.ApplyUpsert(ctx, acct, op, opts...)
}

func (e *troubledEngine) attempts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tries
}

// troubleRig: alice's ops go to a troubled engine, bob's pass.
func troubleRig(t *testing.T) (*rig, *troubledEngine, *genRepo, model.Account, *genRepo, model.Account) {
	r := newRig(t)
	ga, alice := r.user(t, "alice")
	gb, bob := r.user(t, "bob")
	return r, &troubledEngine{Engine: r.engine, did: alice.DID}, ga, alice, gb, bob
}

func (r *rig) startOn(t *testing.T, e Engine, cfg Config) *running {
	t.Helper()
	cfg.FirehoseURL, cfg.Directory, cfg.Log = r.fh.URL, r.dir, testLog(t)
	cfg.SaveEvery, cfg.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	return run(t, cfg, e, r.store, r.queue, r.sweep)
}

// TestFailingOpOfOneRepoIsHandedOff: alice's op keeps failing (the PDS
// answering 500 for her repo, say). Within its bound the follower hands
// her to the reconcile queue and goes on: bob's ops after hers are
// applied while hers still fail, her later commits are not tried while
// she is in trouble (each queues a reconcile), and the cursor moves past
// them all. The queued reconcile converges alice.
func TestFailingOpOfOneRepoIsHandedOff(t *testing.T) {
	r, e, ga, alice, gb, bob := troubleRig(t)
	e.fail = &model.TransportError{Err: errors.New("API request failed (HTTP 500)")}
	stuck := r.mood(alice, 1)
	later := r.mood(alice, 2)
	r.pds.Put(alice.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: record(stuck)})
	r.pds.Put(alice.DID, model.Record{Rkey: "3kh5dye2qpc2b", Value: record(later)})
	seq := int64(1)
	r.fh.add(commitFrame(t, ga.commit(t, seq, moodOp("3kh5dye2qpc2a", stuck))))
	var bobs []string
	for i := range 20 {
		id := r.mood(bob, 100+i)
		bobs = append(bobs, id)
		seq++
		r.fh.add(commitFrame(t, gb.commit(t, seq, moodOp(fmt.Sprintf("3kh5dye2qpd%02d", i), id))))
		if i == 10 {
			seq++
			r.fh.add(commitFrame(t, ga.commit(t, seq, moodOp("3kh5dye2qpc2b", later))))
		}
	}
	c := r.startOn(t, e, Config{OpBound: 300 * time.Millisecond, TroubleHold: time.Hour})
	r.handledAll(t, c)
	// Still failing, and yet every event is handled and bob is applied.
	if err, _ := e.trouble(); err == nil {
		t.Fatal("the failure was lifted")
	}
	for _, id := range bobs {
		if r.store.Mood(id).Rkey == "" {
			t.Fatalf("bob's mood %s not applied behind alice's failing op", id)
		}
	}
	s := c.Stats()
	if s.HandOffs != 2 {
		t.Fatalf("hand-offs %d, want 2 (the failing op, then alice's commit while in trouble): %+v", s.HandOffs, s)
	}
	if n := e.attempts(); n < 1 || n > 10 {
		t.Fatalf("alice's op tried %d times: want a few retries within the bound, not one per commit", n)
	}
	if got := r.queue.requests(); !slices.Equal(got, []string{alice.User + " gap", alice.User + " gap"}) {
		t.Fatalf("queued %q, want alice's reconcile at each hand-off", got)
	}
	devenv.Eventually(t, soon, "the cursor stored past alice's ops", func() bool { return c.Stats().SavedCursor == r.fh.seq() })
	// The reconcile the hand-off queued (the publisher's, which retries a
	// user in trouble with a backoff of its own) converges alice.
	devenv.Eventually(t, soon, "alice converged by the queued reconcile", func() bool {
		return r.store.Mood(stuck).Rkey == "3kh5dye2qpc2a" && r.store.Mood(later).Rkey == "3kh5dye2qpc2b"
	})
}

// TestSlowOpIsAbandonedToTheBackground: alice's op hangs (her lock held by
// a long batch, a PDS that does not answer). Past the bound the follower
// hands her off and applies bob's ops; when the op returns, alice is
// queued again, so a reconcile runs after whatever it did.
func TestSlowOpIsAbandonedToTheBackground(t *testing.T) {
	r, e, ga, alice, gb, bob := troubleRig(t)
	hold := make(chan struct{})
	e.hold = hold
	mine := r.mood(alice, 1)
	theirs := r.mood(bob, 2)
	r.fh.add(
		commitFrame(t, ga.commit(t, 1, moodOp("3kh5dye2qpc2a", mine))),
		commitFrame(t, gb.commit(t, 2, moodOp("3kh5dye2qpc2b", theirs))),
	)
	c := r.startOn(t, e, Config{OpBound: 200 * time.Millisecond})
	r.handledAll(t, c)
	if r.store.Mood(theirs).Rkey != "3kh5dye2qpc2b" {
		t.Fatal("bob's op not applied while alice's hung")
	}
	if got := r.queue.requests(); !slices.Equal(got, []string{alice.User + " gap"}) {
		t.Fatalf("queued %q, want one reconcile of alice", got)
	}
	close(hold)
	devenv.Eventually(t, soon, "alice queued again once her op returned", func() bool {
		return len(r.queue.requests()) == 2
	})
}

// TestGoneDIDOfAKnownUserQueuesOneReconcile: a commit of a user whose DID
// the directory no longer resolves is not skipped silently: one reconcile
// of the user is queued, and the repo's further commits (while in trouble)
// add none.
func TestGoneDIDOfAKnownUserQueuesOneReconcile(t *testing.T) {
	r := newRig(t)
	ghost := model.Account{User: "auth0|ghost", DID: "did:plc:ghost"}
	r.store.PutAccount(ghost)
	gg := newGenRepo(t, ghost.DID, identity.NewMockDirectory()) // not in the consumer's directory
	r.fh.add(
		commitFrame(t, gg.commit(t, 1, moodOp("3kh5dye2qpc2c", "507f1f77bcf86cd799400003"))),
		commitFrame(t, gg.commit(t, 2, moodOp("3kh5dye2qpc2d", "507f1f77bcf86cd799400004"))),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	if got := r.queue.requests(); !slices.Equal(got, []string{ghost.User + " gap"}) {
		t.Fatalf("queued %q, want one reconcile of ghost", got)
	}
	if s := c.Stats(); s.BadCommits != 2 || s.HandOffs != 1 {
		t.Fatalf("stats %+v: want both commits counted bad, one hand-off", s)
	}
}

func record(id string) model.RecordValue {
	return model.RecordValue{Type: model.Collection, Mood: "sunny", When: "1970-01-01T00:00:00.000Z", Ref: id}
}
