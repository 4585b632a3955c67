package consumer

// The consumer tests' names for the frame generator (consumer/wire/wiretest),
// and a loopback firehose that serves its frames: what the unit tests, fuzz
// seeds and the benchmark feed the consumer without a PDS.

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/events"
	"github.com/gorilla/websocket"

	"github.com/whistlegraph/moodsync/consumer/wire/wiretest"
)

// genRepo is one repo whose commits the generator signs.
type genRepo struct{ *wiretest.Repo }

func newGenRepo(t testing.TB, did string, dir *identity.MockDirectory) *genRepo {
	return &genRepo{wiretest.NewRepo(t, did, dir)}
}

// genOp is one op of a generated commit: a record body (any atproto data,
// or raw bytes when rawBody is set) written at path, or a delete.
type genOp struct {
	path    string
	record  map[string]any
	rawBody []byte
	delete  bool
}

func (o genOp) op() wiretest.Op {
	return wiretest.Op{Path: o.path, Record: o.record, RawBody: o.rawBody, Delete: o.delete}
}

func fromOp(o wiretest.Op) genOp {
	return genOp{path: o.Path, record: o.Record, rawBody: o.RawBody, delete: o.Delete}
}

// moodOp writes a valid mood record naming moodID.
func moodOp(rkey, moodID string) genOp { return fromOp(wiretest.MoodOp(rkey, moodID)) }

// postOp writes a record of another collection.
func (g *genRepo) postOp() genOp { return fromOp(g.PostOp()) }

// commit applies ops and returns the signed #commit event.
func (g *genRepo) commit(t testing.TB, seq int64, ops ...genOp) *comatproto.SyncSubscribeRepos_Commit {
	t.Helper()
	wops := make([]wiretest.Op, len(ops))
	for i, o := range ops {
		wops[i] = o.op()
	}
	return g.Commit(t, seq, wops...)
}

var (
	frame       = wiretest.Frame
	commitFrame = wiretest.CommitFrame
	decodeFrame = wiretest.DecodeFrame
)

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
	// spans are, per connection that sent through the last frame, when
	// its first frame was written and when its last was.
	spans []sendSpan
}

// sendSpan is when a connection wrote its first and its last frame.
type sendSpan struct{ first, last time.Time }

// lastSpan is the span of the connection that most recently sent through
// the last frame.
func (f *firehose) lastSpan() (sendSpan, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.spans) == 0 {
		return sendSpan{}, false
	}
	return f.spans[len(f.spans)-1], true
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
		var first time.Time
		for {
			f.mu.Lock()
			batch := f.frames[next:]
			more := f.more
			f.mu.Unlock()
			if len(batch) > 0 && first.IsZero() {
				first = time.Now()
			}
			for _, b := range batch {
				if err := con.WriteMessage(websocket.BinaryMessage, b); err != nil {
					return
				}
			}
			next += len(batch)
			if len(batch) > 0 {
				last := time.Now()
				f.mu.Lock()
				if next == len(f.frames) {
					f.spans = append(f.spans, sendSpan{first, last})
				}
				f.mu.Unlock()
			}
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
