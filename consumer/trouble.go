package consumer

import (
	"context"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// One user's trouble stays that user's. The follower is sequential: an op
// retried inline for long (a PDS answering 5xx or 429 for one repo, Mongo
// refusing one document, the user's lock held by a long batch) would stop
// the firehose for every user. So an op gets OpBound, retries included;
// past it (or when the error says not to retry before a time beyond it, a
// rate limit) the user is handed to the reconcile queue — a reconcile
// intent, stored by JetStream before the follower goes on, so the cursor
// never passes an op that nothing will repair — the repo's chain is
// forgotten (its next commit is checked against the repo), and for
// TroubleHold its mood ops are not tried, each commit carrying some only
// answered with another queued reconcile. A call still running when the
// bound passes finishes in the background, and then the user is queued
// once more, so a reconcile runs after it whatever it did.

// Defaults of Config.OpBound and Config.TroubleHold.
const (
	DefaultOpBound     = 3 * time.Second
	DefaultTroubleHold = 30 * time.Second
)

// maxTrouble bounds the repos remembered in trouble; past it the oldest
// marks that expired are dropped, and a repo not remembered is only tried
// again (with its bound).
const maxTrouble = 10_000

// troubleMark is a repo handed off: its ops are not tried before until,
// nor while an op abandoned to the background runs (busy open).
type troubleMark struct {
	until time.Time
	busy  chan struct{}
}

// inTrouble reports whether did's ops are handed off without being tried.
func (c *Consumer) inTrouble(did string, now time.Time) bool {
	m, ok := c.trouble[did]
	if !ok {
		return false
	}
	if m.busy != nil {
		select {
		case <-m.busy:
		default:
			return true
		}
	}
	if now.Before(m.until) {
		return true
	}
	delete(c.trouble, did)
	return false
}

// markTrouble hands did off for TroubleHold (and while busy is open).
func (c *Consumer) markTrouble(did string, busy chan struct{}) {
	now := time.Now()
	if len(c.trouble) >= maxTrouble {
		for d := range c.trouble {
			c.inTrouble(d, now) // drops the expired
		}
	}
	if _, ok := c.trouble[did]; !ok && len(c.trouble) >= maxTrouble {
		return
	}
	if m, ok := c.trouble[did]; ok && busy == nil {
		busy = m.busy
	}
	c.trouble[did] = troubleMark{until: now.Add(c.cfg.TroubleHold), busy: busy}
}

// handOff queues a reconcile of acct's user for why, forgets the repo's
// chain and marks it in trouble. It returns once JetStream stored the
// intent; an error only when ctx ends.
func (c *Consumer) handOff(ctx context.Context, acct model.Account, why string, busy chan struct{}) error {
	c.stats.handOffs.Add(1)
	delete(c.chains, acct.DID)
	c.markTrouble(acct.DID, busy)
	return c.reconcileUser(ctx, acct, why)
}

// applyBounded runs one op's engine call until it succeeds, fails
// permanently (counted, logged, given up: settled) or OpBound passes:
// then settled is false, and busy, when not nil, is closed once a call
// still running returns. Only ctx ending is an error.
func (c *Consumer) applyBounded(ctx context.Context, acct model.Account, what string, call func(context.Context) error) (settled bool, busy chan struct{}, err error) {
	deadline := time.Now().Add(c.cfg.OpBound)
	timer := time.NewTimer(c.cfg.OpBound)
	defer timer.Stop()
	retry := backoff.New(100*time.Millisecond, c.cfg.MaxBackoff)
	for {
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			<-done
			return false, nil, ctx.Err()
		case <-timer.C:
			// Still running (waiting for the user's lock behind a long
			// batch, or a slow PDS): it finishes in the background, and
			// the user is reconciled after it.
			busy := make(chan struct{})
			go c.afterAbandoned(ctx, acct, done, busy)
			c.log.Warn("op still running past its bound: handing the user to the reconcile queue", "what", what, "bound", c.cfg.OpBound)
			return false, busy, nil
		}
		if err == nil {
			return true, nil, nil
		}
		if ctx.Err() != nil {
			return false, nil, ctx.Err()
		}
		if model.IsPermanent(err) {
			c.stats.errors.Add(1)
			c.log.Error("giving up", "what", what, "err", err)
			return true, nil, nil
		}
		wait := retry.Next()
		if until, ok := model.RetryNotBefore(err); ok && time.Until(until) > wait {
			wait = time.Until(until)
		}
		if time.Now().Add(wait).After(deadline) {
			c.log.Warn("op keeps failing: handing the user to the reconcile queue", "what", what, "err", err)
			return false, nil, nil
		}
		c.log.Warn("failed; retrying", "what", what, "err", err, "in", wait.Round(time.Millisecond))
		if !backoff.Sleep(ctx, wait) {
			return false, nil, ctx.Err()
		}
	}
}

// afterAbandoned waits for a call the follower stopped waiting for, then
// queues the user's reconcile again: it runs after whatever the call did.
func (c *Consumer) afterAbandoned(ctx context.Context, acct model.Account, done chan error, busy chan struct{}) {
	err := <-done
	close(busy)
	if ctx.Err() != nil {
		return
	}
	c.log.Info("an op handed off has returned: queueing the user's reconcile again", "user", acct.User, "did", acct.DID, "err", err)
	c.stats.userReconciles.Add(1)
	_ = c.retry(ctx, "queue a reconcile of "+acct.User, func() error {
		return c.queue.Enqueue(ctx, acct.User, reconcile.CauseGap)
	})
}
