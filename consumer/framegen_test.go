package consumer

// The consumer tests' names for the frame generator (consumer/wire/wiretest),
// and a loopback firehose that serves its frames: what the unit tests, fuzz
// seeds and the benchmark feed the consumer without a PDS.

import (
	"encoding/binary"
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
	// timed is for benchmarks: the frames go as websocket frames encoded
	// here, many to a write (sendChunk bytes), not one write each — a
	// server that keeps ahead of any reader, as a relay with a backlog
	// does, so that what is timed is the reader, not the sender's
	// syscalls — and after the last frame a ping: the span ends when the
	// pong comes back (the reader has read every frame before it), then
	// the connection is closed.
	timed bool
}

// sendChunk is how many bytes of encoded frames a batched write carries.
const sendChunk = 256 << 10

// appendWSFrame appends payload as one unmasked, final binary websocket
// frame (RFC 6455 §5.2), as a server sends it.
func appendWSFrame(dst, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x82, byte(n))
	case n < 1<<16:
		dst = append(dst, 0x82, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x82, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// writeFrames writes frames to con, one message each or, timed, as
// encoded frames sendChunk bytes at a time.
func (f *firehose) writeFrames(con *websocket.Conn, frames [][]byte) error {
	if !f.timed {
		for _, b := range frames {
			if err := con.WriteMessage(websocket.BinaryMessage, b); err != nil {
				return err
			}
		}
		return nil
	}
	buf := make([]byte, 0, sendChunk+64<<10)
	for i, b := range frames {
		buf = appendWSFrame(buf, b)
		if len(buf) >= sendChunk || i == len(frames)-1 {
			if _, err := con.UnderlyingConn().Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

// sendSpan is when a connection wrote its first frame and when its last
// was written (timed: read).
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
		closed, pong := make(chan struct{}), make(chan time.Time, 1)
		con.SetPongHandler(func(string) error {
			select {
			case pong <- time.Now():
			default:
			}
			return nil
		})
		go func() { // notice the client going away; read its pongs
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
			if f.writeFrames(con, batch) != nil {
				return
			}
			next += len(batch)
			if len(batch) > 0 {
				last := time.Now()
				f.mu.Lock()
				end := next == len(f.frames)
				f.mu.Unlock()
				if end && f.timed {
					if con.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Minute)) != nil {
						return
					}
					select {
					case last = <-pong:
					case <-closed:
						return
					}
				}
				if end {
					f.mu.Lock()
					f.spans = append(f.spans, sendSpan{first, last})
					f.mu.Unlock()
				}
				if end && f.timed {
					_ = con.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					return
				}
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
