package consumer

// Fuzz targets for what the consumer reads from the network: whole frames
// (as the read loop decodes and handles them), the CAR slices inside them,
// and record bodies. FuzzLeanDecoder (frame_test.go) holds the lean
// decoder to indigo's. Without -fuzz they run their
// seed corpus as ordinary tests.

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/events"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// decodeFrame decodes one websocket message the way HandleRepoStream does.
func decodeFrame(data []byte) (*events.XRPCStreamEvent, error) {
	r := bytes.NewReader(data)
	var h events.EventHeader
	if err := h.UnmarshalCBOR(r); err != nil {
		return nil, err
	}
	var xev events.XRPCStreamEvent
	var err error
	switch {
	case h.Op == events.EvtKindErrorFrame:
		xev.Error = &events.ErrorFrame{}
		err = xev.Error.UnmarshalCBOR(r)
	case h.Op != events.EvtKindMessage:
		return nil, fmt.Errorf("op %d", h.Op)
	case h.MsgType == "#commit":
		xev.RepoCommit = &comatproto.SyncSubscribeRepos_Commit{}
		err = xev.RepoCommit.UnmarshalCBOR(r)
	case h.MsgType == "#sync":
		xev.RepoSync = &comatproto.SyncSubscribeRepos_Sync{}
		err = xev.RepoSync.UnmarshalCBOR(r)
	case h.MsgType == "#identity":
		xev.RepoIdentity = &comatproto.SyncSubscribeRepos_Identity{}
		err = xev.RepoIdentity.UnmarshalCBOR(r)
	case h.MsgType == "#account":
		xev.RepoAccount = &comatproto.SyncSubscribeRepos_Account{}
		err = xev.RepoAccount.UnmarshalCBOR(r)
	case h.MsgType == "#info":
		xev.RepoInfo = &comatproto.SyncSubscribeRepos_Info{}
		err = xev.RepoInfo.UnmarshalCBOR(r)
	default:
		return nil, fmt.Errorf("type %q", h.MsgType)
	}
	return &xev, err
}

// seedFrames are real frames of every kind the consumer handles, for a
// repo of the user auth0|alice (mood 507f1f77bcf86cd799400001).
func seedFrames(t testing.TB, dir *identity.MockDirectory) [][]byte {
	g := newGenRepo(t, "did:plc:alice", dir)
	const id = "507f1f77bcf86cd799400001"
	deleted := "deleted"
	c1 := g.commit(t, 1, moodOp("3kh5dye2qpc2a", id), g.postOp())
	c2 := g.commit(t, 2, genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2a", delete: true})
	c3 := g.commit(t, 3, genOp{path: "computer.aesthetic.mood/3kh5dye2qpc2b", rawBody: []byte{0xa1, 0x64}})
	tooBig := g.commit(t, 4, g.postOp())
	tooBig.TooBig = true
	return [][]byte{
		commitFrame(t, c1), commitFrame(t, c2), commitFrame(t, c3), commitFrame(t, tooBig),
		frame(t, "#sync", &comatproto.SyncSubscribeRepos_Sync{Did: g.did, Rev: c1.Rev, Seq: 5, Blocks: c1.Blocks, Time: c1.Time}),
		frame(t, "#identity", &comatproto.SyncSubscribeRepos_Identity{Did: g.did, Seq: 6, Time: c1.Time}),
		frame(t, "#account", &comatproto.SyncSubscribeRepos_Account{Did: g.did, Seq: 7, Status: &deleted, Time: c1.Time}),
		frame(t, "#info", &comatproto.SyncSubscribeRepos_Info{Name: "OutdatedCursor"}),
		frame(t, "", &events.ErrorFrame{Error: "FutureCursor"}),
	}
}

func FuzzFrame(f *testing.F) {
	dir := identity.NewMockDirectory()
	for _, fr := range seedFrames(f, dir) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
		store.PutAccount(model.Account{User: "auth0|alice", DID: "did:plc:alice"})
		store.PutMood(model.Mood{ID: "507f1f77bcf86cd799400001", User: "auth0|alice"})
		for _, skip := range []bool{false, true} {
			c, err := New(Config{FirehoseURL: "ws://127.0.0.1:1/xrpc/com.atproto.sync.subscribeRepos", Directory: dir, SkipVerify: skip}, reconcile.NewEngine(store, pds, nil), store, discardQueue{}, &reconcile.Sweep{Users: store, Queue: discardQueue{}, State: store})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.accounts.load(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Any outcome but a panic or a hang is fine: bad input is
			// counted and skipped; a frame that does not decode, or an
			// error frame, ends the connection.
			_ = c.handleFrame(context.Background(), data)
		}
	})
}

func FuzzCAR(f *testing.F) {
	for _, fr := range seedFrames(f, identity.NewMockDirectory()) {
		if xev, err := decodeFrame(fr); err == nil && xev.RepoCommit != nil {
			f.Add([]byte(xev.RepoCommit.Blocks))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Fuzz(func(t *testing.T, car []byte) {
		var first []byte
		n := 0
		err := carBlocks(car, func(cb, data []byte) bool {
			if first == nil {
				first = cb
			}
			n++
			return true
		})
		idx, ierr := indexCAR(car)
		if ierr == nil && err != nil {
			t.Fatalf("indexCAR accepted what carBlocks refused: %v", err)
		}
		if ierr == nil && len(idx) > n {
			t.Fatalf("index has %d blocks, the CAR %d", len(idx), n)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range []map[string]any{
		{"$type": model.Collection, "mood": "sunny", "when": "2025-10-14T19:30:00.000Z", "ref": "507f1f77bcf86cd799439011", "mongoId": "507f1f77bcf86cd799439011"},
		{"$type": model.Collection, "mood": "legacy", "when": "2025-10-14T19:30:00.000Z", "mongoId": "507f1f77bcf86cd799439011"},
		{"$type": model.Collection, "mood": int64(5), "when": "x", "ref": "507f1f77bcf86cd799439011"},
		{"$type": model.Collection, "mood": "no ref", "when": "x"},
		{"$type": "app.bsky.feed.post", "text": "not a mood"},
	} {
		b, err := atdata.MarshalCBOR(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, why := decodeRecord(raw)
		if (v == nil) == (why == "") {
			t.Fatalf("value %v with reason %q", v, why)
		}
		if v != nil {
			if w := model.ValidateRecord(v); w != "" || v.Type != model.Collection {
				t.Fatalf("accepted an invalid record (%s): %+v", w, v)
			}
		}
	})
}

// discardQueue takes reconcile requests and does nothing with them.
type discardQueue struct{}

func (discardQueue) Enqueue(context.Context, string, reconcile.Cause) error { return nil }
