package reconcile

// The one whole-user reconcile. Every caller — the reconcile intent (and
// through it firehose gaps, first start, reactivation and the periodic
// pass), audit, cleanup and backfill — runs ReconcileUser: a snapshot (the
// user's moods, the DID their rkeys belong to, one repo export), the pure
// Compare, a plan (PlanFixes, by cause and scope), and compare-and-set
// writes through the engine paths that own each case: the firehose
// verdicts for records and deletions, the publisher's for creates. Each
// fix is decided again on the state it finds, so a plan taken a moment ago
// can never make the engine undo newer work.

import (
	"context"
	"errors"
	"fmt"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// ReconcileOptions adjust one whole-user reconcile.
type ReconcileOptions struct {
	// Scope says which fixes are carried out (default all).
	Scope Scope
	// DryRun plans and changes nothing, not even the DID binding (audit,
	// --dry-run).
	DryRun bool
	// AllowMassDelete lifts the mass-delete guard (an operator's
	// cleanup --allow-mass-delete).
	AllowMassDelete bool
	// BypassBreaker: the soft deletes of this pass do not count against
	// the mass-delete breaker (an operator released it: cleanup
	// --allow-mass-delete, which lifts it for one user, or --all).
	BypassBreaker bool
	// Lost is what the operator asks for the records of lost moods: kept
	// (the default), restored into Mongo (restore), or deleted (cleanup
	// --delete-lost). A user erased by purge gets them deleted whatever is
	// asked (DecideLost).
	Lost LostAction
	// Select, when set, may drop fixes from the plan before they are
	// carried out (backfill's --limit).
	Select func(fixes []Fix) []Fix
	// Fix adjusts how fixes are carried out.
	Fix FixOptions
}

// FixOptions adjust how fixes are carried out.
type FixOptions struct {
	// KeepOrphans leaves orphaned records on the PDS (the orphan policy
	// off); their fixes are reported as skipped.
	KeepOrphans bool
	// Chunk is how many creates go to the PDS at once (default and at most
	// MaxBatch, one applyWrites call).
	Chunk int
	// Pace, when set, is called before each chunk of n creates and may
	// wait (a rate limit); an error stops the creates.
	Pace func(ctx context.Context, n int) error
	// Progress, when set, is told how many fixes were just carried out.
	Progress func(n int)
}

// Outcome is what one whole-user reconcile found and did.
type Outcome struct {
	Cause  Cause
	Report *Report
	Plan   Plan
	// Results has one entry per fix of Plan.Fixes (none on a dry run).
	Results []FixResult
	// Unchanged: a periodic pass found the moods and the repo's rev as
	// the last clean pass saw them, and read no repo (no Report).
	Unchanged bool
	// BreakerHeld: the mass-delete breaker across all users held the
	// plan's soft deletes (they are in Plan.Held).
	BreakerHeld bool
}

// GuardTripped reports whether the mass-delete guard kept soft deletes back.
func (o *Outcome) GuardTripped() bool { return o != nil && len(o.Plan.Held) > 0 }

// ReconcileUser compares one user's moods with their repo and repairs what
// differs, as cause and the options say. An error means the user could not
// be compared (no account, an inactive one, a DID two users claim, the repo
// unreadable) or some fixes failed (Results say which); errors that a retry
// cannot fix are permanent (model.IsPermanent).
//
// The user's lock is held while the subject is settled and for each fix,
// not for the whole pass: the firehose's ops of the same user (the
// consumer applies them inline) wait for one fix at most, never for a
// whole repo. Every fix is compare-and-set, so interleaving is safe.
func (e *Engine) ReconcileUser(ctx context.Context, user string, cause Cause, o ReconcileOptions) (out *Outcome, err error) {
	if o.DryRun {
		return e.preview(ctx, e.Store, e.PDS, user, cause, o)
	}
	defer func() { e.noteReconcile(ctx, user, cause, out, err) }()
	out = &Outcome{Cause: cause}
	unlock := e.lockUser(user)
	acct, b, rebound, err := e.subject(ctx, user)
	unlock()
	if err != nil {
		return nil, err
	}
	if rebound {
		out.Cause = CauseDIDChanged
	}
	owed, err := e.oweRewrite(ctx, user, b, out.Cause)
	if err != nil {
		return nil, err
	}
	fpCause := out.Cause
	if owed {
		fpCause = CauseFull // a rewrite owed is never skipped as unchanged
	}
	moods, fp, unchanged, err := e.fingerprint(ctx, *acct, fpCause)
	if err != nil {
		return nil, fmt.Errorf("read moods of %s: %w", acct.User, err)
	}
	if out.Unchanged = unchanged; unchanged {
		e.observe(ActionUnchanged, 1)
		return out, nil
	}
	out.Report, err = compareMoods(ctx, e.Store, e.PDS, *acct, moods)
	if err != nil {
		e.noteInactive(ctx, user, acct.DID, err)
		return nil, err
	}
	e.observe("repo_read", 1)
	out.Plan = e.plan(out.Report, out.Cause, planState{binding: b, owed: owed, fp: fp}, o)
	if err := e.takeSoftDeletes(ctx, user, out, o); err != nil {
		return nil, err
	}
	if out.GuardTripped() && !out.BreakerHeld {
		e.observe(ActionMassDeleteGuard, 1)
		e.Log.Warn("mass-delete guard: records of live moods are missing from the repo; none soft-deleted, left for an operator (cleanup --user … --allow-mass-delete)",
			"user", user, "did", acct.DID, "cause", string(out.Cause), "missing", len(out.Plan.Held), "limit", e.massDeleteLimit())
	}
	e.observe(ActionDriftFound, out.Report.Drift())
	e.observe(ActionLostFound, len(out.Report.Of(ClassLost)))
	out.Results = e.applyFixes(ctx, *acct, out.Plan.Fixes, o.Fix)
	fixed := 0
	for _, r := range out.Results {
		if r.Err == nil && r.Skipped == "" {
			fixed++
		}
	}
	e.observe(ActionDriftFixed, fixed)
	e.recordClean(ctx, *acct, out, fp)
	err = FixErrors(out.Results)
	if owed && o.Scope.Includes(FixRewrite) && o.Select == nil && err == nil && ctx.Err() == nil {
		// The rewrite is done (by a pass that writes records, all of
		// them): later passes decide by their own cause.
		if serr := e.Store.SetRewriteOwed(ctx, user, false); serr != nil {
			e.Log.Warn("could not record the rewrite done; the next pass rewrites again", "user", user, "err", serr)
		}
	}
	return out, err
}

// Actions the engine reports to Observe that have metrics of their own.
const (
	ActionDriftFound      = "drift_found"       // drift a whole-user reconcile found
	ActionDriftFixed      = "drift_fixed"       // fixes it carried out
	ActionMassDeleteGuard = "mass_delete_guard" // the guard kept soft deletes back
	ActionLostFound       = "lost_found"        // lost moods a whole-user reconcile found
	ActionBreakerHeld     = "breaker_held"      // soft deletes the mass-delete breaker held
)

// massDeleteLimit is Engine.MassDeleteLimit, or DefaultMassDeleteLimit.
func (e *Engine) massDeleteLimit() int {
	if e.MassDeleteLimit > 0 {
		return e.MassDeleteLimit
	}
	return DefaultMassDeleteLimit
}

// Preview is the whole-user reconcile as a dry run, for code that must
// change nothing (moodsync status): the compare and the plan a reconcile of
// user for cause would carry out, read through r and repo, which have no
// writes. massDeleteLimit is the daemon's (0: the default).
func Preview(ctx context.Context, r Reader, repo RepoReader, user string, cause Cause, massDeleteLimit int) (*Outcome, error) {
	e := &Engine{MassDeleteLimit: massDeleteLimit}
	return e.preview(ctx, r, repo, user, cause, ReconcileOptions{DryRun: true})
}

// preview is the dry run: the account gate, the compare and the plan, with
// reads only.
func (e *Engine) preview(ctx context.Context, r Reader, repo RepoReader, user string, cause Cause, o ReconcileOptions) (*Outcome, error) {
	out := &Outcome{Cause: cause}
	acct, b, err := e.gate(ctx, r, user)
	if err != nil {
		return nil, err
	}
	if b != nil && b.DID != acct.DID {
		// Planned as the rebind would leave it: every stored rkey missing
		// from the new repo, rewritten.
		out.Cause = CauseDIDChanged
	}
	moods, err := r.UserMoods(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("read moods of %s: %w", user, err)
	}
	// The rev before the export, as the daemon's pass asks it.
	var rev string
	if st, err := repo.RepoStatus(ctx, acct.DID); err == nil {
		rev = st.Rev
	}
	if out.Report, err = compareMoods(ctx, r, repo, *acct, moods); err != nil {
		return nil, err
	}
	out.Plan = e.plan(out.Report, out.Cause, planState{binding: b, owed: b != nil && b.RewriteOwed, fp: &model.CleanPass{Rev: rev}}, o)
	return out, nil
}

// takeSoftDeletes asks the mass-delete breaker for the plan's soft deletes
// (every one of them is decided on evidence other than a seen delete op:
// those are the firehose's); when it holds them they move to Plan.Held,
// reported and left as drift until an operator releases the breaker.
func (e *Engine) takeSoftDeletes(ctx context.Context, user string, out *Outcome, o ReconcileOptions) error {
	n := 0
	for _, f := range out.Plan.Fixes {
		if f.Kind == FixSoftDelete {
			n++
		}
	}
	if n == 0 || e.Breaker == nil || o.AllowMassDelete || o.BypassBreaker {
		return nil
	}
	ok, err := e.Breaker.Take(ctx, n)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	kept := out.Plan.Fixes[:0:0]
	for _, f := range out.Plan.Fixes {
		if f.Kind == FixSoftDelete {
			out.Plan.Held = append(out.Plan.Held, f)
		} else {
			kept = append(kept, f)
		}
	}
	out.Plan.Fixes, out.BreakerHeld = kept, true
	e.observe(ActionBreakerHeld, n)
	e.Log.Warn("mass-delete breaker: soft deletes across all users are past the bound; these are held until an operator releases them (cleanup --allow-mass-delete --user … or --all)",
		"user", user, "cause", string(out.Cause), "held", n)
	return nil
}

// planState is what a plan needs to know of the user besides the compare:
// the binding (the purge tombstone), whether a rewrite is owed, and the
// repo's rev as asked before the export (fp, nil when unknown).
type planState struct {
	binding *model.Binding
	owed    bool
	fp      *model.CleanPass
}

// plan is the plan of a whole-user reconcile for cause.
func (e *Engine) plan(rep *Report, cause Cause, st planState, o ReconcileOptions) Plan {
	p := Policy{
		Cause:           cause,
		RewriteOwed:     st.owed,
		MassDeleteLimit: e.massDeleteLimit(),
		AllowMassDelete: o.AllowMassDelete,
		Lost:            o.Lost,
		Scope:           o.Scope,
	}
	if st.fp != nil {
		p.RepoRev = st.fp.Rev
	}
	if st.binding != nil {
		p.Erased = st.binding.Erased
	}
	plan := PlanFixes(rep, p)
	if o.Select != nil {
		plan.Fixes = o.Select(plan.Fixes)
	}
	return plan
}

// oweRewrite says whether this pass of user must write missing records
// again: the user owes it since an earlier pass, or this pass's cause says
// the repo lost records, which is recorded first so that every pass of the
// user applies the rule until one completes, whatever cause runs first.
func (e *Engine) oweRewrite(ctx context.Context, user string, b *model.Binding, cause Cause) (bool, error) {
	if b != nil && b.RewriteOwed {
		return true, nil
	}
	if DecideMissing(cause) != MissingRewrite {
		return false, nil
	}
	if err := e.Store.SetRewriteOwed(ctx, user, true); err != nil {
		return false, fmt.Errorf("record the rewrite owed by %s: %w", user, err)
	}
	return true, nil
}

// compareMoods compares one account's moods, read by the caller, with its
// repo, read from one export: a read that fails is an error, never an
// empty repo (a missing page is never a delete). Mongo is read first: a
// record the publisher writes meanwhile then shows as unlinked (linking it
// is harmless) rather than as a stale rkey.
func compareMoods(ctx context.Context, r Reader, repo RepoReader, acct model.Account, moods []*model.Mood) (*Report, error) {
	records, err := repo.ExportRecords(ctx, acct.DID)
	if err != nil {
		return nil, fmt.Errorf("read repo of %s: %w", acct.DID, err)
	}
	own := make(map[string]bool, len(moods))
	for _, m := range moods {
		own[m.ID] = true
	}
	var foreign []string
	for _, rec := range records {
		if id := rec.Value.MoodID(); rec.Invalid == "" && model.ValidID(id) && !own[id] {
			foreign = append(foreign, id)
		}
	}
	others := map[string]*model.Mood{}
	if len(foreign) > 0 {
		if others, err = r.Moods(ctx, foreign); err != nil {
			return nil, fmt.Errorf("read moods named by %s: %w", acct.DID, err)
		}
	}
	return Compare(acct, moods, others, records), nil
}

// FixResult is what carrying out one fix came to.
type FixResult struct {
	Fix Fix
	// Verdict is what the engine decided on the state it found: Fix.Expect()
	// when nothing had changed since the compare.
	Verdict Class
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

// applyFixes carries out a plan for one account, in order, each fix under
// the user's lock, and returns one result per fix. Record fixes go through the firehose's
// upsert verdicts, mood fixes through its delete verdicts (which read the
// record again before soft-deleting a live mood), creates through the
// publisher's path.
func (e *Engine) applyFixes(ctx context.Context, acct model.Account, fixes []Fix, fo FixOptions) []FixResult {
	results := make([]FixResult, len(fixes))
	for i, f := range fixes {
		results[i].Fix = f
	}
	o := options{keepOrphans: fo.KeepOrphans}
	kept := map[string]bool{}
	var creates []int
	for i, f := range fixes {
		r := &results[i]
		if err := ctx.Err(); err != nil {
			r.Err = err
			continue
		}
		if e.applyFix(ctx, acct, f, r, o, fo, kept) {
			creates = append(creates, i)
		}
	}
	e.createMoods(ctx, acct.User, results, creates, fo)
	return results
}

// applyFix carries out one fix under the user's lock; it reports whether
// the fix is a record to write, which createMoods does in batches.
func (e *Engine) applyFix(ctx context.Context, acct model.Account, f Fix, r *FixResult, o options, fo FixOptions, kept map[string]bool) (create bool) {
	defer e.lockUser(acct.User)()
	switch f.Kind {
	case FixCreate:
		return true
	case FixRewrite:
		if _, r.Err = e.Store.ClearRkey(ctx, f.MoodID, f.Rkey); r.Err == nil {
			return true
		}
	case FixDeleteOrphan:
		if fo.KeepOrphans {
			r.Skipped, kept[f.Rkey] = "orphan policy off", true
			break
		}
		r.Verdict, r.Err = e.fixRecord(ctx, acct, f, o)
	case FixLink, FixAdopt, FixDeleteDuplicate:
		r.Verdict, r.Err = e.fixRecord(ctx, acct, f, o)
	case FixRestore:
		if fo.Pace != nil {
			if r.Err = fo.Pace(ctx, 1); r.Err != nil {
				break
			}
		}
		r.Verdict, r.Err = e.restoreMood(ctx, acct, f)
	case FixDeleteLost:
		r.Verdict, r.Err = e.deleteLost(ctx, acct, f)
	case FixSoftDelete, FixClear:
		if kept[f.Rkey] {
			r.Skipped = "its orphaned record is kept"
			break
		}
		r.Verdict, r.Err = e.applyDelete(ctx, acct, f.Rkey, true, false)
	default:
		r.Err = model.Permanent("unknown fix %q", f.Kind)
	}
	e.progress(fo, 1)
	return false
}

func (e *Engine) progress(fo FixOptions, n int) {
	if fo.Progress != nil && n > 0 {
		fo.Progress(n)
	}
}

func (e *Engine) fixRecord(ctx context.Context, acct model.Account, f Fix, o options) (Class, error) {
	if f.Value == nil {
		return "", model.Permanent("fix %s of rkey %s carries no record", f.Kind, f.Rkey)
	}
	v := *f.Value
	return e.applyUpsert(ctx, acct, Upsert{Rkey: f.Rkey, Value: &v}, nil, o)
}

// createMoods writes the records of the create fixes at idx through the
// publisher's path, in chunks of at most one applyWrites batch, paced.
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
				results[i].Verdict = ClassNotSynced
			}
		}
		e.progress(fo, len(part))
	}
}

// restoreMood inserts a lost mood back into Mongo from its record: only
// where no document with its id exists (never an overwrite, never another
// user's id: an existing document, whoever's, is left as it is), never for
// a mood a purge erased.
func (e *Engine) restoreMood(ctx context.Context, acct model.Account, f Fix) (Class, error) {
	if f.Value == nil {
		return "", model.Permanent("fix %s of rkey %s carries no record", f.Kind, f.Rkey)
	}
	b, err := e.Store.Binding(ctx, acct.User)
	if err != nil {
		return "", fmt.Errorf("read binding of %s: %w", acct.User, err)
	}
	if b.ErasedMood(f.MoodID) {
		return ClassIgnored, nil
	}
	m, why := model.MoodFromRecord(acct.User, f.Rkey, *f.Value)
	if m == nil {
		return ClassInvalid, model.Permanent("record %s cannot be restored: %s", f.Rkey, why)
	}
	ok, err := e.Store.InsertMood(ctx, *m)
	if err != nil {
		return "", fmt.Errorf("insert mood %s: %w", m.ID, err)
	}
	if !ok {
		// A document with this id exists by now: it is the truth.
		return ClassSynced, nil
	}
	e.observe("mood_restored", 1)
	e.Log.Info("lost mood restored from its record", "user", acct.User, "mood", m.ID, "uri", model.URI(acct.DID, f.Rkey))
	return ClassLost, nil
}

// deleteLost deletes the record of a lost mood, if the mood is still
// missing from Mongo and the record still names it.
func (e *Engine) deleteLost(ctx context.Context, acct model.Account, f Fix) (Class, error) {
	moods, err := e.Store.Moods(ctx, []string{f.MoodID})
	if err != nil {
		return "", fmt.Errorf("read mood %s: %w", f.MoodID, err)
	}
	if moods[f.MoodID] != nil {
		// Restored meanwhile: decide again on what is there now.
		return e.fixRecord(ctx, acct, f, options{})
	}
	if err := e.deleteRecordOf(ctx, acct.DID, f.Rkey, f.MoodID); err != nil {
		return "", err
	}
	e.observe("lost_deleted", 1)
	e.Log.Warn("record of a lost mood deleted", "user", acct.User, "mood", f.MoodID, "uri", model.URI(acct.DID, f.Rkey))
	return ClassLost, nil
}
