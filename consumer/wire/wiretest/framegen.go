// Package wiretest generates real, signed firehose frames: what the tests,
// fuzz seeds and benchmarks of consumer and consumer/wire feed them without
// a PDS. It is imported by tests only.
package wiretest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/bluesky-social/indigo/events"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	blockstore "github.com/ipfs/go-ipfs-blockstore"
	"github.com/ipld/go-car"
	carutil "github.com/ipld/go-car/util"
	"github.com/multiformats/go-multihash"
)

var cborPrefix = cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_256)

// Repo is one repo whose commits the generator signs.
type Repo struct {
	DID   string
	Key   atcrypto.PrivateKeyExportable // replace it to forge commits
	tree  mst.Tree
	bs    blockstore.Blockstore // every MST node ever written
	clock *syntax.TIDClock
	rev   string
	data  *cid.Cid
	n     int // records written, for rkeys
}

// NewRepo starts an empty repo of did, its key published in dir.
func NewRepo(t testing.TB, did string, dir *identity.MockDirectory) *Repo {
	t.Helper()
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	dir.Insert(identity.Identity{
		DID:    syntax.DID(did),
		Handle: syntax.HandleInvalid,
		Keys:   map[string]identity.VerificationMethod{"atproto": {Type: "Multikey", PublicKeyMultibase: pub.Multibase()}},
	})
	return &Repo{
		DID: did, Key: key, tree: mst.NewEmptyTree(),
		bs:    blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())),
		clock: syntax.NewTIDClock(0),
	}
}

// Op is one op of a generated commit: a record body (any atproto data,
// or raw bytes when rawBody is set) written at path, or a delete.
type Op struct {
	Path    string
	Record  map[string]any
	RawBody []byte
	Delete  bool
}

// MoodOp writes a valid mood record naming moodID.
func MoodOp(rkey, moodID string) Op {
	return Op{Path: "computer.aesthetic.mood/" + rkey, Record: map[string]any{
		"$type": "computer.aesthetic.mood", "mood": "sunny", "when": "2025-10-14T19:30:00.000Z", "ref": moodID, "mongoId": moodID,
	}}
}

// PostOp writes a record of another collection.
func (g *Repo) PostOp() Op {
	g.n++
	return Op{Path: fmt.Sprintf("app.bsky.feed.post/%s", syntax.NewTID(int64(1_700_000_000_000_000+g.n), 0)), Record: map[string]any{
		"$type": "app.bsky.feed.post", "text": "hello " + strconv.Itoa(g.n), "createdAt": "2025-10-14T19:30:00.000Z",
	}}
}

// Commit applies ops and returns the signed #commit event.
func (g *Repo) Commit(t testing.TB, seq int64, ops ...Op) *comatproto.SyncSubscribeRepos_Commit {
	t.Helper()
	ctx := context.Background()
	var records []blocks.Block
	var evOps []*comatproto.SyncSubscribeRepos_RepoOp
	for _, op := range ops {
		var val *cid.Cid
		if !op.Delete {
			body := op.RawBody
			if body == nil {
				var err error
				if body, err = atdata.MarshalCBOR(op.Record); err != nil {
					t.Fatal(err)
				}
			}
			c, err := cborPrefix.Sum(body)
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := blocks.NewBlockWithCid(body, c)
			records = append(records, blk)
			val = &c
		}
		applied, err := repo.ApplyOp(&g.tree, op.Path, val)
		if err != nil {
			t.Fatal(err)
		}
		ev := &comatproto.SyncSubscribeRepos_RepoOp{Path: op.Path}
		switch {
		case applied.IsCreate():
			ev.Action = "create"
		case applied.IsDelete():
			ev.Action = "delete"
		default:
			ev.Action = "update"
		}
		if applied.Value != nil {
			l := lexutil.LexLink(*applied.Value)
			ev.Cid = &l
		}
		if applied.Prev != nil {
			l := lexutil.LexLink(*applied.Prev)
			ev.Prev = &l
		}
		evOps = append(evOps, ev)
	}
	root, err := g.tree.WriteDiffBlocks(ctx, g.bs)
	if err != nil {
		t.Fatal(err)
	}
	rev := g.clock.Next().String()
	c := repo.Commit{DID: g.DID, Version: repo.ATPROTO_REPO_VERSION, Data: *root, Rev: rev}
	if err := c.Sign(g.Key); err != nil {
		t.Fatal(err)
	}
	var cb bytes.Buffer
	if err := c.MarshalCBOR(&cb); err != nil {
		t.Fatal(err)
	}
	commitCID, _ := cborPrefix.Sum(cb.Bytes())

	// The CAR carries the commit, the records and the whole (small) MST,
	// which covers every node that inverting the ops can touch.
	var car bytes.Buffer
	if err := carWrite(&car, commitCID, cb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := g.writeTree(ctx, &car, *root); err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := carutil.LdWrite(&car, r.Cid().Bytes(), r.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	evt := &comatproto.SyncSubscribeRepos_Commit{
		Repo: g.DID, Rev: rev, Seq: seq, Commit: lexutil.LexLink(commitCID), Blocks: car.Bytes(),
		Ops: evOps, Time: time.Now().UTC().Format(syntax.AtprotoDatetimeLayout), Blobs: []lexutil.LexLink{},
	}
	if g.rev != "" {
		since := g.rev
		evt.Since = &since
	}
	if g.data != nil {
		l := lexutil.LexLink(*g.data)
		evt.PrevData = &l
	} else {
		l := lexutil.LexLink(EmptyTreeCID(t))
		evt.PrevData = &l
	}
	g.rev, g.data = rev, root
	return evt
}

// EmptyTreeCID is the root of an empty MST.
func EmptyTreeCID(t testing.TB) cid.Cid {
	empty := mst.NewEmptyTree()
	c, err := empty.RootCID()
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

func carWrite(w *bytes.Buffer, root cid.Cid, rootData []byte) error {
	if err := car.WriteHeader(&car.CarHeader{Roots: []cid.Cid{root}, Version: 1}, w); err != nil {
		return err
	}
	return carutil.LdWrite(w, root.Bytes(), rootData)
}

// writeTree appends every MST node reachable from root.
func (g *Repo) writeTree(ctx context.Context, w *bytes.Buffer, root cid.Cid) error {
	blk, err := g.bs.Get(ctx, root)
	if err != nil {
		return err
	}
	if err := carutil.LdWrite(w, root.Bytes(), blk.RawData()); err != nil {
		return err
	}
	nd, err := mst.NodeDataFromCBOR(bytes.NewReader(blk.RawData()))
	if err != nil {
		return err
	}
	children := []*cid.Cid{nd.Left}
	for _, e := range nd.Entries {
		children = append(children, e.Right)
	}
	for _, c := range children {
		if c != nil {
			if err := g.writeTree(ctx, w, *c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Frame encodes an event as the firehose sends it: header, then body.
func Frame(t testing.TB, kind string, body interface{ MarshalCBOR(w io.Writer) error }) []byte {
	t.Helper()
	var b bytes.Buffer
	h := events.EventHeader{Op: events.EvtKindMessage, MsgType: kind}
	if kind == "" {
		h = events.EventHeader{Op: events.EvtKindErrorFrame}
	}
	if err := h.MarshalCBOR(&b); err != nil {
		t.Fatal(err)
	}
	if err := body.MarshalCBOR(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// CommitFrame encodes a #commit frame.
func CommitFrame(t testing.TB, evt *comatproto.SyncSubscribeRepos_Commit) []byte {
	return Frame(t, "#commit", evt)
}

// SeedFrames are real frames of every kind the consumer handles, for a
// repo of the user auth0|alice (mood 507f1f77bcf86cd799400001).
func SeedFrames(t testing.TB, dir *identity.MockDirectory) [][]byte {
	g := NewRepo(t, "did:plc:alice", dir)
	const id = "507f1f77bcf86cd799400001"
	deleted := "deleted"
	c1 := g.Commit(t, 1, MoodOp("3kh5dye2qpc2a", id), g.PostOp())
	c2 := g.Commit(t, 2, Op{Path: "computer.aesthetic.mood/3kh5dye2qpc2a", Delete: true})
	c3 := g.Commit(t, 3, Op{Path: "computer.aesthetic.mood/3kh5dye2qpc2b", RawBody: []byte{0xa1, 0x64}})
	tooBig := g.Commit(t, 4, g.PostOp())
	tooBig.TooBig = true
	return [][]byte{
		CommitFrame(t, c1), CommitFrame(t, c2), CommitFrame(t, c3), CommitFrame(t, tooBig),
		Frame(t, "#sync", &comatproto.SyncSubscribeRepos_Sync{Did: g.DID, Rev: c1.Rev, Seq: 5, Blocks: c1.Blocks, Time: c1.Time}),
		Frame(t, "#identity", &comatproto.SyncSubscribeRepos_Identity{Did: g.DID, Seq: 6, Time: c1.Time}),
		Frame(t, "#account", &comatproto.SyncSubscribeRepos_Account{Did: g.DID, Seq: 7, Status: &deleted, Time: c1.Time}),
		Frame(t, "#info", &comatproto.SyncSubscribeRepos_Info{Name: "OutdatedCursor"}),
		Frame(t, "", &events.ErrorFrame{Error: "FutureCursor"}),
	}
}

// DecodeFrame decodes one websocket message the way HandleRepoStream does.
func DecodeFrame(data []byte) (*events.XRPCStreamEvent, error) {
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
