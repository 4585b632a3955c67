package consumer

// How far behind the follower is, measured from what it already reads:
// every event carries the time the server sequenced it, so the age of the
// event being handled (or of the last one, when it was handled) is how far
// behind the follower is in time; no frame is decoded twice for it. On a
// live stream the last seq read is the head. While the follower is behind
// (catching up from a stored cursor), the server's head seq is not in the
// stream it reads: a check every headCheckEvery opens a cursor-less
// subscription, reads the seq of its first event and closes it — one
// frame per check, and none while the follower keeps up.

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluesky-social/indigo/events"
	"github.com/gorilla/websocket"
	"github.com/whistlegraph/moodsync/consumer/wire"
)

const (
	// headCheckEvery is how often the server's head seq is asked for while
	// the follower is behind.
	headCheckEvery = 30 * time.Second
	// behindAfter is how old a handled event must be for the follower to
	// count as behind, and the head to be asked for.
	behindAfter = 10 * time.Second
	// headCheckWait bounds a check: an idle stream may send nothing.
	headCheckWait = 10 * time.Second
)

// lagTracker keeps the event in hand and the last one handled: their seq
// and time field as sent (parsed only when asked).
type lagTracker struct {
	mu        sync.Mutex
	busy      bool // an event is being handled
	cur, last eventStamp
	handledAt time.Time
	head      atomic.Int64 // the server's head seq as last asked; 0: never
}

type eventStamp struct {
	seq  int64
	n    int
	time [40]byte // an RFC 3339 time fits
}

func (s *eventStamp) set(seq int64, t []byte) {
	s.seq = seq
	s.n = copy(s.time[:], t)
}

func (s *eventStamp) setString(seq int64, t string) {
	s.seq = seq
	s.n = copy(s.time[:], t)
}

func (s *eventStamp) at() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(s.time[:s.n]))
	return t, err == nil
}

// beginBytes notes the event about to be handled.
func (l *lagTracker) beginBytes(seq int64, t []byte) {
	l.mu.Lock()
	l.busy = true
	l.cur.set(seq, t)
	l.mu.Unlock()
}

func (l *lagTracker) begin(seq int64, t string) {
	l.mu.Lock()
	l.busy = true
	l.cur.setString(seq, t)
	l.mu.Unlock()
}

// end notes that the event in hand is done with.
func (l *lagTracker) end() {
	now := time.Now()
	l.mu.Lock()
	l.busy = false
	l.last = l.cur
	l.handledAt = now
	l.mu.Unlock()
}

// behind is the follower's lag in time: the age of the event in hand, or
// the age the last event had when it was handled. known is false before
// any event with a time.
func (l *lagTracker) behind(now time.Time) (seconds float64, known bool) {
	l.mu.Lock()
	busy, cur, last, handledAt := l.busy, l.cur, l.last, l.handledAt
	l.mu.Unlock()
	var d time.Duration
	if t, ok := cur.at(); busy && ok {
		d, known = now.Sub(t), true
	} else if t, ok := last.at(); ok {
		d, known = handledAt.Sub(t), true
	}
	return max(d, 0).Seconds(), known
}

// Lag is where the follower stands: the head seq (the newest known of the
// server, at least the last handled), events behind it, and seconds
// behind. known is false until an event was handled.
func (c *Consumer) Lag(now time.Time) (head, behind int64, seconds float64, known bool) {
	handled := c.handled.Load()
	seconds, known = c.lag.behind(now)
	if !known && handled == 0 {
		return 0, 0, 0, false
	}
	head = max(c.lag.head.Load(), handled)
	return head, head - handled, seconds, true
}

// checkHead asks the server for its head seq every headCheckEvery while
// the follower is behind.
func (c *Consumer) checkHead(ctx context.Context) {
	t := time.NewTicker(headCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if secs, known := c.lag.behind(time.Now()); !known || secs < behindAfter.Seconds() {
			continue
		}
		if seq, ok := c.headSeq(ctx); ok && seq > c.lag.head.Load() {
			c.lag.head.Store(seq)
		}
	}
}

// headSeq opens a cursor-less subscription and returns the seq of the
// first event it sends: the server's head.
func (c *Consumer) headSeq(ctx context.Context) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, headCheckWait)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: headCheckWait, Proxy: http.ProxyFromEnvironment}
	con, resp, err := d.DialContext(ctx, c.dialURL, http.Header{"User-Agent": []string{"moodsync-head-check"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return 0, false
	}
	defer con.Close()
	con.SetReadLimit(MaxFrameBytes)
	deadline, _ := ctx.Deadline()
	_ = con.SetReadDeadline(deadline)
	for i := 0; i < 16; i++ {
		_, data, err := con.ReadMessage()
		if err != nil {
			return 0, false
		}
		if seq, ok := frameSeq(data); ok {
			return seq, true
		}
	}
	return 0, false
}

// frameSeq is the seq of a frame's event, if it has one.
func frameSeq(frame []byte) (int64, bool) {
	h, body, err := wire.DecodeHeader(frame)
	if err != nil || h.Op != events.EvtKindMessage {
		return 0, false
	}
	if string(h.MsgType) == "#commit" {
		var v wire.CommitView
		if v.Decode(body) != nil {
			return 0, false
		}
		return v.Seq, v.Seq > 0
	}
	xev, err := decodeEvent(h.MsgType, body)
	if xev == nil || err != nil {
		return 0, false
	}
	return xev.GetSequence()
}
