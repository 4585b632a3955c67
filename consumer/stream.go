package consumer

// The firehose read loop: gorilla/websocket frames into one reused buffer,
// the lean decoder (consumer/wire) for the header and #commit bodies, indigo's
// cbor-gen types for the rest. It keeps events.HandleRepoStream's
// behaviour (binary frames only, pings every 30 s, a minute's read
// deadline after each pong, a decode error ends the connection, unknown
// message types are passed over) and the sequential scheduler's (one frame
// at a time, handled before the next is read; an error ends the
// connection without marking the event handled).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/events"
	"github.com/gorilla/websocket"
	"github.com/whistlegraph/moodsync/consumer/wire"
)

// keepFrameBuf is the largest read buffer kept between frames; a larger
// one (a rare big commit) is dropped after use.
const keepFrameBuf = 1 << 20

// readBufferSize is the connection's read buffer.
const readBufferSize = 64 << 10

// readStream reads and handles frames until ctx ends or the connection
// fails.
func (c *Consumer) readStream(ctx context.Context, con *websocket.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go keepAlive(ctx, con)
	con.SetPingHandler(func(message string) error {
		err := con.WriteControl(websocket.PongMessage, []byte(message), time.Now().Add(time.Minute))
		var ne net.Error
		if err == websocket.ErrCloseSent || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	con.SetPongHandler(func(string) error { return con.SetReadDeadline(time.Now().Add(time.Minute)) })
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		mt, r, err := con.NextReader()
		if err != nil {
			return fmt.Errorf("con err at read: %w", err)
		}
		if mt != websocket.BinaryMessage {
			return errors.New("expected binary message from subscription endpoint")
		}
		if c.frame, err = readFrame(r, c.frame[:0]); err != nil {
			return fmt.Errorf("con err at read: %w", err)
		}
		err = c.handleFrame(ctx, c.frame)
		if cap(c.frame) > keepFrameBuf {
			c.frame = nil
		}
		if err != nil {
			return err
		}
	}
}

// keepAlive pings the server every 30 s, and closes the connection after
// four failed pings in a row or when ctx ends (which unblocks the read).
func keepAlive(ctx context.Context, con *websocket.Conn) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			con.Close()
			return
		case <-t.C:
			if err := con.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				if fails++; fails >= 4 {
					con.Close()
					return
				}
			} else {
				fails = 0
			}
		}
	}
}

// readFrame appends one message to buf.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// handleFrame decodes one frame and handles its event. A frame that does
// not decode ends the connection, as with HandleRepoStream.
func (c *Consumer) handleFrame(ctx context.Context, frame []byte) error {
	h, body, err := wire.DecodeHeader(frame)
	if err != nil {
		return err
	}
	switch h.Op {
	case events.EvtKindMessage:
	case events.EvtKindErrorFrame:
		var ef events.ErrorFrame
		if err := ef.UnmarshalCBOR(bytes.NewReader(body)); err != nil {
			return err
		}
		return c.handle(ctx, &events.XRPCStreamEvent{Error: &ef})
	default:
		return fmt.Errorf("unrecognized event stream type: %d", h.Op)
	}
	if string(h.MsgType) == "#commit" {
		return c.commitFrame(ctx, body)
	}
	xev, err := decodeEvent(h.MsgType, body)
	if xev == nil || err != nil {
		return err // nil: a type this stream does not carry (#labels), passed over
	}
	seq, _ := xev.GetSequence()
	c.lag.begin(seq, eventTime(xev))
	defer c.lag.end()
	return c.handle(ctx, xev)
}

// decodeEvent decodes the body of an event other than #commit with
// indigo's types; nil for a type a repo stream does not carry.
func decodeEvent(msgType, body []byte) (*events.XRPCStreamEvent, error) {
	var xev events.XRPCStreamEvent
	var err error
	switch string(msgType) {
	case "#sync":
		xev.RepoSync = &comatproto.SyncSubscribeRepos_Sync{}
		err = xev.RepoSync.UnmarshalCBOR(bytes.NewReader(body))
	case "#identity":
		xev.RepoIdentity = &comatproto.SyncSubscribeRepos_Identity{}
		err = xev.RepoIdentity.UnmarshalCBOR(bytes.NewReader(body))
	case "#account":
		xev.RepoAccount = &comatproto.SyncSubscribeRepos_Account{}
		err = xev.RepoAccount.UnmarshalCBOR(bytes.NewReader(body))
	case "#info":
		xev.RepoInfo = &comatproto.SyncSubscribeRepos_Info{}
		err = xev.RepoInfo.UnmarshalCBOR(bytes.NewReader(body))
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s event: %w", msgType, err)
	}
	return &xev, nil
}

// eventTime is the time field of an event ("" for #info).
func eventTime(xev *events.XRPCStreamEvent) string {
	switch {
	case xev.RepoSync != nil:
		return xev.RepoSync.Time
	case xev.RepoIdentity != nil:
		return xev.RepoIdentity.Time
	case xev.RepoAccount != nil:
		return xev.RepoAccount.Time
	}
	return ""
}

// commitFrame handles a #commit. A commit of a repo that is not one of our
// users' costs the body's decode in place and one map lookup: nothing is
// allocated and no block is touched.
func (c *Consumer) commitFrame(ctx context.Context, body []byte) error {
	v := &c.view
	if err := v.Decode(body); err != nil {
		return fmt.Errorf("reading repoCommit event: %w", err)
	}
	c.lag.beginBytes(v.Seq, v.Time)
	defer c.lag.end()
	if !c.accounts.hasBytes(v.Repo) && !c.accounts.stale(time.Now()) {
		c.noteMiss()
		c.stats.dropped.Add(1)
		c.stats.events.Add(1)
		c.markHandled(v.Seq)
		return nil
	}
	evt, err := v.Event()
	if err != nil {
		return fmt.Errorf("reading repoCommit event: %w", err)
	}
	return c.handle(ctx, &events.XRPCStreamEvent{RepoCommit: evt})
}
