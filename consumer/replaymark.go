package consumer

import "context"

// A delete op that follows its repo's last commit seen is applied without
// reading the record back (the fast path): one PDS round trip less per
// delete on a busy stream. That is safe only for a commit no earlier run
// can have handled: after a restart or a leader change the follower
// resumes from the stored cursor, which is behind what was handled, and
// replays commits that all "follow" each other — a key re-linked since (a
// mood written again at its deterministic key) must not lose its mood to a
// replayed delete. So before a delete takes the fast path, the seq it has
// is covered by a mark stored in Mongo ahead of time (markAhead seqs at
// once, one write per markAhead seqs); a run starts by reading the mark,
// and every seq up to it may be a replay: those deletes read the record
// first.

// markAhead is how far past the seq being handled the mark is stored.
const markAhead = 1000

// markStream is the key of the mark beside the cursor.
func (c *Consumer) markStream() string { return c.stream + "#fast-path" }

// loadReplayMark reads the mark at the start of a run that resumes from
// cursor, and stores it ahead of the cursor at once, so the first deletes
// of the run take the fast path without a write of their own.
func (c *Consumer) loadReplayMark(ctx context.Context, cursor int64) error {
	seq, ok, err := c.store.LoadCursor(ctx, c.markStream())
	if err != nil {
		return err
	}
	if ok {
		c.replayedUpTo, c.markedUpTo = seq, seq
	}
	if ahead := max(seq, cursor) + markAhead; cursor > 0 && ahead > c.markedUpTo {
		if err := c.store.SaveCursor(ctx, c.markStream(), ahead); err != nil {
			return err
		}
		c.markedUpTo = ahead
	}
	return nil
}

// fastPath reports whether a delete in the commit at seq may skip the read:
// seq is past every seq an earlier run can have handled, and covered by the
// stored mark (stored now when it is not; a store that fails means the
// slow path, never a guess).
func (c *Consumer) fastPath(ctx context.Context, seq int64) bool {
	if seq <= c.replayedUpTo {
		return false
	}
	if seq > c.markedUpTo {
		if err := c.store.SaveCursor(ctx, c.markStream(), seq+markAhead); err != nil {
			c.log.Warn("could not store the fast-path mark; deletes read their record first", "err", err)
			return false
		}
		c.markedUpTo = seq + markAhead
	}
	return true
}

// forgetReplayMark drops the mark with the cursor (a restored PDS starts
// its seqs again).
func (c *Consumer) forgetReplayMark(ctx context.Context) {
	if err := c.store.DeleteCursor(ctx, c.markStream()); err != nil {
		c.log.Warn("could not delete the fast-path mark", "err", err)
	}
	c.replayedUpTo, c.markedUpTo = 0, 0
}
