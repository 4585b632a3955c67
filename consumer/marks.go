package consumer

import (
	"context"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// noteEvery is how often, at most, a DID's commits are recorded as its last
// firehose event: a map lookup per commit, one Mongo write a minute per
// active user.
const noteEvery = time.Minute

// maxNoted bounds the DIDs whose last write is remembered; past it the
// entries older than noteEvery are forgotten (which costs at most one
// extra write each).
const maxNoted = 10_000

// noteEvent records the event just seen of one of our users' DIDs on the
// bindings to it (moodsync status shows it): commits at most once every
// noteEvery per DID, account events always (they are rare). It is a hint
// for operators, so a failure is logged and never holds the stream.
// now is the time of handling. Only the handler goroutine calls it.
func (c *Consumer) noteEvent(ctx context.Context, did, kind string, seq int64, now time.Time) {
	if last, ok := c.noted[did]; ok && kind == model.EventCommit && now.Sub(last) < noteEvery {
		return
	}
	if c.noted == nil {
		c.noted = map[string]time.Time{}
	}
	if len(c.noted) >= maxNoted {
		for d, at := range c.noted {
			if now.Sub(at) >= noteEvery {
				delete(c.noted, d)
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	mark := model.EventMark{At: now.UTC(), Kind: kind, Seq: seq}
	// A DID with no binding yet (its user was never reconciled nor written
	// for) marks nothing, and is throttled all the same: asking again at
	// every commit would cost a Mongo write per commit of a busy unbound
	// user. A binding made meanwhile gets its first mark at most noteEvery
	// late: it is a hint.
	if err := c.store.NoteEvent(wctx, did, mark); err != nil {
		c.log.Warn("could not record the last firehose event", "did", did, "kind", kind, "seq", seq, "err", err)
	}
	c.noted[did] = now
}
