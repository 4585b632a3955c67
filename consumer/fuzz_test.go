package consumer

// Fuzz targets for what the consumer reads from the network: whole frames
// (as the read loop decodes and handles them) and record bodies. The wire
// format's own targets (FuzzCAR, FuzzLeanDecoder) are in consumer/wire.
// Without -fuzz they run their seed corpus as ordinary tests.

import (
	"context"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/whistlegraph/moodsync/consumer/wire/wiretest"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

func FuzzFrame(f *testing.F) {
	dir := identity.NewMockDirectory()
	for _, fr := range wiretest.SeedFrames(f, dir) {
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
