package reconcile

// Anti-entropy: sweeps that queue a whole-user reconcile of every user. The
// first start on a firehose, an outdated or future cursor and the periodic
// pass ask for everyone through one Sweep, which records when it last
// queued everyone, so callers that want everyone at about the same time
// (a fresh install's first start and first periodic pass) queue them once,
// and replicas sharing the state do not each make a pass every period.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Accounts lists the users with a PDS account (mongostore.Store and
// reconciletest.Store have it).
type Accounts interface {
	Accounts(ctx context.Context) ([]model.Account, error)
}

// CursorState keeps a position durably (the firehose cursor collection);
// anti-entropy keeps the time of its last full pass there.
type CursorState interface {
	LoadCursor(ctx context.Context, stream string) (int64, bool, error)
	SaveCursor(ctx context.Context, stream string, seq int64) error
}

// Queue is where whole-user reconciles are asked for: the reconcile intent
// subject on NATS (durable, shared by replicas, retried with backoff).
// Enqueue returns once the queue has stored the request.
type Queue interface {
	Enqueue(ctx context.Context, user string, cause Cause) error
}

// SweepStream is the key under which the start of the last finished sweep
// is kept (Unix nanoseconds).
const SweepStream = "moodsync:sweep"

// FullSweepStream is the key of the start of the last finished sweep that
// compared every user in full: any sweep but the periodic pass's.
const FullSweepStream = "moodsync:sweep-full"

// Sweep queues a reconcile of every user with a PDS account.
type Sweep struct {
	Users Accounts
	Queue Queue
	State CursorState
	Log   *slog.Logger
	// Unchanged, when set, lets a periodic pass leave out the users whose
	// repo and moods are as their last clean pass saw them (periodic.go).
	Unchanged *Unchanged

	mu  sync.Mutex // one sweep at a time in the process
	now func() time.Time
}

// Ensure queues every user for cause, unless a sweep that started at or
// after since has finished (zero since: always). It returns how many users
// it queued, once the queue has stored every request; an error means some
// were not queued and the caller must ask again.
func (s *Sweep) Ensure(ctx context.Context, cause Cause, since time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !since.IsZero() {
		if last, ok := s.Last(ctx); ok && !last.Before(since) {
			return 0, nil
		}
	}
	start := s.clock()
	accts, err := s.Users.Accounts(ctx)
	if err != nil {
		return 0, fmt.Errorf("list users: %w", err)
	}
	var skip map[string]bool
	if cause == CausePeriodic && s.Unchanged != nil {
		res, err := s.Unchanged.Find(ctx, accts)
		if err != nil {
			// Queue everyone: each reconcile asks getRepoStatus itself.
			s.log().Warn("sweep: could not read revs in bulk; queueing every user", "err", err)
		} else {
			skip = res.Skip
			s.log().Info("sweep: users unchanged since their last clean pass left out", "unchanged", len(skip), "listRepos calls", res.Pages, "repos listed", res.Repos)
		}
	}
	queued := 0
	for _, a := range accts {
		if skip[a.User] {
			continue
		}
		if err := s.Queue.Enqueue(ctx, a.User, cause); err != nil {
			return queued, fmt.Errorf("queue reconcile of %s: %w", a.User, err)
		}
		queued++
	}
	if err := s.State.SaveCursor(ctx, SweepStream, start.UnixNano()); err != nil {
		s.log().Warn("sweep: could not store its time", "err", err)
	}
	if cause != CausePeriodic {
		if err := s.State.SaveCursor(ctx, FullSweepStream, start.UnixNano()); err != nil {
			s.log().Warn("sweep: could not store its time", "err", err)
		}
	}
	s.log().Info("queued a reconcile of every user", "cause", string(cause), "users", len(accts), "queued", queued)
	return queued, nil
}

// Last is the start of the last finished sweep, as stored.
func (s *Sweep) Last(ctx context.Context) (time.Time, bool) {
	return s.last(ctx, SweepStream)
}

// LastFull is the start of the last finished sweep that compared every
// user in full, as stored.
func (s *Sweep) LastFull(ctx context.Context) (time.Time, bool) {
	return s.last(ctx, FullSweepStream)
}

func (s *Sweep) last(ctx context.Context, key string) (time.Time, bool) {
	ns, ok, err := s.State.LoadCursor(ctx, key)
	if err != nil {
		s.log().Warn("sweep: could not read the time of the last one", "err", err)
		return time.Time{}, false
	}
	return time.Unix(0, ns), ok
}

func (s *Sweep) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Sweep) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// AntiEntropy is the daemon's periodic pass: every Every, a reconcile of
// every user is queued (the publisher's workers carry them out, one user at
// a time per worker, so the PDS is not flooded). The time of the last sweep
// is shared through the Sweep's state, so a restart neither starts a pass
// early nor skips one that is due.
//
// A pass's reconciles (CausePeriodic) read no repo of a user whose moods
// and repo rev are as their last clean pass saw them (incremental.go), so
// a pass costs what changed; once every FullEvery the pass is a full one
// (CauseFull) that reads every repo.
type AntiEntropy struct {
	Sweep *Sweep
	Every time.Duration
	// FullEvery is how often a pass compares every user in full, changed
	// or not; 0 makes every pass full.
	FullEvery time.Duration
	Log       *slog.Logger
	// OnPass, when set, is told the outcome of each pass (metrics, tests).
	OnPass func(PassResult)
}

// PassResult sums up one periodic pass.
type PassResult struct {
	Queued  int  // users queued; 0 when another sweep had just done it
	Full    bool // a full pass (CauseFull), not one that skips the unchanged
	Started time.Time
	Took    time.Duration
}

// Run makes a pass whenever one is due until ctx ends; it returns nil then.
func (a *AntiEntropy) Run(ctx context.Context) error {
	if a.Every <= 0 {
		return nil
	}
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := backoff.New(time.Second, min(a.Every, time.Minute))
	var mine time.Time // this process's last pass, should the state fail
	for ctx.Err() == nil {
		now := a.Sweep.clock()
		last, ok := a.Sweep.Last(ctx)
		if !ok || mine.After(last) {
			last = mine
		}
		if !last.IsZero() && now.Before(last.Add(a.Every)) {
			wait := last.Add(a.Every).Sub(now)
			log.Info("anti-entropy: next pass scheduled", "in", wait.Round(time.Second))
			// Look again when it is due: another replica may have made
			// the pass meanwhile.
			backoff.Sleep(ctx, wait)
			continue
		}
		cause := CausePeriodic
		if full, ok := a.Sweep.LastFull(ctx); a.FullEvery <= 0 || !ok || !now.Before(full.Add(a.FullEvery)) {
			cause = CauseFull
		}
		n, err := a.Sweep.Ensure(ctx, cause, now.Add(-a.Every))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("anti-entropy: pass not fully queued; trying again", "err", err)
				backoff.Sleep(ctx, retry.Next())
			}
			continue
		}
		retry.Reset()
		mine = now
		if a.OnPass != nil {
			a.OnPass(PassResult{Queued: n, Full: cause == CauseFull, Started: now, Took: a.Sweep.clock().Sub(now)})
		}
	}
	return nil
}
