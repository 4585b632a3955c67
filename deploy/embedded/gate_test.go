//go:build !production

package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// raceSets has two clients (separate connection pools) set different
// fields of the same documents at the same time, round after round: in
// round r one client sets a=r and the other b=r on every document, each with
// several goroutines. It returns how many documents, summed over the rounds,
// ended a round without both values: updates lost. With untilLoss it stops
// after the first round that lost one.
func raceSets(t *testing.T, uri string, docs, rounds int, untilLoss bool) (lost, ranRounds int) {
	t.Helper()
	ctx := context.Background()
	const perClient = 4
	var colls [2]*mongo.Collection
	db := fmt.Sprintf("race%d", time.Now().UnixNano())
	for i := range colls {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetMaxPoolSize(perClient))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		colls[i] = c.Database(db).Collection("docs")
	}
	seed := make([]any, docs)
	for i := range seed {
		seed[i] = bson.D{{Key: "_id", Value: i}, {Key: "a", Value: 0}, {Key: "b", Value: 0}}
	}
	if _, err := colls[0].InsertMany(ctx, seed); err != nil {
		t.Fatal(err)
	}
	for r := 1; r <= rounds; r++ {
		var wg sync.WaitGroup
		for client, field := range []string{"a", "b"} {
			for g := 0; g < perClient; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < docs; i += perClient {
						res, err := colls[client].UpdateOne(ctx, bson.D{{Key: "_id", Value: i}},
							bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: r}}}})
						if err != nil {
							t.Error(err)
							return
						}
						if res.MatchedCount != 1 {
							t.Errorf("update of %d matched %d documents", i, res.MatchedCount)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		cur, err := colls[0].Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			ID   int `bson:"_id"`
			A, B int
		}
		if err := cur.All(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != docs {
			t.Fatalf("round %d: %d documents, want %d", r, len(got), docs)
		}
		for _, d := range got {
			if d.A != r || d.B != r {
				lost++
				t.Logf("round %d: document %d has a=%d b=%d", r, d.ID, d.A, d.B)
			}
		}
		ranRounds = r
		if untilLoss && lost > 0 {
			break
		}
	}
	return lost, ranRounds
}

// The two clients race 200 documents × 2 fields per round. Without the
// gate, FerretDB's read-modify-write loses some of them: the test looks for
// that first (so it can tell the race apart from a race that never happens),
// then runs the same race through the gate, where nothing may be lost.
func TestConcurrentUpdatesOfOneDocumentAreNotLost(t *testing.T) {
	const docs = 200
	t.Run("without the gate FerretDB loses updates", func(t *testing.T) {
		m, err := startMongo("127.0.0.1:0", t.TempDir(), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		const maxRounds = 30
		lost, rounds := raceSets(t, m.URI(), docs, maxRounds, true)
		if lost == 0 {
			t.Fatalf("no update lost in %d rounds (%d updates): the race did not happen", rounds, rounds*docs*2)
		}
		t.Logf("%d updates lost in %d rounds of %d updates", lost, rounds, docs*2)
	})
	t.Run("through the gate nothing is lost", func(t *testing.T) {
		m, err := StartMongo("127.0.0.1:0", t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		const rounds = 5
		if lost, _ := raceSets(t, m.URI(), docs, rounds, false); lost != 0 {
			t.Fatalf("%d of %d updates lost through the gate", lost, rounds*docs*2)
		}
	})
}

// opMsgFrame builds an OP_MSG with one body document.
func opMsgFrame(t *testing.T, requestID, responseTo int32, flags uint32, doc bson.D) frame {
	t.Helper()
	body, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := make(frame, wireHeaderLen+4+1, wireHeaderLen+4+1+len(body))
	binary.LittleEndian.PutUint32(f[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(f[8:], uint32(responseTo))
	binary.LittleEndian.PutUint32(f[12:], opMsg)
	binary.LittleEndian.PutUint32(f[16:], flags)
	f[20] = 0
	f = append(f, body...)
	binary.LittleEndian.PutUint32(f[0:], uint32(len(f)))
	return f
}

func TestCommandName(t *testing.T) {
	doc := func(d bson.D) []byte {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withHeader := func(op int32, body []byte) frame {
		f := make(frame, wireHeaderLen, wireHeaderLen+len(body))
		binary.LittleEndian.PutUint32(f[12:], uint32(op))
		f = append(f, body...)
		binary.LittleEndian.PutUint32(f[0:], uint32(len(f)))
		return f
	}
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) (out []byte) {
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	update := doc(bson.D{{Key: "update", Value: "moods"}, {Key: "$db", Value: "aesthetic"}})
	seq := cat([]byte{1}, le(uint32(4+len("updates")+1+len(update))), []byte("updates\x00"), update)
	query := func(q []byte) frame {
		return withHeader(opQuery, cat(le(0), []byte("admin.$cmd\x00"), le(0), le(^uint32(0)), q))
	}
	cases := []struct {
		name string
		f    frame
		want string
	}{
		{"OP_MSG hello", opMsgFrame(t, 1, 0, 0, bson.D{{Key: "hello", Value: 1}, {Key: "maxAwaitTimeMS", Value: 10000}}), "hello"},
		{"OP_MSG update", opMsgFrame(t, 1, 0, 0, bson.D{{Key: "update", Value: "moods"}}), "update"},
		{"OP_MSG document sequence before the body", withHeader(opMsg, cat(le(0), seq, []byte{0}, update)), "update"},
		{"OP_MSG with a checksum", withHeader(opMsg, cat(le(msgChecksumPresent), []byte{0}, doc(bson.D{{Key: "isMaster", Value: 1}}), le(0))), "isMaster"},
		{"OP_QUERY isMaster", query(doc(bson.D{{Key: "isMaster", Value: 1}, {Key: "helloOk", Value: true}})), "isMaster"},
		{"OP_QUERY wrapped", query(doc(bson.D{{Key: "$query", Value: bson.D{{Key: "ismaster", Value: 1}}}})), "ismaster"},
		{"OP_COMPRESSED", withHeader(2012, cat(le(opMsg), le(100), []byte{0}, []byte("xxxx"))), ""},
		{"OP_MSG, unknown section kind", withHeader(opMsg, cat(le(0), []byte{7}, update)), ""},
		{"OP_MSG, body longer than the message", withHeader(opMsg, cat(le(0), []byte{0}, update[:10])), ""},
		{"OP_MSG, no sections", withHeader(opMsg, le(0)), ""},
		{"OP_MSG, no flags", withHeader(opMsg, nil), ""},
		{"OP_QUERY, no collection name end", withHeader(opQuery, cat(le(0), []byte("admin.$cmd"))), ""},
	}
	for _, c := range cases {
		if got := c.f.command(); got != c.want {
			t.Errorf("%s: command %q, want %q", c.name, got, c.want)
		}
	}
}

// fakeServer stands in for FerretDB: it hands every request it reads to
// the test, which answers (or not) as it likes.
type fakeServer struct {
	ln       net.Listener
	requests chan fakeRequest
	// ends gets each connection whose requests ended (the gate
	// half-closed it); the test decides when to hang up.
	ends chan net.Conn
}

type fakeRequest struct {
	conn net.Conn
	f    frame
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, requests: make(chan fakeRequest, 16), ends: make(chan net.Conn, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				for {
					f, err := readFrame(c)
					if err != nil {
						s.ends <- c
						return
					}
					s.requests <- fakeRequest{c, f}
				}
			}()
		}
	}()
	return s
}

// next is the next request the server read; the test fails if it is not
// the named command.
func (s *fakeServer) next(t *testing.T, cmd string) fakeRequest {
	t.Helper()
	select {
	case r := <-s.requests:
		if got := r.f.command(); got != cmd {
			t.Fatalf("server got %q, want %q", got, cmd)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("server got no %q", cmd)
	}
	return fakeRequest{}
}

func (s *fakeServer) reply(t *testing.T, r fakeRequest) {
	t.Helper()
	if _, err := r.conn.Write(opMsgFrame(t, 0, r.f.requestID(), 0, bson.D{{Key: "ok", Value: 1}})); err != nil {
		t.Fatal(err)
	}
}

// answer answers the next request, which must be cmd, and checks that
// client w got the reply to its request id.
func (s *fakeServer) answer(t *testing.T, w *wireClient, id int32, cmd string) {
	t.Helper()
	s.reply(t, s.next(t, cmd))
	w.answered(id)
}

// nothingPending fails if the server has read a request the gate should be
// holding back. It looks only at what has arrived so far, so it can miss a
// request still on its way, never blame a correct gate.
func (s *fakeServer) nothingPending(t *testing.T) {
	t.Helper()
	select {
	case r := <-s.requests:
		t.Fatalf("server got %q while another command held the turn", r.f.command())
	default:
	}
}

type wireClient struct {
	t *testing.T
	c net.Conn
}

func dialGate(t *testing.T, g *gate) *wireClient {
	t.Helper()
	c, err := net.Dial("tcp", g.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireClient{t, c}
}

func (w *wireClient) send(id int32, flags uint32, cmd string) {
	w.t.Helper()
	if _, err := w.c.Write(opMsgFrame(w.t, id, 0, flags, bson.D{{Key: cmd, Value: 1}})); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wireClient) answered(id int32) {
	w.t.Helper()
	f, err := readFrame(w.c)
	if err != nil {
		w.t.Fatal(err)
	}
	if f.responseTo() != id {
		w.t.Fatalf("reply to %d, want %d", f.responseTo(), id)
	}
}

func startTestGate(t *testing.T) (*gate, *fakeServer) {
	t.Helper()
	s := newFakeServer(t)
	g, err := startGate("127.0.0.1:0", s.ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	return g, s
}

// One command at a time; handshakes pass while a command runs; the turn
// goes back on the reply.
func TestGateLetsOneCommandThroughAtATime(t *testing.T) {
	g, s := startTestGate(t)
	a, b, monitor := dialGate(t, g), dialGate(t, g), dialGate(t, g)

	a.send(1, 0, "update")
	upd := s.next(t, "update")
	b.send(1, 0, "find")
	// A monitor's hello passes while the update runs, and is answered.
	monitor.send(7, 0, "hello")
	s.answer(t, monitor, 7, "hello")
	monitor.send(8, 0, "isMaster")
	s.answer(t, monitor, 8, "isMaster")
	// b's find was written before the hellos; the gate still holds it.
	s.nothingPending(t)

	s.reply(t, upd)
	a.answered(1)
	s.answer(t, b, 1, "find")
}

// A client that hangs up while its command runs keeps the turn until
// FerretDB's side of the connection ends; then the next command goes.
func TestGateGivesTheTurnBackWhenAConnectionEnds(t *testing.T) {
	g, s := startTestGate(t)
	a, b := dialGate(t, g), dialGate(t, g)

	a.send(1, 0, "update")
	upd := s.next(t, "update")
	a.c.Close()
	b.send(1, 0, "find")
	// The server's side reads the end of a's requests; the update may still
	// be running, so the turn stays with it until the server hangs up.
	select {
	case c := <-s.ends:
		if c != upd.conn {
			t.Fatal("the end of another connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never read the end of a's requests")
	}
	s.nothingPending(t)
	upd.conn.Close()
	s.answer(t, b, 1, "find")
}

// A request flagged moreToCome has no reply; it must not keep the turn.
func TestGateDoesNotHoldTheTurnForMoreToCome(t *testing.T) {
	g, s := startTestGate(t)
	a, b := dialGate(t, g), dialGate(t, g)

	a.send(1, msgMoreToCome, "insert")
	s.next(t, "insert")
	b.send(1, 0, "find")
	s.answer(t, b, 1, "find")
	// A stray reply to the unacknowledged insert gives back nothing.
	a.send(2, 0, "update")
	upd := s.next(t, "update")
	b.send(2, 0, "find")
	if _, err := upd.conn.Write(opMsgFrame(t, 0, 1, 0, bson.D{{Key: "ok", Value: 1}})); err != nil {
		t.Fatal(err)
	}
	a.answered(1)
	s.nothingPending(t)
	s.reply(t, upd)
	a.answered(2)
	s.answer(t, b, 2, "find")
}

// Messages longer than MongoDB allows close the connection; they are
// never read into memory.
func TestGateRefusesOversizedMessages(t *testing.T) {
	g, _ := startTestGate(t)
	for _, n := range []uint32{maxWireMessage + 1, 15, 0xffffffff} {
		c := dialGate(t, g)
		hdr := make([]byte, wireHeaderLen)
		binary.LittleEndian.PutUint32(hdr[0:], n)
		binary.LittleEndian.PutUint32(hdr[12:], opMsg)
		if _, err := c.c.Write(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(c.c); !errors.Is(err, io.EOF) {
			t.Fatalf("length %d: %v, want the connection closed", n, err)
		}
	}
}
