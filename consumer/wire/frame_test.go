package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/events"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"

	"github.com/whistlegraph/moodsync/consumer/wire/wiretest"
)

// leanSeeds are frames for the differential fuzz target: every kind the
// consumer handles, commits with null ops, unknown fields, no since or
// prevData, and a few hand-made bodies.
func leanSeeds(t testing.TB) [][]byte {
	dir := identity.NewMockDirectory()
	out := wiretest.SeedFrames(t, dir)
	g := wiretest.NewRepo(t, "did:plc:bob", dir)
	first := g.Commit(t, 10, g.PostOp()) // no since, prevData of the empty tree
	first.Since, first.PrevData = nil, nil
	withNull := g.Commit(t, 11, wiretest.MoodOp("3kh5dye2qpc2c", "507f1f77bcf86cd799400002"))
	withNull.Ops = append(withNull.Ops, nil)
	link := lexutil.LexLink(cid.MustParse("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"))
	withBlobs := g.Commit(t, 12, g.PostOp())
	withBlobs.Blobs = []lexutil.LexLink{link, link}
	withBlobs.Rebase = true
	out = append(out, wiretest.CommitFrame(t, first), wiretest.CommitFrame(t, withNull), wiretest.CommitFrame(t, withBlobs))

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
		lh, lbody, herr := DecodeHeader(data)
		if herr != nil {
			if errors.Is(herr, errDuplicateKey) {
				return
			}
			t.Fatalf("indigo read the header, the lean decoder did not: %v", herr)
		}
		if lh.Op != ih.Op || string(lh.MsgType) != ih.MsgType || !bytes.Equal(lbody, ibody) {
			t.Fatalf("header: lean %d %q (%d body bytes), indigo %d %q (%d)", lh.Op, lh.MsgType, len(lbody), ih.Op, ih.MsgType, len(ibody))
		}
		if ih.Op != events.EvtKindMessage || ih.MsgType != "#commit" {
			return
		}
		var v CommitView
		verr := v.Decode(lbody)
		if ierr != nil {
			// Refused by indigo: the lean decoder may be lenient, but it
			// must not panic turning it into an event.
			if verr == nil {
				_, _ = v.Event()
			}
			return
		}
		if verr != nil {
			if errors.Is(verr, errDuplicateKey) {
				return
			}
			t.Fatalf("indigo decoded the commit, the lean decoder did not: %v", verr)
		}
		if string(v.Repo) != ievt.Repo || v.Seq != ievt.Seq {
			t.Fatalf("skip path: lean %q #%d, indigo %q #%d", v.Repo, v.Seq, ievt.Repo, ievt.Seq)
		}
		levt, err := v.Event()
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

// realFrames is the consumer benchmark's generated firehose: 500 repos × 20
// signed commits, interleaved, one op each, every tenth a mood record.
func realFrames(t testing.TB) [][]byte {
	dir := identity.NewMockDirectory()
	repos := make([]*wiretest.Repo, 500)
	for i := range repos {
		repos[i] = wiretest.NewRepo(t, fmt.Sprintf("did:plc:bench%d", i), dir)
	}
	var frames [][]byte
	seq := int64(0)
	for round := 0; round < 20; round++ {
		for i, g := range repos {
			seq++
			op := g.PostOp()
			if (round+i)%10 == 0 {
				op = wiretest.MoodOp(fmt.Sprintf("3kh5dye2q%04d", round), fmt.Sprintf("507f1f77bcf8%04d%08d", i, round))
			}
			frames = append(frames, wiretest.CommitFrame(t, g.Commit(t, seq, op)))
		}
	}
	return frames
}

// TestLeanDecoderAgreesOnRealFrames runs the comparison over the
// benchmark's generated firehose (10,000 signed commits).
func TestLeanDecoderAgreesOnRealFrames(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 10,000 signed commits")
	}
	for i, fr := range realFrames(t) {
		_, ievt, _, err := indigoFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		_, body, err := DecodeHeader(fr)
		if err != nil {
			t.Fatal(err)
		}
		var v CommitView
		if err := v.Decode(body); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		levt, err := v.Event()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if d := diffCommits(levt, ievt); d != "" {
			t.Fatalf("frame %d: %s", i, d)
		}
	}
}
