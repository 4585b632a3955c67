package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// One user's trouble stays that user's. An intent that fails transiently is
// not handed back to JetStream to wait there (a nak'ed intent counts
// against the consumer's MaxAckPending, so a thousand intents of one
// failing user would hold the delivery window from everyone): the user is
// parked instead. What their intents owe is written to moodsync_parked
// (model.Parked) and only then are the intents acknowledged; further
// intents of a parked user are parked the same way without being tried. A
// retry loop tries each parked user again when their own backoff expires
// (never before a rate limit's reset), first with one mood (a probe: a
// user still in trouble costs the PDS one write, not one per mood), then
// the rest; when nothing is owed any more the user is unparked.

// ParkStore keeps parked users (*mongostore.Store).
type ParkStore interface {
	Park(ctx context.Context, user string, add model.Parked, nextTry time.Time) error
	ParkedUsers(ctx context.Context, limit int) ([]string, error)
	ParkedDue(ctx context.Context, now time.Time, limit int) ([]string, error)
	ClaimParked(ctx context.Context, user string, now, until time.Time) (*model.Parked, error)
	FinishParked(ctx context.Context, claimed *model.Parked, done model.Parked, failure string, nextTry time.Time) (bool, error)
}

// OutcomeParked: the intent's user is in trouble; it was written to the
// user's parked document and acknowledged.
const OutcomeParked = "parked"

// maxParkedInMemory bounds the users this process remembers as parked;
// beyond it a parked user's intents are tried once before being parked.
const maxParkedInMemory = 100_000

// parkedSet is this process's view of the parked users, refreshed from
// the store by the retry loop.
type parkedSet struct {
	mu      sync.Mutex
	users   map[string]struct{}
	running map[string]struct{} // retries under way in this process
}

func (s *parkedSet) has(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.users[user]
	return ok
}

func (s *parkedSet) add(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == nil {
		s.users = map[string]struct{}{}
	}
	if len(s.users) < maxParkedInMemory {
		s.users[user] = struct{}{}
	}
}

func (s *parkedSet) remove(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, user)
}

func (s *parkedSet) reset(users []string) {
	m := make(map[string]struct{}, len(users))
	for _, u := range users {
		m[u] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = m
}

func (s *parkedSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// start marks a retry of user under way; false if one already is.
func (s *parkedSet) start(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[string]struct{}{}
	}
	if _, ok := s.running[user]; ok {
		return false
	}
	s.running[user] = struct{}{}
	return true
}

func (s *parkedSet) done(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, user)
}

// ParkedUsers is how many users this process knows to be parked.
func (p *Publisher) ParkedUsers() int { return p.parked.len() }

// parkable reports whether a failed intent's user is to be parked: the
// failure is transient and the publisher is not shutting down.
func (p *Publisher) parkable(ctx context.Context, err error) bool {
	return p.Park != nil && err != nil && !model.IsPermanent(err) && ctx.Err() == nil
}

// parkItems parks user's intents and acknowledges them; cause is the
// failure that put the user in trouble (nil: the user already was). When
// the park cannot be written the intents are handed back with a delay, as
// before parking existed: nothing is acknowledged that is not stored.
func (p *Publisher) parkItems(ctx context.Context, user string, items []item, cause error) {
	var add model.Parked
	for _, it := range items {
		switch it.intent.Op {
		case intent.OpCreate, intent.OpDelete:
			add.Moods = append(add.Moods, model.ParkedMood{ID: it.intent.MongoID, Op: it.intent.Op})
		case intent.OpReconcile:
			add.Reconcile = append(add.Reconcile, string(reconcile.ParseCause(it.intent.Cause)))
		case intent.OpPurge:
			add.Purge, add.PurgeDID, add.PurgeAskedAt = true, it.intent.DID, askedAt(it.msg)
		}
	}
	next := time.Now()
	if cause != nil {
		add.LastError = headerText(cause.Error(), MaxReasonLen)
		next = p.nextTry(1, cause)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := p.Park.Park(pctx, user, add, next); err != nil {
		why := fmt.Errorf("could not park the user (%v)", err)
		if cause != nil {
			why = fmt.Errorf("%w; could not park the user (%v)", cause, err)
		}
		for _, it := range items {
			p.retry(it, it.intent.Op, why)
		}
		return
	}
	p.parked.add(user)
	for _, it := range items {
		if aerr := it.msg.Ack(); aerr != nil {
			p.log.Warn("ack of a parked intent failed; its redelivery is parked again", "subject", it.msg.Subject(), "err", aerr)
		}
		p.observe(it.intent.Op, OutcomeParked)
	}
	if cause != nil {
		p.log.Warn("user in trouble: intents parked with a backoff of their own", "user", user,
			"intents", len(items), "retry_in", time.Until(next).Round(time.Millisecond), "err", cause)
	} else {
		p.log.Debug("intents of a parked user parked", "user", user, "intents", len(items))
	}
}

// nextTry is when a parked user is tried again after failure n (1-based):
// the publisher's backoff, and never before a rate limit resets.
func (p *Publisher) nextTry(n int, err error) time.Time {
	next := time.Now().Add(p.backoff(n))
	if until, ok := model.RetryNotBefore(err); ok && until.After(next) {
		next = until
	}
	return next
}

// parkLoop retries parked users whose backoff expired, at most
// Concurrency at once, beside (never in the slots of) the intents of
// everyone else. It refreshes the set of parked users from the store.
func (p *Publisher) parkLoop(ctx, workCtx context.Context, wg *sync.WaitGroup) {
	sem := make(chan struct{}, p.cfg.Concurrency)
	t := time.NewTicker(p.cfg.ParkPoll)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if tick%10 == 0 {
			if users, err := p.Park.ParkedUsers(ctx, maxParkedInMemory); err == nil {
				p.parked.reset(users)
			}
		}
		due, err := p.Park.ParkedDue(ctx, time.Now(), 4*p.cfg.Concurrency)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("reading parked users failed", "err", err)
			}
			continue
		}
		for _, user := range due {
			if !p.parked.start(user) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				p.parked.done(user) // all slots busy: next tick
				continue
			}
			p.parked.add(user)
			wg.Add(1)
			go func() {
				defer func() { <-sem; p.parked.done(user); wg.Done() }()
				p.retryParked(workCtx, user)
			}()
		}
	}
}

// probeSize is how many moods a parked user's retry tries first.
const probeSize = 1

// retryParked tries what a parked user is owed: a purge, then reconciles,
// then the moods (a probe, then the rest in batches), stopping at the
// first transient failure.
func (p *Publisher) retryParked(ctx context.Context, user string) {
	now := time.Now()
	claimed, err := p.Park.ClaimParked(ctx, user, now, now.Add(p.cfg.AckWait))
	if err != nil || claimed == nil {
		if err != nil && ctx.Err() == nil {
			p.log.Warn("claiming a parked user failed", "user", user, "err", err)
		}
		return
	}
	deliveries := claimed.Failures + 2 // the first try, and this one
	var done model.Parked
	var failure error
	// settled says whether one owed intent is settled (applied or
	// dead-lettered); a transient err becomes the retry's failure.
	settled := func(in intent.Intent, err error) bool {
		switch {
		case err == nil:
			p.observe(in.Op, OutcomeApplied)
			return true
		case model.IsPermanent(err):
			if derr := p.deadLetterParked(ctx, claimed, in, deliveries, err); derr != nil {
				failure = fmt.Errorf("dead-lettering failed: %w", derr)
				return false
			}
			p.observe(in.Op, OutcomeDead)
			return true
		default:
			failure = err
			return false
		}
	}
	if claimed.Purge {
		in := intent.Intent{Op: intent.OpPurge, User: user, DID: claimed.PurgeDID}
		done.Purge = settled(in, p.engine.Purge(ctx, user, claimed.PurgeDID, claimed.PurgeAskedAt))
	}
	if failure == nil && len(claimed.Reconcile) > 0 {
		_, err := p.engine.ReconcileUser(ctx, user, reconcile.StrongestCause(claimed.Reconcile), p.reconcileOpts)
		ok := true
		for _, c := range claimed.Reconcile {
			ok = settled(intent.Intent{Op: intent.OpReconcile, User: user, Cause: c}, err) && ok
		}
		if ok {
			done.Reconcile = claimed.Reconcile
		}
	}
	if failure == nil && len(claimed.Moods) > 0 {
		byID := map[string][]model.ParkedMood{}
		var ids []string
		for _, m := range claimed.Moods {
			if byID[m.ID] == nil {
				ids = append(ids, m.ID)
			}
			byID[m.ID] = append(byID[m.ID], m)
		}
		for size := probeSize; len(ids) > 0 && failure == nil; size = reconcile.MaxBatch {
			chunk := ids[:min(size, len(ids))]
			ids = ids[len(chunk):]
			results := p.engine.SyncMoods(ctx, user, chunk)
			for _, id := range chunk {
				for _, m := range byID[id] {
					if settled(intent.Intent{Op: m.Op, MongoID: m.ID, User: user}, results[id]) {
						done.Moods = append(done.Moods, m)
					}
				}
			}
		}
	}

	failMsg, next := "", time.Time{}
	switch {
	case ctx.Err() != nil:
		// Shutting down: whoever runs next tries again at once.
		failMsg, next = "interrupted by a shutdown", time.Now()
	case failure != nil:
		failMsg, next = headerText(failure.Error(), MaxReasonLen), p.nextTry(claimed.Failures+1, failure)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	still, err := p.Park.FinishParked(fctx, claimed, done, failMsg, next)
	switch {
	case err != nil:
		// The lease (AckWait) runs out and the retry repeats: nothing is
		// lost, intents are hints.
		p.log.Warn("recording a parked user's retry failed", "user", user, "err", err)
	case !still:
		p.parked.remove(user)
		p.log.Info("user out of trouble: every parked intent applied", "user", user,
			"parked_for", time.Since(claimed.Since).Round(time.Millisecond), "retries", claimed.Failures+1)
	case failure != nil:
		p.log.Warn("user still in trouble", "user", user, "owed", claimed.Owed(), "failures", claimed.Failures+1,
			"retry_in", time.Until(next).Round(time.Millisecond), "err", failure)
	}
}

// deadLetterParked dead-letters one intent a parked user was owed: as the
// app's intent would have been, rebuilt from what was parked (the original
// was acknowledged when parked). Its message id names the user's spell, so
// a retry that repeats after a lost write leaves one letter.
func (p *Publisher) deadLetterParked(ctx context.Context, claimed *model.Parked, in intent.Intent, deliveries int, cause error) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	reason := headerText(cause.Error(), MaxReasonLen)
	msg := nats.NewMsg(intent.DeadPrefix + in.Op)
	msg.Header.Set(HeaderReason, reason)
	msg.Header.Set(HeaderSubject, in.Subject())
	msg.Header.Set(HeaderDeliveries, strconv.Itoa(deliveries))
	if in.Op == intent.OpPurge && !claimed.PurgeAskedAt.IsZero() {
		msg.Header.Set(HeaderAskedAt, claimed.PurgeAskedAt.UTC().Format(time.RFC3339Nano))
	}
	msg.Header.Set(jetstream.MsgIDHeader, headerText("moodsync-dead:parked:"+in.User+":"+in.Op+":"+in.MongoID+in.Cause+":"+
		strconv.FormatInt(claimed.Since.UnixNano(), 10), MaxReasonLen))
	msg.Data = data
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.js.PublishMsg(pctx, msg); err != nil {
		return err
	}
	p.log.Warn("parked intent dead-lettered", "user", in.User, "op", in.Op, "mood", in.MongoID, "reason", reason)
	return nil
}
