package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/events"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// leanSeeds are frames for the differential fuzz target: every kind the
// consumer handles, commits with null ops, unknown fields, no since or
// prevData, and a few hand-made bodies.
func leanSeeds(t testing.TB) [][]byte {
	dir := identity.NewMockDirectory()
	out := seedFrames(t, dir)
	g := newGenRepo(t, "did:plc:bob", dir)
	first := g.commit(t, 10, g.postOp()) // no since, prevData of the empty tree
	first.Since, first.PrevData = nil, nil
	withNull := g.commit(t, 11, moodOp("3kh5dye2qpc2c", "507f1f77bcf86cd799400002"))
	withNull.Ops = append(withNull.Ops, nil)
	link := lexutil.LexLink(cid.MustParse("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"))
	withBlobs := g.commit(t, 12, g.postOp())
	withBlobs.Blobs = []lexutil.LexLink{link, link}
	withBlobs.Rebase = true
	out = append(out, commitFrame(t, first), commitFrame(t, withNull), commitFrame(t, withBlobs))

	// Hand-made: an unknown field before the known ones, a minimal map and
	// a seq of 2^40.
	hand := []byte{0xa2, 0x62, 'o', 'p', 0x01, 0x61, 't', 0x67, '#', 'c', 'o', 'm', 'm', 'i', 't', 0xa4, 0x6f}
	hand = append(hand, "zzzunknownfield"...)
	hand = append(hand, 0x61, 'x', 0x64)
	hand = append(hand, "repo"...)
	hand = append(hand, 0x6c)
	hand = append(hand, "did:plc:hand"...)
	hand = append(hand, 0x63)
	hand = append(hand, "rev"...)
	hand = append(hand, 0x6d)
	hand = append(hand, "3kh5dye2qpc2a"...)
	hand = append(hand, 0x63)
	hand = append(hand, "seq"...)
	hand = append(hand, 0x1b, 0, 0, 1, 0, 0, 0, 0, 0)
	out = append(out, hand)
	return out
}

// indigoFrame decodes a frame as events.HandleRepoStream does.
func indigoFrame(data []byte) (events.EventHeader, *comatproto.SyncSubscribeRepos_Commit, []byte, error) {
	r := bytes.NewReader(data)
	var h events.EventHeader
	if err := h.UnmarshalCBOR(r); err != nil {
		return h, nil, nil, err
	}
	body := data[len(data)-r.Len():]
	if h.Op != events.EvtKindMessage || h.MsgType != "#commit" {
		return h, nil, body, nil
	}
	var evt comatproto.SyncSubscribeRepos_Commit
	if err := evt.UnmarshalCBOR(r); err != nil {
		return h, nil, body, err
	}
	return h, &evt, body, nil
}

// FuzzLeanDecoder feeds the same frames to the lean decoder and to
// indigo's, which stays the reference: whatever indigo accepts, the lean
// decoder accepts too and extracts the same header, body, repo, seq, rev,
// since, time, tooBig, prevData, commit CID, blocks and ops. (A map with a
// known key twice is out of bounds: DAG-CBOR forbids it, and the lean
// decoder refuses it.) What indigo refuses, the lean decoder may accept:
// it does not check CID links in fields it passes over (blobs, unknown
// fields), nor, before event(), the ops and CIDs of a commit.
func FuzzLeanDecoder(f *testing.F) {
	for _, fr := range leanSeeds(f) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ih, ievt, ibody, ierr := indigoFrame(data)
		if ibody == nil {
			return // indigo refused the header; the lean decoder may be lenient
		}
		lh, lbody, herr := decodeHeader(data)
		if herr != nil {
			if errors.Is(herr, errDuplicateKey) {
				return
			}
			t.Fatalf("indigo read the header, the lean decoder did not: %v", herr)
		}
		if lh.op != ih.Op || string(lh.msgType) != ih.MsgType || !bytes.Equal(lbody, ibody) {
			t.Fatalf("header: lean %d %q (%d body bytes), indigo %d %q (%d)", lh.op, lh.msgType, len(lbody), ih.Op, ih.MsgType, len(ibody))
		}
		if ih.Op != events.EvtKindMessage || ih.MsgType != "#commit" {
			return
		}
		var v commitView
		verr := v.decode(lbody)
		if ierr != nil {
			// Refused by indigo: the lean decoder may be lenient, but it
			// must not panic turning it into an event.
			if verr == nil {
				_, _ = v.event()
			}
			return
		}
		if verr != nil {
			if errors.Is(verr, errDuplicateKey) {
				return
			}
			t.Fatalf("indigo decoded the commit, the lean decoder did not: %v", verr)
		}
		if string(v.repo) != ievt.Repo || v.seq != ievt.Seq {
			t.Fatalf("skip path: lean %q #%d, indigo %q #%d", v.repo, v.seq, ievt.Repo, ievt.Seq)
		}
		levt, err := v.event()
		if err != nil {
			if errors.Is(err, errDuplicateKey) {
				return
			}
			t.Fatalf("indigo decoded the commit, the lean event() did not: %v", err)
		}
		if d := diffCommits(levt, ievt); d != "" {
			t.Fatalf("lean and indigo disagree: %s", d)
		}
	})
}

// diffCommits compares what the consumer reads of a commit.
func diffCommits(a, b *comatproto.SyncSubscribeRepos_Commit) string {
	switch {
	case a.Repo != b.Repo, a.Rev != b.Rev, a.Seq != b.Seq, a.Time != b.Time, a.TooBig != b.TooBig:
		return fmt.Sprintf("fields %q %q %d %q %v vs %q %q %d %q %v", a.Repo, a.Rev, a.Seq, a.Time, a.TooBig, b.Repo, b.Rev, b.Seq, b.Time, b.TooBig)
	case (a.Since == nil) != (b.Since == nil) || (a.Since != nil && *a.Since != *b.Since):
		return fmt.Sprintf("since %v vs %v", a.Since, b.Since)
	case !reflect.DeepEqual(a.PrevData, b.PrevData):
		return fmt.Sprintf("prevData %v vs %v", a.PrevData, b.PrevData)
	case a.Commit != b.Commit:
		return fmt.Sprintf("commit %v vs %v", a.Commit, b.Commit)
	case !bytes.Equal(a.Blocks, b.Blocks) || (a.Blocks == nil) != (b.Blocks == nil):
		return fmt.Sprintf("blocks %d vs %d bytes", len(a.Blocks), len(b.Blocks))
	case !reflect.DeepEqual(a.Ops, b.Ops):
		return fmt.Sprintf("ops %v vs %v", a.Ops, b.Ops)
	case !reflect.DeepEqual(a.Blobs, b.Blobs):
		return fmt.Sprintf("blobs %v vs %v", a.Blobs, b.Blobs)
	}
	return ""
}

// TestLeanDecoderAgreesOnRealFrames runs the comparison over the
// benchmark's generated firehose (10,000 signed commits).
func TestLeanDecoderAgreesOnRealFrames(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 10,000 signed commits")
	}
	d := benchFramesOnce(t)
	for i, fr := range d.frames {
		_, ievt, _, err := indigoFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		_, body, err := decodeHeader(fr)
		if err != nil {
			t.Fatal(err)
		}
		var v commitView
		if err := v.decode(body); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		levt, err := v.event()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if d := diffCommits(levt, ievt); d != "" {
			t.Fatalf("frame %d: %s", i, d)
		}
	}
}

// TestSkipPathAllocatesNothing: a #commit of a repo that is not a user's
// costs no allocation, from the frame bytes to the cursor.
func TestSkipPathAllocatesNothing(t *testing.T) {
	dir := identity.NewMockDirectory()
	g := newGenRepo(t, "did:plc:stranger", dir)
	fr := commitFrame(t, g.commit(t, 1, g.postOp()))
	store := reconciletest.NewStore()
	store.PutAccount(model.Account{User: "auth0|alice", DID: "did:plc:alice"})
	c, err := New(Config{FirehoseURL: "ws://127.0.0.1:1/xrpc/com.atproto.sync.subscribeRepos", SkipVerify: true},
		reconcile.NewEngine(store, reconciletest.NewPDS(), nil), store, discardQueue{}, &reconcile.Sweep{Users: store, Queue: discardQueue{}, State: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.accounts.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.handleFrame(ctx, fr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per skipped commit", allocs)
	}
	if s := c.Stats(); s.Dropped < 1000 || s.Cursor != 1 {
		t.Fatalf("stats %+v", s)
	}
}
