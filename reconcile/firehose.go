package reconcile

// This file carries out the reconcile table of DESIGN.md (PDS → Mongo): the
// verdicts of DecideUpsert and DecideDelete for firehose ops, and the
// account statuses #account events report. Every Mongo write is
// compare-and-set and every PDS delete is preceded by a read, so the
// publisher, the consumer and an operator command can act on the same mood
// at once, and a replayed event changes nothing. Gaps in the firehose are
// repaired by the one whole-user reconcile (user.go), through the queue.

import (
	"context"
	"fmt"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Option adjusts how verdicts are carried out.
type Option func(*options)

type options struct {
	keepOrphans bool
	inOrder     bool
	// binding is the user's binding when the caller read it.
	binding *model.Binding
	// checkBound: before changing anything, check that the user is still
	// bound to the op's repo (a firehose op; a whole-user pass settled it).
	checkBound bool
}

// KeepOrphans turns off the orphan policy: records whose mood is
// soft-deleted or gone are counted and left on the PDS instead of deleted.
func KeepOrphans() Option { return func(o *options) { o.keepOrphans = true } }

// InOrder says a delete op comes from a commit that follows the last
// commit of the repo the caller saw: it is no replay, so the record is not
// read again before a live mood is soft-deleted (one PDS round trip less
// per delete on a busy stream).
func InOrder() Option { return func(o *options) { o.inOrder = true } }

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// verdict reports a verdict to Observe and the log. Confirmations are the
// steady state and stay at debug level; everything else says what happened.
func (e *Engine) verdict(v Class, acct model.Account, rkey, moodID, why string) {
	e.observe("verdict_"+v.Label(), 1)
	args := []any{"verdict", v.Label(), "uri", model.URI(acct.DID, rkey), "user", acct.User}
	if moodID != "" {
		args = append(args, "mood", moodID)
	}
	if why != "" {
		args = append(args, "why", why)
	}
	switch v {
	case ClassSynced, ClassIgnored:
		e.Log.Debug("firehose op", args...)
	case ClassSpoof, ClassInvalid, ClassMalformed:
		e.Log.Warn("firehose op skipped", args...)
	case ClassLost:
		e.Log.Warn("record of a lost mood (no document in MongoDB)", args...)
	default:
		e.Log.Info("firehose op applied", args...)
	}
}

// ApplyUpsert carries out the verdict for a record created or updated in
// acct's repo and returns it. An error means the op was not (fully)
// applied: permanent ones cannot be, others should be retried.
func (e *Engine) ApplyUpsert(ctx context.Context, acct model.Account, op Upsert, opts ...Option) (Class, error) {
	defer e.lockUser(acct.User)()
	o := buildOptions(opts)
	o.checkBound = true
	return e.applyUpsert(ctx, acct, op, nil, o)
}

// boundHere reads the user's binding and reports whether an op of acct's
// repo is the user's (read only when the op would change something: most
// ops confirm or concern nothing of ours): a user bound to another DID by now (their users row
// moved to a new repo) is not touched by the old repo's ops, whatever the
// caller's map of DIDs still says.
func (e *Engine) boundHere(ctx context.Context, acct model.Account) (*model.Binding, bool, error) {
	b, err := e.Store.Binding(ctx, acct.User)
	if err != nil {
		return nil, false, fmt.Errorf("read binding of %s: %w", acct.User, err)
	}
	if b != nil && b.DID != acct.DID {
		e.observe("op_of_old_repo_ignored", 1)
		e.Log.Info("firehose op of a repo the user is no longer bound to: ignored", "user", acct.User, "did", acct.DID, "bound_to", b.DID)
		return b, false, nil
	}
	return b, true, nil
}

// applyUpsert is ApplyUpsert under the user's lock. known, when not nil, is
// the mood the record names as already read (ReconcileUser reads them in
// one query); it is used for the first round only.
func (e *Engine) applyUpsert(ctx context.Context, acct model.Account, op Upsert, known *model.Mood, o options) (Class, error) {
	if op.Value != nil && op.Invalid == "" {
		op.Invalid = model.ValidateRecord(op.Value)
	}
	if op.Value == nil || op.Invalid != "" {
		why := op.Invalid
		if why == "" {
			why = "record missing"
		}
		e.verdict(ClassInvalid, acct, op.Rkey, "", why)
		return ClassInvalid, nil
	}
	id := op.Value.MoodID()
	for round := 0; round < maxConvergeRounds; round++ {
		mood := known
		known = nil
		if mood == nil {
			moods, err := e.Store.Moods(ctx, []string{id})
			if err != nil {
				return "", fmt.Errorf("read mood %s: %w", id, err)
			}
			mood = moods[id]
		}
		v := DecideUpsert(acct.User, op, mood)
		if o.checkBound && v != ClassSynced && v != ClassSpoof && v != ClassMalformed {
			b, here, err := e.boundHere(ctx, acct)
			if err != nil {
				return "", err
			}
			if !here {
				return ClassIgnored, nil
			}
			o.binding, o.checkBound = b, false
		}
		done, err := e.carryOutUpsert(ctx, acct, op, mood, v, o)
		if err != nil {
			return v, err
		}
		if done {
			return v, nil
		}
		// A compare-and-set lost: someone changed the mood meanwhile.
		// Decide again on its fresh state.
	}
	return "", fmt.Errorf("mood %s still changing after %d rounds", id, maxConvergeRounds)
}

// carryOutUpsert performs one verdict. done is false when a compare-and-set
// found the mood changed, so the caller decides again.
func (e *Engine) carryOutUpsert(ctx context.Context, acct model.Account, op Upsert, mood *model.Mood, v Class, o options) (done bool, err error) {
	id := op.Value.MoodID()
	switch v {
	case ClassUnlinked:
		ok, err := e.Store.SetRkey(ctx, id, op.Rkey)
		if err != nil {
			return false, fmt.Errorf("set atproto.rkey of %s: %w", id, err)
		}
		if !ok {
			return false, nil
		}
	case ClassDuplicate:
		stored, err := e.PDS.GetRecord(ctx, acct.DID, mood.Rkey)
		if err != nil {
			return false, fmt.Errorf("read stored record of %s: %w", id, err)
		}
		if stored == nil || stored.Value.MoodID() != id {
			// The stored rkey is stale (its record was deleted and the
			// delete not seen yet, or it holds something else): this record
			// is the mood's record now, if it still exists.
			return e.adoptRecord(ctx, acct, op, mood)
		}
		if err := e.deleteRecordOf(ctx, acct.DID, op.Rkey, id); err != nil {
			return false, err
		}
	case ClassLost:
		// The record may be the only copy of the mood left (Mongo restored
		// from a backup): kept and reported, for restore; deleted only when
		// a purge erased the mood.
		b := o.binding
		if b == nil {
			if b, err = e.Store.Binding(ctx, acct.User); err != nil {
				return false, fmt.Errorf("read binding of %s: %w", acct.User, err)
			}
		}
		if !b.ErasedMood(id) {
			e.verdict(v, acct, op.Rkey, id, "kept: no document in MongoDB; moodsync restore brings it back")
			return true, nil
		}
		if err := e.deleteRecordOf(ctx, acct.DID, op.Rkey, id); err != nil {
			return false, err
		}
		e.verdict(v, acct, op.Rkey, id, "deleted: the user was erased by a purge")
		return true, nil
	case ClassOrphan:
		if o.keepOrphans {
			e.verdict(v, acct, op.Rkey, id, "kept: orphan policy off")
			return true, nil
		}
		if err := e.deleteRecordOf(ctx, acct.DID, op.Rkey, id); err != nil {
			return false, err
		}
	case ClassSpoof:
		e.verdict(v, acct, op.Rkey, id, "ref names a mood of another user")
		return true, nil
	case ClassMalformed:
		e.verdict(v, acct, op.Rkey, id, "the mood's MongoDB document is malformed: "+mood.Malformed)
		return true, nil
	}
	e.verdict(v, acct, op.Rkey, id, "")
	return true, nil
}

// adoptRecord swaps a mood from its stale rkey to op's record, once that
// record is confirmed to exist and to name the mood.
func (e *Engine) adoptRecord(ctx context.Context, acct model.Account, op Upsert, mood *model.Mood) (bool, error) {
	rec, err := e.PDS.GetRecord(ctx, acct.DID, op.Rkey)
	if err != nil {
		return false, fmt.Errorf("read record %s: %w", op.Rkey, err)
	}
	if rec == nil || rec.Value.MoodID() != mood.ID {
		// Neither record is there any more: a replayed event. The delete
		// of the stored record decides what happens to the mood.
		e.verdict(ClassIgnored, acct, op.Rkey, mood.ID, "duplicate of a stale rkey, but gone too")
		return true, nil
	}
	ok, err := e.Store.SwapRkey(ctx, mood.ID, mood.Rkey, op.Rkey)
	if err != nil {
		return false, fmt.Errorf("swap atproto.rkey of %s: %w", mood.ID, err)
	}
	if ok {
		e.observe("stale_rkey_swap", 1)
		e.verdict(ClassDuplicate, acct, op.Rkey, mood.ID, "stored rkey "+mood.Rkey+" was stale: swapped")
	}
	return ok, nil
}

// deleteRecordOf deletes the record at rkey if it still names moodID. The
// read first keeps a replayed or late event from deleting a record that
// has since been rewritten for another mood.
func (e *Engine) deleteRecordOf(ctx context.Context, did, rkey, moodID string) error {
	rec, err := e.PDS.GetRecord(ctx, did, rkey)
	if err != nil {
		return fmt.Errorf("read record %s: %w", rkey, err)
	}
	if rec == nil || rec.Value.MoodID() != moodID {
		return nil
	}
	if err := e.PDS.DeleteRecord(ctx, did, rkey, rec.CID); err != nil {
		return fmt.Errorf("delete record %s: %w", rkey, err)
	}
	e.observe("pds_delete", 1)
	return nil
}

// ApplyDelete carries out the verdict for a record deleted from acct's repo
// and returns it. Unless InOrder is given, a live mood is soft-deleted
// only once the record is read and found gone (a replayed delete of a
// record written again changes nothing).
func (e *Engine) ApplyDelete(ctx context.Context, acct model.Account, rkey string, opts ...Option) (Class, error) {
	defer e.lockUser(acct.User)()
	return e.applyDelete(ctx, acct, rkey, !buildOptions(opts).inOrder, true)
}

// applyDelete is ApplyDelete under the user's lock. checkGone re-reads the
// record before soft-deleting a live mood, so a replayed delete of a record
// that exists again does not delete the mood. A repo that can no longer be
// read (the account was deactivated, taken down or deleted since) does not
// undo the delete: it was seen, and it stands.
func (e *Engine) applyDelete(ctx context.Context, acct model.Account, rkey string, checkGone, checkBound bool) (Class, error) {
	for round := 0; round < maxConvergeRounds; round++ {
		mood, err := e.Store.MoodByRkey(ctx, acct.User, rkey)
		if err != nil {
			return "", fmt.Errorf("find mood of %s: %w", rkey, err)
		}
		v := DecideDelete(mood)
		if checkBound && (v == ClassDeletedOnPDS || v == ClassCleared) {
			if _, here, err := e.boundHere(ctx, acct); err != nil || !here {
				return ClassIgnored, err
			}
			checkBound = false
		}
		var ok bool
		switch v {
		case ClassIgnored:
			e.verdict(v, acct, rkey, "", "no mood holds this rkey")
			return v, nil
		case ClassMalformed:
			e.verdict(v, acct, rkey, mood.ID, "the mood's MongoDB document is malformed: "+mood.Malformed)
			return v, nil
		case ClassDeletedOnPDS:
			if checkGone {
				rec, err := e.PDS.GetRecord(ctx, acct.DID, rkey)
				if _, inactive := model.IsInactive(err); inactive {
					rec, err = nil, nil
				}
				if err != nil {
					return "", fmt.Errorf("read record %s: %w", rkey, err)
				}
				if rec != nil {
					e.verdict(ClassIgnored, acct, rkey, mood.ID, "record exists again")
					return ClassIgnored, nil
				}
				checkGone = false
			}
			ok, err = e.Store.SoftDeleteByRkey(ctx, mood.ID, rkey)
		case ClassCleared:
			ok, err = e.Store.ClearRkey(ctx, mood.ID, rkey)
		}
		if err != nil {
			return "", fmt.Errorf("apply %s to mood %s: %w", v, mood.ID, err)
		}
		if ok {
			e.verdict(v, acct, rkey, mood.ID, "")
			return v, nil
		}
	}
	return "", fmt.Errorf("mood of %s still changing after %d rounds", rkey, maxConvergeRounds)
}
