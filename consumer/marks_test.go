package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// boundUser is r.user, bound to its DID as the engine's first write binds
// it: marks go on bindings.
func (r *rig) boundUser(t *testing.T, name string) (*genRepo, model.Account) {
	g, acct := r.user(t, name)
	if _, err := r.store.Bind(context.Background(), acct.User, acct.DID, ""); err != nil {
		t.Fatal(err)
	}
	return g, acct
}

// TestLastEventIsRecorded: commits and #account events of a user land on
// their binding as the last firehose event; a stranger's make no mark.
func TestLastEventIsRecorded(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	g, alice := r.boundUser(t, "alice")
	stranger := newGenRepo(t, "did:plc:stranger", r.dir)
	r.fh.add(
		commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", r.mood(alice, 1)))),
		commitFrame(t, stranger.commit(t, 2, g.postOp())),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	last := func() *model.EventMark {
		b, err := r.store.Binding(ctx, alice.User)
		if err != nil || b == nil {
			t.Fatalf("binding %v, %v", b, err)
		}
		return b.LastEvent
	}
	if m := last(); m == nil || m.Kind != model.EventCommit || m.Seq != 1 || m.At.IsZero() {
		t.Fatalf("after alice's commit: %+v", m)
	}
	deactivated := model.StatusDeactivated
	r.fh.add(frame(t, "#account", &comatproto.SyncSubscribeRepos_Account{Did: alice.DID, Seq: 3, Active: false, Status: &deactivated, Time: "2025-10-14T19:30:00.000Z"}))
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "the #account event recorded", func() bool {
		m := last()
		return m != nil && m.Kind == model.EventAccount && m.Seq == 3
	})
}

// TestLastCommitIsRecordedOnceAMinute: a DID's commits are written at most
// once every noteEvery; account events always; a DID not bound yet is
// throttled as well (a write per commit of a busy unbound user is what it
// saves): its binding gets its first mark a minute after the last ask.
func TestLastCommitIsRecordedOnceAMinute(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_, alice := r.user(t, "alice")
	c, err := New(Config{FirehoseURL: r.fh.URL, Directory: r.dir}, r.engine, r.store, r.queue, r.sweep)
	if err != nil {
		t.Fatal(err)
	}
	// note is noteEvent with the queued write done at once (no markWriter
	// runs here).
	note := func(did, kind string, seq int64, at time.Time) {
		c.noteEvent(did, kind, seq, at)
		for len(c.marks) > 0 {
			c.writeMark(ctx, <-c.marks)
		}
	}
	t0 := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	note(alice.DID, model.EventCommit, 0, t0.Add(-noteEvery))
	if _, err := r.store.Bind(ctx, alice.User, alice.DID, ""); err != nil {
		t.Fatal(err)
	}
	seqOf := func() int64 {
		b, _ := r.store.Binding(ctx, alice.User)
		if b.LastEvent == nil {
			return -1
		}
		return b.LastEvent.Seq
	}
	steps := []struct {
		kind string
		seq  int64
		at   time.Time
		want int64
	}{
		{model.EventCommit, 1, t0.Add(-time.Second), -1}, // within a minute of the unbound ask
		{model.EventCommit, 1, t0, 1},
		{model.EventCommit, 2, t0.Add(noteEvery - time.Second), 1}, // throttled
		{model.EventAccount, 3, t0.Add(noteEvery - time.Second), 3},
		{model.EventCommit, 4, t0.Add(noteEvery), 3}, // within a minute of the account event's write
		{model.EventCommit, 5, t0.Add(2*noteEvery - time.Second), 5},
	}
	for _, s := range steps {
		note(alice.DID, s.kind, s.seq, s.at)
		if got := seqOf(); got != s.want {
			t.Fatalf("after %s %d at +%s: last event seq %d, want %d", s.kind, s.seq, s.at.Sub(t0), got, s.want)
		}
	}
}

// stuckMarks is a store whose NoteEvent waits for release (or its
// deadline): Mongo slow to take a write.
type stuckMarks struct {
	Store
	release  chan struct{}
	returned atomic.Int64
}

func (s *stuckMarks) NoteEvent(ctx context.Context, did string, mark model.EventMark) error {
	defer s.returned.Add(1)
	select {
	case <-s.release:
		return s.Store.NoteEvent(ctx, did, mark)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLastEventMarkNeverHoldsTheStream: the marks are written beside the
// stream, not in it. With every mark write stuck, the commits of 30 bound
// users are all handled before the first write returns; released, the
// marks land.
func TestLastEventMarkNeverHoldsTheStream(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	var users []model.Account
	for i := range 30 {
		g, acct := r.boundUser(t, fmt.Sprintf("user%02d", i))
		r.fh.add(commitFrame(t, g.commit(t, int64(i+1), g.postOp())))
		users = append(users, acct)
	}
	store := &stuckMarks{Store: r.store, release: make(chan struct{})}
	c := run(t, Config{FirehoseURL: r.fh.URL, Directory: r.dir, Log: testLog(t), SaveEvery: 50 * time.Millisecond}, r.engine, store, r.queue, r.sweep)
	r.handledAll(t, c)
	if n := store.returned.Load(); n != 0 {
		t.Fatalf("%d mark writes returned before the stream was handled: the stream waited for them", n)
	}
	close(store.release)
	devenv.Eventually(t, soon, "every user's commit marked", func() bool {
		for _, u := range users {
			if b, err := r.store.Binding(ctx, u.User); err != nil || b == nil || b.LastEvent == nil {
				return false
			}
		}
		return true
	})
}

// TestLastEventMarkDroppedWhenQueueFull: a mark that finds the queue full is
// dropped, not waited for, and asked again at the DID's next commit.
func TestLastEventMarkDroppedWhenQueueFull(t *testing.T) {
	r := newRig(t)
	c, err := New(Config{FirehoseURL: r.fh.URL, Directory: r.dir}, r.engine, r.store, r.queue, r.sweep)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range marksQueued {
		c.noteEvent(fmt.Sprintf("did:plc:q%04d", i), model.EventCommit, int64(i+1), t0)
	}
	c.noteEvent("did:plc:late", model.EventCommit, marksQueued+1, t0)
	if _, ok := c.noted["did:plc:late"]; ok {
		t.Fatal("a dropped mark counted as written: its DID would wait a minute for the next")
	}
	<-c.marks
	c.noteEvent("did:plc:late", model.EventCommit, marksQueued+2, t0.Add(time.Second))
	if _, ok := c.noted["did:plc:late"]; !ok || len(c.marks) != marksQueued {
		t.Fatalf("the next commit's mark was not queued: noted %v, %d queued", ok, len(c.marks))
	}
}
