package reconcile

// Anti-entropy: the whole-user compare (audit), and carrying out the fixes
// compare.go plans (backfill, cleanup, the daemon's periodic pass). Every
// fix goes through the engine path that owns its case — the firehose
// verdicts for records and deletions, SyncMoods for creates — so a fix is
// decided again on the state it finds, with compare-and-set, and an audit
// taken a moment ago can never make the engine undo newer work.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// RepoExporter is implemented by PDS clients that can export a whole repo
// in one call (com.atproto.sync.getRepo). Compares use it when the PDS has
// it, and page ListRecords otherwise.
type RepoExporter interface {
	ExportRecords(ctx context.Context, did string) ([]model.Record, error)
}

// readRepo reads every mood record of a repo: one export when the PDS
// client can, listRecords pages otherwise. Every whole-user pass reads
// the repo through here.
func (e *Engine) readRepo(ctx context.Context, did string) ([]model.Record, error) {
	var records []model.Record
	var err error
	if x, ok := e.PDS.(RepoExporter); ok {
		records, err = x.ExportRecords(ctx, did)
	} else {
		records, err = e.PDS.ListRecords(ctx, did)
	}
	if err != nil {
		return nil, fmt.Errorf("read repo of %s: %w", did, err)
	}
	return records, nil
}

// CompareUser compares one user's moods with their repo.
func (e *Engine) CompareUser(ctx context.Context, user string) (*Report, error) {
	acct, err := e.Store.Account(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("look up account of %s: %w", user, err)
	}
	if acct == nil || acct.DID == "" {
		return nil, model.Permanent("user %s has no PDS account", user)
	}
	return e.CompareAccount(ctx, *acct)
}

// CompareAccount compares one account's moods with its repo. Mongo is read
// first: a record the publisher writes meanwhile then shows as unlinked
// (linking it is harmless) rather than as a stale rkey.
func (e *Engine) CompareAccount(ctx context.Context, acct model.Account) (*Report, error) {
	moods, err := e.Store.UserMoods(ctx, acct.User)
	if err != nil {
		return nil, fmt.Errorf("read moods of %s: %w", acct.User, err)
	}
	records, err := e.readRepo(ctx, acct.DID)
	if err != nil {
		return nil, err
	}
	own := make(map[string]bool, len(moods))
	for _, m := range moods {
		own[m.ID] = true
	}
	var foreign []string
	for _, r := range records {
		if id := r.Value.MoodID(); r.Invalid == "" && model.ValidID(id) && !own[id] {
			foreign = append(foreign, id)
		}
	}
	others := map[string]*model.Mood{}
	if len(foreign) > 0 {
		if others, err = e.Store.Moods(ctx, foreign); err != nil {
			return nil, fmt.Errorf("read moods named by %s: %w", acct.DID, err)
		}
	}
	return Compare(acct, moods, others, records), nil
}

// FixOptions adjust how fixes are carried out.
type FixOptions struct {
	// KeepOrphans leaves orphaned records on the PDS (the orphan policy
	// off); their fixes are reported as skipped.
	KeepOrphans bool
	// Chunk is how many creates go to SyncMoods at once (default and at
	// most MaxBatch, one applyWrites call).
	Chunk int
	// Pace, when set, is called before each chunk of n creates and may
	// wait (a rate limit); an error stops the creates.
	Pace func(ctx context.Context, n int) error
	// Progress, when set, is told how many fixes were just carried out.
	Progress func(n int)
}

// FixResult is what carrying out one fix came to.
type FixResult struct {
	Fix Fix
	// Verdict is what the engine decided on the state it found: Fix.Expect()
	// when nothing had changed since the compare.
	Verdict Verdict
	// Skipped says why the fix was not attempted ("" when it was).
	Skipped string
	Err     error
}

// Changed reports whether the engine found the state changed since the
// compare and did what the fresh state called for instead.
func (r FixResult) Changed() bool {
	return r.Err == nil && r.Skipped == "" && r.Verdict != r.Fix.Expect()
}

// FixErrors joins the errors of results.
func FixErrors(results []FixResult) error {
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.Fix.Kind, fixTarget(r.Fix), r.Err))
		}
	}
	return errors.Join(errs...)
}

func fixTarget(f Fix) string {
	if f.Rkey == "" {
		return "mood " + f.MoodID
	}
	return "rkey " + f.Rkey
}

// ApplyFixes carries out a plan for one account, in order, and returns one
// result per fix. Record fixes go through the firehose's upsert verdicts,
// mood fixes through its delete verdicts (which read the record again
// before soft-deleting a live mood), creates through SyncMoods.
func (e *Engine) ApplyFixes(ctx context.Context, acct model.Account, fixes []Fix, fo FixOptions) []FixResult {
	results := make([]FixResult, len(fixes))
	for i, f := range fixes {
		results[i].Fix = f
	}
	fs, err := e.firehoseStore()
	if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	var creates []int
	func() {
		defer e.lockUser(acct.User)()
		o := options{keepOrphans: fo.KeepOrphans}
		kept := map[string]bool{}
		for i, f := range fixes {
			r := &results[i]
			if err := ctx.Err(); err != nil {
				r.Err = err
				continue
			}
			switch f.Kind {
			case FixCreate:
				creates = append(creates, i)
				continue
			case FixDeleteOrphan:
				if fo.KeepOrphans {
					r.Skipped, kept[f.Rkey] = "orphan policy off", true
					break
				}
				r.Verdict, r.Err = e.fixRecord(ctx, fs, acct, f, o)
			case FixLink, FixAdopt, FixDeleteDuplicate:
				r.Verdict, r.Err = e.fixRecord(ctx, fs, acct, f, o)
			case FixSoftDelete, FixClear:
				if kept[f.Rkey] {
					r.Skipped = "its orphaned record is kept"
					break
				}
				r.Verdict, r.Err = e.applyDelete(ctx, fs, acct, f.Rkey, true)
			default:
				r.Err = model.Permanent("unknown fix %q", f.Kind)
			}
			e.progress(fo, 1)
		}
	}()
	e.createMoods(ctx, acct.User, results, creates, fo)
	return results
}

func (e *Engine) progress(fo FixOptions, n int) {
	if fo.Progress != nil && n > 0 {
		fo.Progress(n)
	}
}

func (e *Engine) fixRecord(ctx context.Context, fs FirehoseStore, acct model.Account, f Fix, o options) (Verdict, error) {
	if f.Value == nil {
		return "", model.Permanent("fix %s of rkey %s carries no record", f.Kind, f.Rkey)
	}
	v := *f.Value
	return e.applyUpsert(ctx, fs, acct, Upsert{Rkey: f.Rkey, Value: &v}, nil, o)
}

// createMoods runs the create fixes at idx through SyncMoods, in chunks of
// at most one applyWrites batch, paced.
func (e *Engine) createMoods(ctx context.Context, user string, results []FixResult, idx []int, fo FixOptions) {
	chunk := fo.Chunk
	if chunk <= 0 || chunk > MaxBatch {
		chunk = MaxBatch
	}
	for start := 0; start < len(idx); start += chunk {
		part := idx[start:min(start+chunk, len(idx))]
		err := ctx.Err()
		if err == nil && fo.Pace != nil {
			err = fo.Pace(ctx, len(part))
		}
		if err != nil {
			for _, i := range idx[start:] {
				results[i].Err = err
			}
			return
		}
		ids := make([]string, len(part))
		for j, i := range part {
			ids[j] = results[i].Fix.MoodID
		}
		synced := e.SyncMoods(ctx, user, ids)
		for _, i := range part {
			if results[i].Err = synced[results[i].Fix.MoodID]; results[i].Err == nil {
				results[i].Verdict = verdictCreated
			}
		}
		e.progress(fo, len(part))
	}
}

// RepairAccount compares one account and carries out everything the
// compare finds to repair: cleanup's fixes and backfill's creates.
func (e *Engine) RepairAccount(ctx context.Context, acct model.Account, fo FixOptions) (*Report, []FixResult, error) {
	r, err := e.CompareAccount(ctx, acct)
	if err != nil {
		return nil, nil, err
	}
	results := e.ApplyFixes(ctx, acct, PlanRepair(r), fo)
	return r, results, FixErrors(results)
}

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

// AntiEntropyStream is the key under which the last full pass is kept.
const AntiEntropyStream = "moodsync:anti-entropy"

// AntiEntropy is the daemon's periodic full compare: every Every, each user
// in turn — one at a time, so the PDS is not flooded — is compared and
// repaired. The time of the last finished pass is kept in State, so a
// restart does not start a pass early, nor skip one that is due, and
// replicas sharing State do not each make a pass every period (two that
// start together may overlap once; fixes are compare-and-set, so that
// costs PDS reads, not correctness).
type AntiEntropy struct {
	Engine *Engine
	Users  Accounts
	State  CursorState // optional
	Every  time.Duration
	Log    *slog.Logger
	// Options for the fixes (the orphan policy).
	Options FixOptions
	// OnPass, when set, is told the outcome of each pass (metrics, tests).
	OnPass func(PassResult)
	// now is time.Now, replaceable in tests.
	now func() time.Time
}

// PassResult sums up one pass over every user.
type PassResult struct {
	Users   int
	Failed  int
	Drift   int // drift findings seen
	Fixed   int // fixes carried out
	Started time.Time
	Took    time.Duration
}

// Run makes a pass whenever one is due until ctx ends; it returns nil then.
func (a *AntiEntropy) Run(ctx context.Context) error {
	if a.Every <= 0 {
		return nil
	}
	log := a.log()
	var last time.Time // the last pass of this process
	for {
		if wait := a.untilDue(ctx, last); wait > 0 {
			log.Info("anti-entropy: next pass scheduled", "in", wait.Round(time.Second))
			if !sleepCtx(ctx, wait) {
				return nil
			}
			// Look again: another replica may have made the pass meanwhile
			// (the time of the last pass is shared through State).
			continue
		}
		res, err := a.Pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Not even the users could be read: try again soon rather than
			// a whole period later.
			log.Warn("anti-entropy: pass failed", "err", err)
			if !sleepCtx(ctx, min(a.Every, time.Minute)) {
				return nil
			}
			continue
		}
		last = res.Started
		if a.State != nil {
			if err := a.State.SaveCursor(ctx, AntiEntropyStream, res.Started.Unix()); err != nil {
				log.Warn("anti-entropy: could not save the time of the pass", "err", err)
			}
		}
		if a.OnPass != nil {
			a.OnPass(res)
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (a *AntiEntropy) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (a *AntiEntropy) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// untilDue is how long until the next pass is due, from the later of the
// stored last pass and this process's own: now when there was none.
func (a *AntiEntropy) untilDue(ctx context.Context, last time.Time) time.Duration {
	if a.State != nil {
		sec, ok, err := a.State.LoadCursor(ctx, AntiEntropyStream)
		switch {
		case err != nil:
			a.log().Warn("anti-entropy: could not read the time of the last pass", "err", err)
		case ok && time.Unix(sec, 0).After(last):
			last = time.Unix(sec, 0)
		}
	}
	if last.IsZero() {
		return 0
	}
	return last.Add(a.Every).Sub(a.clock())
}

// Pass compares and repairs every user once, one at a time. A user that
// fails is logged and counted; the pass goes on. The error is for a pass
// that could not start (the users could not be listed).
func (a *AntiEntropy) Pass(ctx context.Context) (PassResult, error) {
	log := a.log()
	res := PassResult{Started: a.clock()}
	accts, err := a.Users.Accounts(ctx)
	if err != nil {
		return res, fmt.Errorf("list users: %w", err)
	}
	log.Info("anti-entropy pass started", "users", len(accts))
	for _, acct := range accts {
		if ctx.Err() != nil {
			break
		}
		res.Users++
		r, results, err := a.Engine.RepairAccount(ctx, acct, a.Options)
		if r != nil {
			res.Drift += r.Drift()
		}
		for _, fr := range results {
			if fr.Err == nil && fr.Skipped == "" {
				res.Fixed++
			}
		}
		if err != nil {
			res.Failed++
			log.Warn("anti-entropy: user not fully repaired", "user", acct.User, "did", acct.DID, "err", err)
			continue
		}
		if r.Drift() > 0 {
			log.Info("anti-entropy: user repaired", "user", acct.User, "did", acct.DID, "drift", r.Drift(), "fixes", len(results))
		}
	}
	res.Took = a.clock().Sub(res.Started)
	log.Info("anti-entropy pass finished", "users", res.Users, "failed", res.Failed, "drift", res.Drift, "fixed", res.Fixed, "took", res.Took.Round(time.Millisecond))
	return res, nil
}
