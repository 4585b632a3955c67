//go:build !production

package embedded

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The gate makes every command on the embedded FerretDB atomic, as a
// MongoDB server makes each single-document write atomic.
//
// FerretDB v1 carries out an update as a query, a change in memory and a
// write of the whole document, with nothing isolating it from other clients:
// two clients updating different fields of one document can each write back
// the document they read, and one update is lost. FerretDB has no setting
// that serialises commands, so the gate does it on the wire: FerretDB listens
// on a private loopback port, clients connect to the gate, and the gate
// forwards one command at a time. A command takes the turn when its request
// is forwarded and gives it back when its reply has been read (or when its
// connection ends), so two commands never run inside FerretDB at once.
//
// Handshake commands (hello, isMaster, ismaster) pass without waiting: they
// read nothing, and a driver's monitor may keep one open while it awaits a
// topology change. A request flagged moreToCome (an unacknowledged write)
// has no reply to wait for, so it never keeps the turn.

// MongoDB wire protocol: every message starts with a 16-byte header of
// little-endian int32s: messageLength (header included), requestID,
// responseTo, opCode.
const (
	wireHeaderLen = 16
	// maxWireMessage is MongoDB's maxMessageSizeBytes (FerretDB's too).
	maxWireMessage = 48_000_000

	opQuery = 2004 // OP_QUERY: legacy, only drivers' first handshake
	opMsg   = 2013 // OP_MSG

	msgChecksumPresent = 1 << 0
	msgMoreToCome      = 1 << 1
)

var errFrameSize = errors.New("mongo wire message length out of bounds")

// frame is one whole wire message, header included.
type frame []byte

func (f frame) requestID() int32  { return int32(binary.LittleEndian.Uint32(f[4:8])) }
func (f frame) responseTo() int32 { return int32(binary.LittleEndian.Uint32(f[8:12])) }
func (f frame) opCode() int32     { return int32(binary.LittleEndian.Uint32(f[12:16])) }

// moreToCome reports an OP_MSG sent without expecting an answer.
func (f frame) moreToCome() bool {
	return f.opCode() == opMsg && len(f) >= wireHeaderLen+4 &&
		binary.LittleEndian.Uint32(f[16:20])&msgMoreToCome != 0
}

// readFrame reads one message, refusing lengths no MongoDB would send.
func readFrame(r io.Reader) (frame, error) {
	var hdr [wireHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int32(binary.LittleEndian.Uint32(hdr[0:4]))
	if n < wireHeaderLen || n > maxWireMessage {
		return nil, fmt.Errorf("%w: %d bytes", errFrameSize, n)
	}
	f := make(frame, n)
	copy(f, hdr[:])
	if _, err := io.ReadFull(r, f[wireHeaderLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return f, nil
}

// command is the name of the command a request carries: the first key of
// an OP_MSG's body document, or of an OP_QUERY's query document. It is ""
// when the message is of another kind or cannot be read; such a message
// waits for its turn like any command.
func (f frame) command() string {
	switch f.opCode() {
	case opMsg:
		if len(f) < wireHeaderLen+4 {
			return ""
		}
		end := len(f)
		if binary.LittleEndian.Uint32(f[16:20])&msgChecksumPresent != 0 {
			end -= 4
		}
		for b := f[wireHeaderLen+4 : max(end, wireHeaderLen+4)]; len(b) >= 5; {
			size := int(binary.LittleEndian.Uint32(b[1:5]))
			switch b[0] {
			case 0: // the body: one document
				if size < 5 || size > len(b)-1 {
					return ""
				}
				return firstKey(bson.Raw(b[1 : 1+size]))
			case 1: // a document sequence: int32 size (itself included), name, documents
				if size < 4 || size > len(b)-1 {
					return ""
				}
				b = b[1+size:]
			default:
				return ""
			}
		}
	case opQuery:
		// int32 flags, cstring fullCollectionName, int32 skip, int32 return, document query.
		b := f[wireHeaderLen:]
		if len(b) < 4 {
			return ""
		}
		b = b[4:]
		nul := -1
		for i, c := range b {
			if c == 0 {
				nul = i
				break
			}
		}
		if nul < 0 || len(b) < nul+1+8+5 {
			return ""
		}
		doc := bson.Raw(b[nul+1+8:])
		key := firstKey(doc)
		if key == "$query" || key == "query" { // a legacy wrapped query
			if inner, ok := doc.Index(0).Value().DocumentOK(); ok {
				return firstKey(inner)
			}
			return ""
		}
		return key
	}
	return ""
}

func firstKey(doc bson.Raw) string {
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc[0:4])) > len(doc) {
		return ""
	}
	e, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	key, err := e.KeyErr()
	if err != nil {
		return ""
	}
	return key
}

// handshake reports a command that passes without waiting for its turn.
func handshake(cmd string) bool {
	return cmd == "hello" || cmd == "isMaster" || cmd == "ismaster"
}

// gate is the listener in front of FerretDB.
type gate struct {
	ln     net.Listener
	target string // FerretDB's private address
	log    *slog.Logger
	// turn holds a token while a command runs in FerretDB.
	turn chan struct{}

	mu     sync.Mutex
	conns  map[*gateConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startGate listens on addr and forwards to target, one command at a time.
func startGate(addr, target string, log *slog.Logger) (*gate, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &gate{ln: ln, target: target, log: log, turn: make(chan struct{}, 1), conns: map[*gateConn]struct{}{}}
	g.wg.Add(1)
	go g.accept()
	return g, nil
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Add(1)
		go g.serve(c)
	}
}

// close stops listening, cuts every connection and waits for them.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	_ = g.ln.Close()
	for c := range conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	g.wg.Wait()
}

// gateConn is one client connection and its own connection to FerretDB.
type gateConn struct {
	g              *gate
	client, server net.Conn
	// ended is closed when FerretDB's side is done: a request still waiting
	// for its turn then gives up.
	ended chan struct{}

	mu      sync.Mutex
	holding bool  // this connection has the turn
	heldFor int32 // for the request with this requestID
}

func (g *gate) serve(client net.Conn) {
	defer g.wg.Done()
	server, err := net.Dial("tcp", g.target)
	if err != nil {
		g.log.Warn("embedded mongo gate: cannot reach FerretDB", "err", err)
		_ = client.Close()
		return
	}
	c := &gateConn{g: g, client: client, server: server, ended: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	g.conns[c] = struct{}{}
	g.mu.Unlock()

	replies := make(chan struct{})
	go func() {
		defer close(replies)
		c.replies()
	}()
	if err := c.requests(); errors.Is(err, errFrameSize) {
		g.log.Warn("embedded mongo gate: closing a connection", "err", err)
		_ = client.Close()
	}
	// No more requests. FerretDB answers the one in flight, if any, then
	// reads the end of the stream and hangs up.
	if tcp, ok := server.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	} else {
		_ = server.Close()
	}
	<-replies
	_ = client.Close()
	_ = server.Close()
	c.giveBack(false, 0) // the connection has ended

	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// requests forwards the client's requests, each in its turn, until the
// client hangs up, sends a message no MongoDB would accept, or FerretDB's
// side ends.
func (c *gateConn) requests() error {
	r := bufio.NewReader(c.client)
	for {
		req, err := readFrame(r)
		if err != nil {
			return err
		}
		if !handshake(req.command()) {
			select {
			case c.g.turn <- struct{}{}:
			case <-c.ended:
				return nil
			}
			c.mu.Lock()
			c.holding, c.heldFor = true, req.requestID()
			c.mu.Unlock()
		}
		if _, err := c.server.Write(req); err != nil {
			return err
		}
		if req.moreToCome() {
			// No reply will come: the turn is not kept for one.
			c.giveBack(false, 0)
		}
	}
}

// replies forwards FerretDB's replies, giving the turn back as soon as the
// reply to the request holding it has been read.
func (c *gateConn) replies() {
	defer close(c.ended)
	defer c.client.Close() // unblocks requests() reading the client
	r := bufio.NewReader(c.server)
	clientGone := false
	for {
		rep, err := readFrame(r)
		if err != nil {
			if errors.Is(err, errFrameSize) {
				c.g.log.Warn("embedded mongo gate: closing a connection", "err", err)
			}
			return
		}
		c.giveBack(true, rep.responseTo())
		if clientGone {
			continue // drain until FerretDB hangs up
		}
		if _, err := c.client.Write(rep); err != nil {
			clientGone = true
		}
	}
}

// giveBack returns the turn if this connection holds it: for a reply, only
// when it answers the request that took the turn.
func (c *gateConn) giveBack(reply bool, responseTo int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding || (reply && responseTo != c.heldFor) {
		return
	}
	c.holding = false
	<-c.g.turn
}
