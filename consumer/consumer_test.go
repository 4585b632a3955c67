package consumer

// Unit tests over a loopback firehose of generated, signed frames, with the
// store and the PDS in memory: the stream-level cases a real PDS will not
// produce on demand (undecodable records, forged commits, broken chains,
// tooBig, outdated and future cursors).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// soon bounds how long a loopback event may take to be handled.
const soon = 10 * time.Second

type rig struct {
	fh     *firehose
	dir    *identity.MockDirectory
	store  *reconciletest.Store
	pds    *reconciletest.PDS
	engine *reconcile.Engine
	queue  *workQueue
	sweep  *reconcile.Sweep
}

func newRig(t *testing.T) *rig {
	r := &rig{fh: newFirehose(t), dir: identity.NewMockDirectory(), store: reconciletest.NewStore(), pds: reconciletest.NewPDS()}
	r.engine = reconcile.NewEngine(r.store, r.pds, testLog(t))
	r.queue = newWorkQueue(t, r.engine)
	r.sweep = &reconcile.Sweep{Users: r.store, Queue: r.queue, State: r.store}
	// A stored cursor of 0: not a first start, so no all-users reconcile
	// unless a test asks for one.
	r.store.SaveCursor(context.Background(), r.fh.URL, 0)
	return r
}

// user makes a repo whose DID is in users.
func (r *rig) user(t *testing.T, name string) (*genRepo, model.Account) {
	acct := model.Account{User: "auth0|" + name, DID: "did:plc:" + name}
	r.store.PutAccount(acct)
	return newGenRepo(t, acct.DID, r.dir), acct
}

// mood adds a live mood of acct without a record.
func (r *rig) mood(acct model.Account, n int) string {
	id := fmt.Sprintf("507f1f77bcf86cd7994%05d", n)
	r.store.PutMood(model.Mood{ID: id, User: acct.User, Text: "sunny", When: time.Unix(0, 0)})
	return id
}

func (r *rig) start(t *testing.T, tweak func(*Config)) *running {
	t.Helper()
	cfg := Config{FirehoseURL: r.fh.URL, Directory: r.dir, Log: testLog(t), SaveEvery: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	return run(t, cfg, r.engine, r.store, r.queue, r.sweep)
}

// workQueue stands in for the reconcile intent subject and the publisher's
// workers behind it: Enqueue records the request and hands it to one worker
// that runs the engine's whole-user reconcile, as the publisher does. hold,
// while set, makes Enqueue wait (JetStream slow to acknowledge).
type workQueue struct {
	engine *reconcile.Engine
	work   chan string

	mu     sync.Mutex
	queued []string // "user cause"
	done   int      // reconciles finished
	hold   chan struct{}
}

func newWorkQueue(t *testing.T, e *reconcile.Engine) *workQueue {
	q := &workQueue{engine: e, work: make(chan string, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-q.work:
				user, cause, _ := strings.Cut(req, " ")
				_, _ = e.ReconcileUser(ctx, user, reconcile.Cause(cause), reconcile.ReconcileOptions{})
				q.mu.Lock()
				q.done++
				q.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return q
}

func (q *workQueue) Enqueue(ctx context.Context, user string, cause reconcile.Cause) error {
	q.mu.Lock()
	hold := q.hold
	q.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.mu.Lock()
	q.queued = append(q.queued, user+" "+string(cause))
	q.mu.Unlock()
	q.work <- user + " " + string(cause)
	return nil
}

// requests returns the requests so far.
func (q *workQueue) requests() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queued)
}

// idle reports whether every request has been carried out.
func (q *workQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.done == len(q.queued)
}

// handledAll waits until the consumer has handled every frame served.
func (r *rig) handledAll(t *testing.T, c *running) {
	t.Helper()
	want := r.fh.seq()
	devenv.Eventually(t, soon, fmt.Sprintf("handled through seq %d", want), func() bool { return c.Stats().Cursor >= want })
}

func TestConsumerAppliesVerifiedCommit(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	r.fh.add(
		commitFrame(t, g.commit(t, 1, g.postOp())),
		commitFrame(t, g.commit(t, 2, moodOp("3kh5dye2qpc2a", id))),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	if got := r.store.Mood(id).Rkey; got != "3kh5dye2qpc2a" {
		t.Fatalf("rkey %q", got)
	}
	s := c.Stats()
	if s.Commits != 2 || s.MoodOps != 1 || s.BadCommits != 0 || s.ChainBreaks != 0 || s.Verdicts[reconcile.ClassUnlinked] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConsumerSkipsUndecodableRecordAndGoesOn(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	notCBOR := genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2b", rawBody: []byte{0xff, 0x00, 0x13}}
	wrongType := genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2c", record: map[string]any{
		"$type": "computer.aesthetic.mood", "mood": int64(7), "when": "2025-10-14T19:30:00.000Z", "ref": id,
	}}
	r.fh.add(
		commitFrame(t, g.commit(t, 1, notCBOR)),
		commitFrame(t, g.commit(t, 2, wrongType)),
		commitFrame(t, g.commit(t, 3, moodOp("3kh5dye2qpc2d", id))),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	if n := c.Stats().Verdicts[reconcile.ClassInvalid]; n != 2 {
		t.Fatalf("invalid %d, want 2 (stats %+v)", n, c.Stats())
	}
	if got := r.store.Mood(id).Rkey; got != "3kh5dye2qpc2d" {
		t.Fatalf("the valid record after the bad ones was not applied: rkey %q", got)
	}
}

func TestConsumerDropsUnknownDIDs(t *testing.T) {
	r := newRig(t)
	_, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	stranger := newGenRepo(t, "did:plc:stranger", r.dir)
	r.fh.add(commitFrame(t, stranger.commit(t, 1, moodOp("3kh5dye2qpc2a", id))))
	c := r.start(t, nil)
	r.handledAll(t, c)
	if s := c.Stats(); s.Dropped != 1 || s.Commits != 0 || s.MoodOps != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got := r.store.Mood(id).Rkey; got != "" {
		t.Fatalf("a stranger's record set the rkey: %q", got)
	}
}

func TestConsumerDoesNotTrustForgedCommit(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("SkipVerify=%v", skip), func(t *testing.T) {
			r := newRig(t)
			g, alice := r.user(t, "alice")
			id := r.mood(alice, 1)
			// Sign with another key than the DID document names.
			forger := newGenRepo(t, "did:plc:forger", identity.NewMockDirectory())
			g.Key = forger.Key
			r.fh.add(commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", id))))
			c := r.start(t, func(cfg *Config) { cfg.SkipVerify = skip })
			r.handledAll(t, c)
			s := c.Stats()
			rkey := r.store.Mood(id).Rkey
			if skip {
				if rkey != "3kh5dye2qpc2a" || s.BadCommits != 0 {
					t.Fatalf("unverified mode must apply the op: rkey %q stats %+v", rkey, s)
				}
				return
			}
			// The repo, read by the reconcile the bad commit queued, has no
			// such record: the mood may get one written, never the forged.
			if rkey == "3kh5dye2qpc2a" || s.BadCommits != 1 || s.UserReconciles < 1 {
				t.Fatalf("a forged commit was trusted: rkey %q stats %+v", rkey, s)
			}
		})
	}
}

func TestConsumerBrokenChainReconcilesUser(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	first := g.commit(t, 1, g.postOp())
	g.commit(t, 99, moodOp("3kh5dye2qpc2a", id)) // never sent: the gap
	third := g.commit(t, 2, g.postOp())
	// What the repo holds after the gap, as listRecords would say.
	r.pds.Put(alice.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: model.RecordValue{
		Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: id,
	}})
	r.fh.add(commitFrame(t, first), commitFrame(t, third))
	c := r.start(t, nil)
	r.handledAll(t, c)
	s := c.Stats()
	if s.ChainBreaks != 1 || s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := r.queue.requests(); !slices.Equal(got, []string{alice.User + " gap"}) {
		t.Fatalf("queued %q, want one gap reconcile of alice", got)
	}
	devenv.Eventually(t, soon, "the queued reconcile repaired the missed record", func() bool {
		return r.store.Mood(id).Rkey == "3kh5dye2qpc2a"
	})
}

func TestConsumerTooBigReconcilesUser(t *testing.T) {
	r := newRig(t)
	g, _ := r.user(t, "alice")
	evt := g.commit(t, 1, g.postOp())
	evt.TooBig, evt.Blocks, evt.Ops = true, nil, nil
	r.fh.add(commitFrame(t, evt))
	c := r.start(t, nil)
	r.handledAll(t, c)
	if s := c.Stats(); s.TooBig != 1 || s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConsumerOutdatedCursorReconcilesEveryone(t *testing.T) {
	r := newRig(t)
	g, _ := r.user(t, "alice")
	r.user(t, "bob")
	name := "OutdatedCursor"
	r.fh.preamble = [][]byte{frame(t, "#info", &comatproto.SyncSubscribeRepos_Info{Name: name})}
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())), commitFrame(t, g.commit(t, 2, g.postOp())))
	r.store.SaveCursor(context.Background(), r.fh.URL, 1)
	c := r.start(t, nil)
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "every user queued", c.Ready)
	if s := c.Stats(); s.FullReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
	got := r.queue.requests()
	slices.Sort(got)
	if !slices.Equal(got, []string{"auth0|alice outdated-cursor", "auth0|bob outdated-cursor"}) {
		t.Fatalf("queued %q", got)
	}
	devenv.Eventually(t, soon, "cursor stored once every user is queued", func() bool { return c.Stats().SavedCursor == 2 })
}

// TestConsumerOutdatedCursorDuringASweep: an OutdatedCursor that arrives
// while a sweep of every user is still being queued is owed a sweep of its
// own: no cursor is stored and the consumer is not ready until JetStream
// has acknowledged that one too.
func TestConsumerOutdatedCursorDuringASweep(t *testing.T) {
	r := newRig(t)
	g, _ := r.user(t, "alice")
	r.user(t, "bob")
	r.store.DeleteCursor(context.Background(), r.fh.URL) // first start: a sweep is owed
	hold := make(chan struct{})
	r.queue.hold = hold
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())))
	c := r.start(t, nil)
	r.handledAll(t, c)
	// The first start's sweep is stuck on JetStream; the cursor turns out
	// outdated meanwhile.
	r.fh.add(frame(t, "#info", &comatproto.SyncSubscribeRepos_Info{Name: "OutdatedCursor"}))
	r.fh.add(commitFrame(t, g.commit(t, 2, g.postOp())))
	devenv.Eventually(t, soon, "handled through seq 2", func() bool { return c.Stats().Cursor >= 2 })
	if c.Ready() {
		t.Fatal("ready while sweeps are owed")
	}
	if s := c.Stats(); s.SavedCursor != 0 {
		t.Fatalf("cursor %d stored while sweeps are owed", s.SavedCursor)
	}
	r.queue.mu.Lock()
	r.queue.hold = nil
	r.queue.mu.Unlock()
	close(hold)
	devenv.Eventually(t, soon, "ready once both sweeps are queued", c.Ready)
	got := r.queue.requests()
	slices.Sort(got)
	want := []string{"auth0|alice first-start", "auth0|alice outdated-cursor", "auth0|bob first-start", "auth0|bob outdated-cursor"}
	if !slices.Equal(got, want) {
		t.Fatalf("queued %q, want %q", got, want)
	}
	devenv.Eventually(t, soon, "cursor stored", func() bool { return c.Stats().SavedCursor >= 1 })
}

func TestConsumerFutureCursorStartsOver(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	// A mood whose record the restored PDS no longer has.
	lost := r.mood(alice, 7)
	r.store.PutMood(model.Mood{ID: lost, User: alice.User, Text: "sunny", When: time.Unix(0, 0), Rkey: "3kh5dye2qpc2z"})
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())), commitFrame(t, g.commit(t, 2, g.postOp())))
	r.store.SaveCursor(context.Background(), r.fh.URL, 500) // the server was reset
	c := r.start(t, nil)
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "every user queued", c.Ready)
	if got := r.queue.requests(); !slices.Equal(got, []string{"auth0|alice future-cursor"}) {
		t.Fatalf("queued %q, want alice with the future-cursor cause", got)
	}
	if got := r.fh.connections(); len(got) < 2 || got[0] != "500" || got[1] != "" {
		t.Fatalf("connections with cursors %q, want 500 then none", got)
	}
	devenv.Eventually(t, soon, "new cursor stored", func() bool { return c.Stats().SavedCursor == 2 })
	if s := c.Stats(); s.FullReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
	devenv.Eventually(t, soon, "the lost record written again", func() bool {
		m := r.store.Mood(lost)
		return m.Rkey != "" && r.pds.Has(alice.DID, m.Rkey)
	})
	if m := r.store.Mood(lost); m.Deleted {
		t.Fatalf("a mood whose record the restored PDS lost was soft-deleted: %+v", m)
	}
}

// TestConsumerGoneDIDAffectsOnlyItsUser: the directory no longer knows
// ghost's DID (404): ghost's commits are skipped and counted, and alice's,
// before and after, are applied; the stream never stalls.
func TestConsumerGoneDIDAffectsOnlyItsUser(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	ghost := model.Account{User: "auth0|ghost", DID: "did:plc:ghost"}
	r.store.PutAccount(ghost)
	gg := newGenRepo(t, ghost.DID, identity.NewMockDirectory()) // not in the consumer's directory
	before, after := r.mood(alice, 1), r.mood(alice, 2)
	r.mood(ghost, 3)
	r.fh.add(
		commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", before))),
		commitFrame(t, gg.commit(t, 2, moodOp("3kh5dye2qpc2c", "507f1f77bcf86cd799400003"))),
		commitFrame(t, g.commit(t, 3, moodOp("3kh5dye2qpc2b", after))),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	if r.store.Mood(before).Rkey != "3kh5dye2qpc2a" || r.store.Mood(after).Rkey != "3kh5dye2qpc2b" {
		t.Fatalf("alice's ops not applied around ghost's: %+v %+v", r.store.Mood(before), r.store.Mood(after))
	}
	if s := c.Stats(); s.BadCommits != 1 {
		t.Fatalf("stats %+v: want ghost's commit counted as bad", s)
	}
}

// TestGoneIsNotFound: a directory's 410 Gone (a tombstoned did:plc) reads
// as indigo's ErrDIDNotFound, like a 404; a 5xx stays a failure to resolve.
func TestGoneIsNotFound(t *testing.T) {
	for _, c := range []struct {
		status   int
		notFound bool
	}{{http.StatusGone, true}, {http.StatusNotFound, true}, {http.StatusServiceUnavailable, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(c.status) }))
		dir := &identity.BaseDirectory{PLCURL: srv.URL, HTTPClient: http.Client{Transport: goneIsNotFound{http.DefaultTransport}}}
		_, err := dir.LookupDID(context.Background(), syntax.DID("did:plc:ghost"))
		srv.Close()
		if got := errors.Is(err, identity.ErrDIDNotFound); got != c.notFound {
			t.Errorf("HTTP %d: ErrDIDNotFound %v (%v), want %v", c.status, got, err, c.notFound)
		}
	}
}

func TestConsumerStoresCursorAndResumes(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())), commitFrame(t, g.commit(t, 2, g.postOp())))
	first := r.start(t, nil)
	r.handledAll(t, first)
	devenv.Eventually(t, soon, "cursor stored", func() bool { seq, _, _ := r.store.LoadCursor(context.Background(), r.fh.URL); return seq == 2 })
	first.kill()

	r.fh.add(commitFrame(t, g.commit(t, 3, moodOp("3kh5dye2qpc2a", id))))
	second := r.start(t, nil)
	r.handledAll(t, second)
	if conns := r.fh.connections(); conns[len(conns)-1] != "2" {
		t.Fatalf("resumed with cursor %q, want 2", conns[len(conns)-1])
	}
	if s := second.Stats(); s.FirstSeq != 3 || s.FullReconciles != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got := r.store.Mood(id).Rkey; got != "3kh5dye2qpc2a" {
		t.Fatalf("rkey %q", got)
	}
}

func TestConsumerAccountAndIdentityEvents(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	r.fh.add(commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", id))))
	c := r.start(t, nil)
	r.handledAll(t, c)

	// A user whose row appears after the consumer loaded users is found on
	// its #identity event and reconciled in full.
	carol := model.Account{User: "auth0|carol", DID: "did:plc:carol"}
	r.store.PutAccount(carol)
	r.fh.add(frame(t, "#identity", &comatproto.SyncSubscribeRepos_Identity{Did: carol.DID, Seq: 2, Time: "2025-10-14T19:30:00.000Z"}))
	r.handledAll(t, c)
	if s := c.Stats(); s.UserReconciles != 1 {
		t.Fatalf("new user not reconciled: %+v", s)
	}

	deleted := "deleted"
	r.fh.add(frame(t, "#account", &comatproto.SyncSubscribeRepos_Account{Did: alice.DID, Seq: 3, Active: false, Status: &deleted, Time: "2025-10-14T19:30:00.000Z"}))
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "carol's reconcile done", r.queue.idle)
	if m := r.store.Mood(id); m.Rkey != "" || m.Deleted {
		t.Fatalf("after #account deleted: %+v", m)
	}
	if s := c.Stats(); s.AccountsDeleted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConsumerFindsUserAddedLaterAndReconcilesThem(t *testing.T) {
	r := newRig(t)
	dave := model.Account{User: "auth0|dave", DID: "did:plc:dave"}
	g := newGenRepo(t, dave.DID, r.dir)
	c := r.start(t, func(cfg *Config) { cfg.AccountsRefresh = time.Millisecond })

	// Dave's first record went by before his users row existed.
	early := r.mood(dave, 1)
	r.fh.add(commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", early))))
	r.handledAll(t, c)
	if s := c.Stats(); s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}

	r.store.PutAccount(dave)
	r.pds.Put(dave.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: model.RecordValue{
		Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: early,
	}})
	later := r.mood(dave, 2)
	r.pds.Put(dave.DID, model.Record{Rkey: "3kh5dye2qpc2b", Value: model.RecordValue{
		Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: later,
	}})
	r.fh.add(commitFrame(t, g.commit(t, 2, moodOp("3kh5dye2qpc2b", later))))
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "the dropped record reconciled", func() bool { return r.store.Mood(early).Rkey == "3kh5dye2qpc2a" })
	// Linked from the stream, or by the queued reconcile if it ran first.
	devenv.Eventually(t, soon, "the later mood linked", func() bool { return r.store.Mood(later).Rkey == "3kh5dye2qpc2b" })
	if s := c.Stats(); s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestConsumerReloadsUsersAfterAMissWithNoEventAfterIt: a user's row
// written just after the users map was loaded; the user's one commit is
// dropped (the map may not be loaded again so soon) and nothing follows it.
// The map is loaded again when the interval is up all the same, and the
// user reconciled: without that, the record waited for another event.
func TestConsumerReloadsUsersAfterAMissWithNoEventAfterIt(t *testing.T) {
	r := newRig(t)
	erin := model.Account{User: "auth0|erin", DID: "did:plc:erin"}
	g := newGenRepo(t, erin.DID, r.dir)
	c := r.start(t, func(cfg *Config) { cfg.AccountsRefresh = time.Second })
	// Connected: the map was loaded before.
	devenv.Eventually(t, soon, "connected", c.connected.Load)

	r.store.PutAccount(erin)
	id := r.mood(erin, 1)
	r.pds.Put(erin.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: record(id)})
	r.fh.add(commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", id))))
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "the user reconciled after the reload", func() bool { return r.store.Mood(id).Rkey == "3kh5dye2qpc2a" })
	if s := c.Stats(); s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestConsumerChecksOnlyDeletesOutOfOrder: a delete in a commit that
// follows the repo's last commit seen is taken as it is; the first commit
// of a repo after a (re)start may be a replay, so its delete is checked
// against the repo, which here still holds the record: the mood stays.
func TestConsumerChecksOnlyDeletesOutOfOrder(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	h, bob := r.user(t, "bob")
	a, b := r.mood(alice, 1), r.mood(bob, 2)
	r.fh.add(
		commitFrame(t, g.commit(t, 1, moodOp("3kh5dye2qpc2a", a))),
		commitFrame(t, h.commit(t, 2, moodOp("3kh5dye2qpc2b", b))),
	)
	c := r.start(t, nil)
	r.handledAll(t, c)
	c.kill()
	// The repos, read over XRPC, still hold both records (the deletes are
	// stale, or written over since).
	r.pds.Put(alice.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: model.RecordValue{Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: a}})
	r.pds.Put(bob.DID, model.Record{Rkey: "3kh5dye2qpc2b", Value: model.RecordValue{Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: b}})

	// Alice's delete follows a commit this consumer sees; bob's is the
	// first of his repo it sees.
	r.fh.add(
		commitFrame(t, g.commit(t, 3, g.postOp())),
		commitFrame(t, g.commit(t, 4, genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2a", delete: true})),
		commitFrame(t, h.commit(t, 5, genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2b", delete: true})),
	)
	r.store.SaveCursor(context.Background(), r.fh.URL, 2)
	c = r.start(t, nil)
	r.handledAll(t, c)
	if m := r.store.Mood(a); !m.Deleted {
		t.Fatalf("alice's mood after an in-order delete: %+v", m)
	}
	if m := r.store.Mood(b); m.Deleted || m.Rkey != "3kh5dye2qpc2b" {
		t.Fatalf("bob's mood after a delete first seen, its record still there: %+v", m)
	}
}

// TestConsumerReplayedDeleteAfterRestartReadsFirst: a run handles a create,
// a post and a delete of one repo, and stops before storing its cursor. The
// mood is then linked to the same key again (its record written again at
// its deterministic key). The next run replays the same commits from the
// older cursor: they follow each other, but their seqs are within what an
// earlier run may have handled, so the delete reads the record first — it
// is there — and the live mood stays.
func TestConsumerReplayedDeleteAfterRestartReadsFirst(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	a := r.mood(alice, 1)
	const key = "3kh5dye2qpc2a"
	r.fh.add(
		commitFrame(t, g.commit(t, 1, moodOp(key, a))),
		commitFrame(t, g.commit(t, 2, g.postOp())),
		commitFrame(t, g.commit(t, 3, genOp{path: "computer.aesthetic.mood/" + key, delete: true})),
	)
	c := r.start(t, func(cfg *Config) { cfg.SaveEvery = time.Hour })
	r.handledAll(t, c)
	if m := r.store.Mood(a); !m.Deleted {
		t.Fatalf("the first run's delete: %+v", m)
	}
	c.kill() // no cursor stored past 0
	// Linked again since: live, at the same key, its record back.
	r.store.PutMood(model.Mood{ID: a, User: alice.User, Text: "sunny", When: time.Unix(0, 0), Rkey: key})
	r.pds.Put(alice.DID, model.Record{Rkey: key, Value: record(a)})
	c = r.start(t, nil)
	r.handledAll(t, c)
	if m := r.store.Mood(a); m.Deleted || m.Rkey != key {
		t.Fatalf("a replayed delete took a live mood: %+v", m)
	}
}
