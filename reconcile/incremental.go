package reconcile

// Passes that cost what changed. A whole-user pass that left nothing to
// fix records, on the user's binding, the repo's rev (asked of the PDS
// before the repo is read) and a digest of the user's moods. A periodic
// pass first asks the PDS for the rev (getRepoStatus, one small public
// call) and reads the moods; when both are as the last clean pass saw
// them there is nothing new to compare, and the repo is not exported.
//
// Why that is safe: a repo's rev changes with every commit and never comes
// back, and the digest covers every mood field a compare reads. Whatever
// changed after the rev and the moods were read changes one of them, so
// the next pass compares in full. A pass that fixed something records
// nothing (its own writes changed both): the next one compares in full
// and, finding nothing, records the state it saw. Only CausePeriodic may
// skip; every other cause (gaps, intents, a full pass, an operator's
// command) reads the repo.

import (
	"context"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// ActionUnchanged counts periodic passes that found a user unchanged since
// their last clean pass and read no repo.
const ActionUnchanged = "reconcile_unchanged"

// fingerprint reads the user's moods and the repo's rev. fp is nil when the
// PDS gives no rev (an inactive repo, a failed call: the export that
// follows decides); unchanged reports that a periodic pass may stop here.
func (e *Engine) fingerprint(ctx context.Context, acct model.Account, cause Cause) (moods []*model.Mood, fp *model.CleanPass, unchanged bool, err error) {
	moods, err = e.Store.UserMoods(ctx, acct.User)
	if err != nil {
		return nil, nil, false, err
	}
	st, err := e.PDS.RepoStatus(ctx, acct.DID)
	if err != nil || !st.Active || st.Rev == "" {
		return moods, nil, false, nil
	}
	fp = &model.CleanPass{Rev: st.Rev, Moods: model.MoodsDigest(moods), At: time.Now().UTC()}
	if cause != CausePeriodic {
		return moods, fp, false, nil
	}
	b, err := e.Store.Binding(ctx, acct.User)
	if err != nil || b == nil || b.DID != acct.DID {
		return moods, fp, false, nil
	}
	return moods, fp, fp.Same(b.Clean), nil
}

// clean reports whether a pass left nothing to fix: no fix attempted
// (those skipped by policy change nothing), none failed, no soft delete
// held back by the guard.
func (o *Outcome) clean() bool {
	if o.GuardTripped() {
		return false
	}
	for _, r := range o.Results {
		if r.Err != nil || r.Skipped == "" {
			return false
		}
	}
	return true
}

// recordClean keeps fp on the user's binding after a clean pass.
func (e *Engine) recordClean(ctx context.Context, acct model.Account, out *Outcome, fp *model.CleanPass) {
	if fp == nil || !out.clean() {
		return
	}
	if err := e.Store.SetCleanPass(ctx, acct.User, acct.DID, *fp); err != nil {
		e.Log.Warn("could not record the clean pass; the next periodic pass reads the repo", "user", acct.User, "err", err)
	}
}
