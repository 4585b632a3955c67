package consumer

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/events"
	"github.com/bluesky-social/indigo/events/schedulers/sequential"
	"github.com/gorilla/websocket"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
)

// HeadProbe measures how far the firehose follower is behind. It keeps a
// second, cursor-less subscription to the firehose, which only ever sees
// live events: the newest seq it saw is the head, and the arrival time of
// the oldest event the follower has not handled yet is how long the
// follower is behind. It runs on the leader only. It reads every frame a
// second time: cheap on the app's own PDS; against a busy relay it doubles
// the traffic.
type HeadProbe struct {
	url string
	log *slog.Logger

	mu      sync.Mutex
	head    int64     // newest seq seen live; 0 until one is seen
	since   time.Time // when the probe started
	pending []arrival // live events, oldest first, not yet known handled
}

type arrival struct {
	seq int64
	at  time.Time
}

// maxPending bounds the arrivals kept while the follower is far behind.
const maxPending = 1 << 16

// NewHeadProbe returns a probe of the firehose at url; Run starts it.
func NewHeadProbe(url string, log *slog.Logger) *HeadProbe {
	return &HeadProbe{url: url, log: log.With("component", "lag-probe"), since: time.Now()}
}

// Run follows the live firehose until ctx ends, reconnecting with backoff.
func (p *HeadProbe) Run(ctx context.Context) {
	retry := backoff.New(time.Second, 30*time.Second)
	for ctx.Err() == nil {
		err := p.once(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := retry.Next()
		p.log.Debug("lag probe disconnected; reconnecting", "err", err, "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

func (p *HeadProbe) once(ctx context.Context) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	con, resp, err := d.DialContext(ctx, p.url, http.Header{"User-Agent": []string{"moodsync-lag-probe"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return err
	}
	con.SetReadLimit(MaxFrameBytes)
	sched := sequential.NewScheduler("moodsync-lag-probe", func(_ context.Context, xev *events.XRPCStreamEvent) error {
		if seq, ok := xev.GetSequence(); ok && seq > 0 {
			p.saw(seq, time.Now())
		}
		return nil
	})
	return events.HandleRepoStream(ctx, con, sched, p.log)
}

func (p *HeadProbe) saw(seq int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.head {
		return
	}
	p.head = seq
	if len(p.pending) < maxPending {
		p.pending = append(p.pending, arrival{seq, at})
	} else {
		// Full: the newest stands in for the ones not kept, so a follower
		// past the kept ones still shows (at least) its age.
		p.pending[len(p.pending)-1] = arrival{seq, at}
	}
}

// Lag is where the follower stands against the head, given the seq it
// handled last: the head seq, events behind and seconds behind. known is
// false until the probe has seen a live event (an idle firehose).
func (p *HeadProbe) Lag(handled int64, now time.Time) (head, behind int64, seconds float64, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.pending) && p.pending[i].seq <= handled {
		i++
	}
	p.pending = p.pending[i:]
	if p.head == 0 {
		return 0, 0, 0, false
	}
	head = max(p.head, handled)
	if len(p.pending) > 0 {
		seconds = now.Sub(p.pending[0].at).Seconds()
	}
	return head, head - handled, seconds, true
}
