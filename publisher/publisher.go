// Package publisher turns intents from NATS JetStream into PDS writes. An
// intent is a hint, not a command: the reconcile engine reads the mood's
// current state in Mongo and converges the PDS to it, so redelivered,
// reordered and duplicated intents are harmless.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Engine is what the publisher asks of the reconcile engine
// (*reconcile.Engine).
type Engine interface {
	SyncMoods(ctx context.Context, user string, ids []string) map[string]error
	ReconcileUser(ctx context.Context, user string, cause reconcile.Cause, o reconcile.ReconcileOptions) (*reconcile.Outcome, error)
	Purge(ctx context.Context, user, did string, asOf time.Time) error
}

// Config tunes the publisher. Zero values take the defaults.
type Config struct {
	// Concurrency is how many users' batches are worked on at once.
	Concurrency int
	// BatchSize is the most intents fetched at once. They are grouped by
	// user, and each user's group is written in applyWrites calls of up to
	// 200 ops, so a fetch larger than 200 keeps batches full when a burst
	// spans several users.
	BatchSize int
	// AckWait is how long JetStream waits before redelivering an intent
	// that was neither acknowledged nor reported in progress.
	AckWait time.Duration
	// MinBackoff and MaxBackoff bound the delay before a failed intent is
	// retried; it doubles with each delivery.
	MinBackoff, MaxBackoff time.Duration
	// BatchLinger is how long the publisher keeps collecting intents after
	// the first one arrives, so a burst (a backfill, a busy minute) becomes
	// full applyWrites batches. It adds at most this much latency.
	BatchLinger time.Duration
	// ShutdownGrace is how long in-flight work may finish after the stop
	// signal before it is cancelled and handed back to JetStream.
	ShutdownGrace time.Duration
	// ParkPoll is how often parked users whose backoff expired are looked
	// for (see park.go).
	ParkPoll time.Duration
	// KeepOrphans turns the orphan policy off for reconcile intents:
	// records whose mood is gone are left on the PDS.
	KeepOrphans bool
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.AckWait <= 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.BatchLinger <= 0 {
		c.BatchLinger = 25 * time.Millisecond
	}
	if c.ParkPoll <= 0 {
		c.ParkPoll = 500 * time.Millisecond
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return c
}

// Outcomes of one intent, as reported to Observe.
const (
	OutcomeApplied = "applied" // converged (possibly with nothing to do)
	OutcomeRetry   = "retry"   // transient failure: handed back with a delay
	OutcomeDead    = "dead"    // permanent failure: dead-lettered
)

// Publisher consumes intents and applies them through the engine.
type Publisher struct {
	js     jetstream.JetStream
	engine Engine
	cfg    Config
	log    *slog.Logger

	// Observe, when set, is told the outcome of every intent.
	Observe func(op, outcome string)
	// Park, when set, is where users in trouble are parked (park.go);
	// without it a transiently failing intent is handed back to JetStream
	// with a delay. Set it before Run.
	Park ParkStore

	parked parkedSet

	// busy are the users being worked on, with the intents fetched for
	// them meanwhile: one worker per user, so a user whose work is slow
	// (a failing PDS, a big batch) holds one slot, never several.
	busyMu sync.Mutex
	busy   map[string][]item

	reconcileOpts reconcile.ReconcileOptions
}

// New returns a publisher; call Run to start it.
func New(js jetstream.JetStream, engine Engine, cfg Config, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{js: js, engine: engine, cfg: cfg.withDefaults(), log: log,
		reconcileOpts: reconcile.ReconcileOptions{Fix: reconcile.FixOptions{KeepOrphans: cfg.KeepOrphans}}}
}

// item is one fetched intent.
type item struct {
	msg    jetstream.Msg
	intent intent.Intent
}

// Run consumes intents until ctx is cancelled. On cancellation it stops
// fetching, lets in-flight work finish for up to ShutdownGrace, then
// cancels what is left; unfinished intents are handed back (nak), never
// acknowledged.
func (p *Publisher) Run(ctx context.Context) error {
	cons, err := EnsureConsumer(ctx, p.js, p.cfg.AckWait)
	if err != nil {
		return err
	}
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	p.log.Info("publisher started", "stream", intent.Stream, "consumer", Durable, "concurrency", p.cfg.Concurrency)
	if p.Park != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.parkLoop(ctx, workCtx, &wg) }()
	}

	fetchFailures := 0
	for ctx.Err() == nil {
		msgs, err := p.fetch(ctx, cons)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fetchFailures++
			delay := p.backoff(fetchFailures)
			p.log.Warn("fetching intents failed", "err", err, "retry_in", delay)
			backoff.Sleep(ctx, delay)
			continue
		}
		fetchFailures = 0
		for user, items := range p.group(workCtx, msgs) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for _, it := range items {
					_ = it.msg.Nak()
				}
				continue
			}
			if !p.claimUser(user, items) {
				// Already being worked on here: its worker takes these
				// next, in order, without holding a second slot.
				<-sem
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				p.userWorker(workCtx, user, items)
			}()
		}
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.ShutdownGrace):
		p.log.Warn("shutdown grace over: handing unfinished intents back")
		cancelWork()
		<-done
	}
	p.log.Info("publisher stopped")
	return nil
}

// fetch waits for at least one intent, then collects more for up to
// BatchLinger, so a burst becomes one batch.
func (p *Publisher) fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	first, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range first.Messages() {
		msgs = append(msgs, m)
	}
	if err := first.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && len(msgs) == 0 {
		return nil, err
	}
	if len(msgs) == 0 || ctx.Err() != nil {
		return msgs, nil
	}
	if p.cfg.BatchSize == 1 {
		return msgs, nil
	}
	rest, err := cons.Fetch(p.cfg.BatchSize-1, jetstream.FetchMaxWait(p.cfg.BatchLinger))
	if err != nil {
		return msgs, nil
	}
	for m := range rest.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// group parses the fetched messages and sorts them by user, keeping each
// user's intents in stream order. Malformed intents are dead-lettered here.
func (p *Publisher) group(ctx context.Context, msgs []jetstream.Msg) map[string][]item {
	groups := make(map[string][]item)
	for _, m := range msgs {
		in, err := intent.Parse(m.Subject(), m.Data())
		if err != nil {
			p.settle(ctx, item{msg: m, intent: in}, err)
			continue
		}
		groups[in.User] = append(groups[in.User], item{msg: m, intent: in})
	}
	return groups
}

// handleUser applies one user's intents in order. Consecutive create and
// delete intents are converged together (applyWrites batches of up to
// reconcile.MaxBatch moods); purge and reconcile intents each run on their
// own, between them. At the first transient failure the user is parked
// with every intent of theirs not settled yet (park.go), and the intents of
// a user already parked are parked without being tried.
func (p *Publisher) handleUser(ctx context.Context, user string, items []item) {
	if p.Park != nil && p.parked.has(user) {
		p.parkItems(ctx, user, items, nil)
		return
	}
	for len(items) > 0 {
		switch items[0].intent.Op {
		case intent.OpPurge:
			err := p.engine.Purge(ctx, user, items[0].intent.DID, askedAt(items[0].msg))
			if p.parkable(ctx, err) {
				p.parkItems(ctx, user, items, err)
				return
			}
			p.settle(ctx, items[0], err)
			items = items[1:]
		case intent.OpReconcile:
			// Reconciles of one user queued together (a gap and a sweep,
			// say) are one pass: it reads the repo once and answers all.
			n := 1
			for n < len(items) && items[n].intent.Op == intent.OpReconcile {
				n++
			}
			causes := make([]string, n)
			for i, it := range items[:n] {
				causes[i] = it.intent.Cause
			}
			_, err := p.engine.ReconcileUser(ctx, user, reconcile.StrongestCause(causes), p.reconcileOpts)
			if p.parkable(ctx, err) {
				p.parkItems(ctx, user, items, err)
				return
			}
			for _, it := range items[:n] {
				p.settle(ctx, it, err)
			}
			items = items[n:]
		default:
			n := 0
			for n < len(items) && (items[n].intent.Op == intent.OpCreate || items[n].intent.Op == intent.OpDelete) {
				n++
			}
			run, rest := items[:n], items[n:]
			for len(run) > 0 {
				chunk := moodChunk(run)
				ids := make([]string, len(chunk))
				for i, it := range chunk {
					ids[i] = it.intent.MongoID
				}
				results := p.engine.SyncMoods(ctx, user, ids)
				var failed []item
				var cause error
				for _, it := range chunk {
					if err := results[it.intent.MongoID]; p.parkable(ctx, err) {
						failed, cause = append(failed, it), err
						continue
					}
					p.settle(ctx, it, results[it.intent.MongoID])
				}
				run = run[len(chunk):]
				if failed != nil {
					// The rest is not tried: it would most likely fail the
					// same way, one PDS call per mood.
					p.parkItems(ctx, user, append(append(failed, run...), rest...), cause)
					return
				}
			}
			items = rest
		}
	}
}

// moodChunk is the head of run naming at most reconcile.MaxBatch moods:
// one applyWrites batch.
func moodChunk(run []item) []item {
	seen := make(map[string]struct{}, reconcile.MaxBatch)
	for i, it := range run {
		if _, ok := seen[it.intent.MongoID]; !ok {
			if len(seen) == reconcile.MaxBatch {
				return run[:i]
			}
			seen[it.intent.MongoID] = struct{}{}
		}
	}
	return run
}

// claimUser makes the caller user's worker, or, when user already has
// one, hands it items and returns false.
func (p *Publisher) claimUser(user string, items []item) bool {
	p.busyMu.Lock()
	defer p.busyMu.Unlock()
	if p.busy == nil {
		p.busy = map[string][]item{}
	}
	if waiting, ok := p.busy[user]; ok {
		p.busy[user] = append(waiting, items...)
		return false
	}
	p.busy[user] = nil
	return true
}

// userWorker handles user's intents, then those fetched for the user
// meanwhile, until none are left.
func (p *Publisher) userWorker(ctx context.Context, user string, items []item) {
	working, stop := p.keepAlive(user)
	defer stop()
	for {
		working(items)
		p.handleUser(ctx, user, items)
		p.busyMu.Lock()
		items = p.busy[user]
		if len(items) == 0 {
			delete(p.busy, user)
			p.busyMu.Unlock()
			return
		}
		p.busy[user] = nil
		p.busyMu.Unlock()
	}
}

// keepAlive tells JetStream the intents of user's worker are still being
// worked on or waiting for it, so a long batch (a slow PDS) is not
// redelivered to another replica meanwhile.
func (p *Publisher) keepAlive(user string) (working func([]item), stop func()) {
	done := make(chan struct{})
	var mu sync.Mutex
	var current []item
	go func() {
		t := time.NewTicker(p.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.busyMu.Lock()
				waiting := slices.Clone(p.busy[user])
				p.busyMu.Unlock()
				mu.Lock()
				cur := current
				mu.Unlock()
				for _, it := range append(cur, waiting...) {
					_ = it.msg.InProgress()
				}
			}
		}
	}()
	working = func(items []item) {
		mu.Lock()
		current = items
		mu.Unlock()
	}
	return working, func() { close(done) }
}

// settle acknowledges, retries or dead-letters one intent.
func (p *Publisher) settle(ctx context.Context, it item, err error) {
	op := it.intent.Op
	if op == "" {
		op = "invalid"
	}
	switch {
	case err == nil:
		if aerr := it.msg.Ack(); aerr != nil {
			p.log.Warn("ack failed; the intent will be redelivered", "subject", it.msg.Subject(), "err", aerr)
		}
		p.observe(op, OutcomeApplied)
	case model.IsPermanent(err):
		reason := headerText(err.Error(), MaxReasonLen)
		if derr := p.deadLetter(ctx, it, reason); derr != nil {
			p.retry(it, op, fmt.Errorf("dead-lettering failed: %w", derr))
			return
		}
		// The dead letter carries the intent's stream sequence as its
		// message id, so should this ack be lost the redelivered intent's
		// dead letter is dropped as a duplicate (the dead stream's window,
		// 2 minutes, is longer than AckWait): one dead letter per intent.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if aerr := it.msg.DoubleAck(actx); aerr != nil {
			p.log.Warn("ack of a dead-lettered intent failed; its redelivery is dropped as a duplicate", "subject", it.msg.Subject(), "err", aerr)
		}
		p.log.Warn("intent dead-lettered", "subject", it.msg.Subject(), "user", it.intent.User, "mood", it.intent.MongoID, "reason", reason)
		p.observe(op, OutcomeDead)
	case ctx.Err() != nil:
		// Shutting down: hand it straight back for another replica.
		_ = it.msg.Nak()
		p.observe(op, OutcomeRetry)
	default:
		p.retry(it, op, err)
	}
}

// retry hands an intent back to JetStream with a delay that grows with
// its deliveries.
func (p *Publisher) retry(it item, op string, err error) {
	delivered := uint64(1)
	if md, merr := it.msg.Metadata(); merr == nil {
		delivered = md.NumDelivered
	}
	delay := p.backoff(int(delivered))
	_ = it.msg.NakWithDelay(delay)
	p.log.Warn("intent failed; will retry", "subject", it.msg.Subject(), "user", it.intent.User,
		"mood", it.intent.MongoID, "delivery", delivered, "retry_in", delay, "err", err)
	p.observe(op, OutcomeRetry)
}

func (p *Publisher) observe(op, outcome string) {
	if p.Observe != nil {
		p.Observe(op, outcome)
	}
}

// backoff is the delay before retry n (1-based): doubling from MinBackoff
// up to MaxBackoff, with jitter so retries of many intents spread.
func (p *Publisher) backoff(n int) time.Duration {
	return backoff.Delay(n, p.cfg.MinBackoff, p.cfg.MaxBackoff)
}
