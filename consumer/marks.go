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

// marksQueued is how many marks may wait for markWriter; past it a mark is
// dropped and asked again at the DID's next event.
const marksQueued = 1024

// eventMark is one mark on its way to the bindings of did.
type eventMark struct {
	did  string
	mark model.EventMark
}

// noteEvent records the event just seen of one of our users' DIDs on the
// bindings to it (moodsync status shows it): commits at most once every
// noteEvery per DID, account events always (they are rare). It is a hint
// for operators, so it never holds the stream: the write is markWriter's,
// and a mark that finds its queue full is dropped (and asked again at the
// DID's next event). now is the time of handling. Only the handler
// goroutine calls it.
//
// A DID with no binding yet (its user was never reconciled nor written
// for) marks nothing, and is throttled all the same: asking again at every
// commit would cost a Mongo write per commit of a busy unbound user. A
// binding made meanwhile gets its first mark at most noteEvery late.
func (c *Consumer) noteEvent(did, kind string, seq int64, now time.Time) {
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
	select {
	case c.marks <- eventMark{did: did, mark: model.EventMark{At: now.UTC(), Kind: kind, Seq: seq}}:
		c.noted[did] = now
	default:
		c.log.Debug("last-event marks queue full; dropped one", "did", did, "kind", kind, "seq", seq)
	}
}

// markWriter writes the marks noteEvent queues, in order, until ctx ends.
func (c *Consumer) markWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.marks:
			c.writeMark(ctx, m)
		}
	}
}

// writeMark writes one mark; a failure is logged.
func (c *Consumer) writeMark(ctx context.Context, m eventMark) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.store.NoteEvent(wctx, m.did, m.mark); err != nil {
		c.log.Warn("could not record the last firehose event", "did", m.did, "kind", m.mark.Kind, "seq", m.mark.Seq, "err", err)
	}
}
