package consumer

// A generator of real, signed firehose frames, and a loopback firehose
// that serves them: what the unit tests, fuzz seeds and the benchmark feed
// the consumer without a PDS.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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
	"github.com/gorilla/websocket"
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

// genRepo is one repo whose commits the generator signs.
type genRepo struct {
	did   string
	key   atcrypto.PrivateKeyExportable
	tree  mst.Tree
	bs    blockstore.Blockstore // every MST node ever written
	clock *syntax.TIDClock
	rev   string
	data  *cid.Cid
	n     int // records written, for rkeys
}

func newGenRepo(t testing.TB, did string, dir *identity.MockDirectory) *genRepo {
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
	return &genRepo{
		did: did, key: key, tree: mst.NewEmptyTree(),
		bs:    blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())),
		clock: syntax.NewTIDClock(0),
	}
}

// genOp is one op of a generated commit: a record body (any atproto data,
// or raw bytes when rawBody is set) written at path, or a delete.
type genOp struct {
	path    string
	record  map[string]any
	rawBody []byte
	delete  bool
}

// moodOp writes a valid mood record naming moodID.
func moodOp(rkey, moodID string) genOp {
	return genOp{path: "computer.aesthetic.mood/" + rkey, record: map[string]any{
		"$type": "computer.aesthetic.mood", "mood": "sunny", "when": "2025-10-14T19:30:00.000Z", "ref": moodID, "mongoId": moodID,
	}}
}

// postOp writes a record of another collection.
func (g *genRepo) postOp() genOp {
	g.n++
	return genOp{path: fmt.Sprintf("app.bsky.feed.post/%s", syntax.NewTID(int64(1_700_000_000_000_000+g.n), 0)), record: map[string]any{
		"$type": "app.bsky.feed.post", "text": "hello " + strconv.Itoa(g.n), "createdAt": "2025-10-14T19:30:00.000Z",
	}}
}

// commit applies ops and returns the signed #commit event.
func (g *genRepo) commit(t testing.TB, seq int64, ops ...genOp) *comatproto.SyncSubscribeRepos_Commit {
	t.Helper()
	ctx := context.Background()
	var records []blocks.Block
	var evOps []*comatproto.SyncSubscribeRepos_RepoOp
	for _, op := range ops {
		var val *cid.Cid
		if !op.delete {
			body := op.rawBody
			if body == nil {
				var err error
				if body, err = atdata.MarshalCBOR(op.record); err != nil {
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
		applied, err := repo.ApplyOp(&g.tree, op.path, val)
		if err != nil {
			t.Fatal(err)
		}
		ev := &comatproto.SyncSubscribeRepos_RepoOp{Path: op.path}
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
	c := repo.Commit{DID: g.did, Version: repo.ATPROTO_REPO_VERSION, Data: *root, Rev: rev}
	if err := c.Sign(g.key); err != nil {
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
		Repo: g.did, Rev: rev, Seq: seq, Commit: lexutil.LexLink(commitCID), Blocks: car.Bytes(),
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
		l := lexutil.LexLink(emptyTreeCID(t))
		evt.PrevData = &l
	}
	g.rev, g.data = rev, root
	return evt
}

func emptyTreeCID(t testing.TB) cid.Cid {
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
func (g *genRepo) writeTree(ctx context.Context, w *bytes.Buffer, root cid.Cid) error {
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

// frame encodes an event as the firehose sends it: header, then body.
func frame(t testing.TB, kind string, body interface{ MarshalCBOR(w io.Writer) error }) []byte {
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

func commitFrame(t testing.TB, evt *comatproto.SyncSubscribeRepos_Commit) []byte {
	return frame(t, "#commit", evt)
}

// firehose is a loopback subscribeRepos server. Frames are numbered by
// position: frames[i] must carry seq i+1. A cursor past the end gets a
// FutureCursor error frame, as the PDS answers.
type firehose struct {
	srv *httptest.Server
	URL string

	mu       sync.Mutex
	frames   [][]byte
	more     chan struct{} // closed and replaced when frames are added
	cursors  []string      // the cursor of each connection, "" for none
	preamble [][]byte      // sent first on every connection (e.g. #info)
	// liveOnly makes a connection without a cursor start after the last
	// frame, as a real server's does (else it starts at the first).
	liveOnly bool
}

func newFirehose(t testing.TB) *firehose {
	f := &firehose{more: make(chan struct{})}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		con, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer con.Close()
		cursor := r.URL.Query().Get("cursor")
		f.mu.Lock()
		f.cursors = append(f.cursors, cursor)
		pre := f.preamble
		f.mu.Unlock()
		next := 0
		if cursor == "" && f.liveOnly {
			f.mu.Lock()
			next = len(f.frames)
			f.mu.Unlock()
		}
		if cursor != "" {
			n, _ := strconv.Atoi(cursor)
			f.mu.Lock()
			future := n > len(f.frames)
			f.mu.Unlock()
			if future {
				con.WriteMessage(websocket.BinaryMessage, frame(t, "", &events.ErrorFrame{Error: "FutureCursor", Message: "cursor in the future"}))
				return
			}
			next = n
		}
		for _, p := range pre {
			if con.WriteMessage(websocket.BinaryMessage, p) != nil {
				return
			}
		}
		closed := make(chan struct{})
		go func() { // notice the client going away
			defer close(closed)
			for {
				if _, _, err := con.NextReader(); err != nil {
					return
				}
			}
		}()
		for {
			f.mu.Lock()
			batch := f.frames[next:]
			more := f.more
			f.mu.Unlock()
			for _, b := range batch {
				if err := con.WriteMessage(websocket.BinaryMessage, b); err != nil {
					return
				}
			}
			next += len(batch)
			select {
			case <-more:
			case <-closed:
				return
			}
		}
	}))
	f.URL = "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/xrpc/com.atproto.sync.subscribeRepos"
	t.Cleanup(f.srv.Close)
	return f
}

// add appends frames and wakes the connections.
func (f *firehose) add(frames ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, frames...)
	close(f.more)
	f.more = make(chan struct{})
}

func (f *firehose) seq() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.frames))
}

func (f *firehose) connections() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cursors...)
}
