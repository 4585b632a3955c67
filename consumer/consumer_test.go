package consumer

// Unit tests over a loopback firehose of generated, signed frames, with the
// store and the PDS in memory: the stream-level cases a real PDS will not
// produce on demand (undecodable records, forged commits, broken chains,
// tooBig, outdated and future cursors).

import (
	"context"
	"fmt"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"

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
}

func newRig(t *testing.T) *rig {
	r := &rig{fh: newFirehose(t), dir: identity.NewMockDirectory(), store: reconciletest.NewStore(), pds: reconciletest.NewPDS()}
	r.engine = reconcile.NewEngine(r.store, r.pds, testLog(t))
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
	return run(t, cfg, r.engine, r.store)
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
	if s.Commits != 2 || s.MoodOps != 1 || s.BadCommits != 0 || s.ChainBreaks != 0 || s.Verdicts[reconcile.VerdictRepair] != 1 {
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
	if n := c.Stats().Verdicts[reconcile.VerdictInvalid]; n != 2 {
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
			g.key = forger.key
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
			if rkey != "" || s.BadCommits != 1 || s.UserReconciles < 1 {
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
	if got := r.store.Mood(id).Rkey; got != "3kh5dye2qpc2a" {
		t.Fatalf("the reconcile did not repair the missed record: rkey %q", got)
	}
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
	devenv.Eventually(t, soon, "every user reconciled", c.Ready)
	if s := c.Stats(); s.FullReconciles != 1 || s.UserReconciles != 2 {
		t.Fatalf("stats %+v", s)
	}
	devenv.Eventually(t, soon, "cursor stored once the reconcile is done", func() bool { return c.Stats().SavedCursor == 2 })
}

func TestConsumerFutureCursorStartsOver(t *testing.T) {
	r := newRig(t)
	g, _ := r.user(t, "alice")
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())), commitFrame(t, g.commit(t, 2, g.postOp())))
	r.store.SaveCursor(context.Background(), r.fh.URL, 500) // the server was reset
	c := r.start(t, nil)
	r.handledAll(t, c)
	devenv.Eventually(t, soon, "every user reconciled", c.Ready)
	if got := r.fh.connections(); len(got) < 2 || got[0] != "500" || got[1] != "" {
		t.Fatalf("connections with cursors %q, want 500 then none", got)
	}
	devenv.Eventually(t, soon, "new cursor stored", func() bool { return c.Stats().SavedCursor == 2 })
	if s := c.Stats(); s.FullReconciles != 1 {
		t.Fatalf("stats %+v", s)
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
	r.fh.add(commitFrame(t, g.commit(t, 2, moodOp("3kh5dye2qpc2b", later))))
	r.handledAll(t, c)
	if got := r.store.Mood(early).Rkey; got != "3kh5dye2qpc2a" {
		t.Fatalf("the dropped record was not reconciled: rkey %q", got)
	}
	if got := r.store.Mood(later).Rkey; got != "3kh5dye2qpc2b" {
		t.Fatalf("rkey %q", got)
	}
	if s := c.Stats(); s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
}
