package reconcile

// This file carries out the reconcile table of DESIGN.md (PDS → Mongo): the
// verdicts of DecideUpsert and DecideDelete for firehose ops, #account
// deletions, and the whole-user comparison that repairs any gap in the
// firehose. Every Mongo write is compare-and-set and every PDS delete is
// preceded by a read, so the publisher, the consumer and an operator
// command can act on the same mood at once, and a replayed event changes
// nothing.

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// FirehoseStore is the Mongo side as the firehose needs it, beyond Store.
type FirehoseStore interface {
	Store
	// MoodByRkey returns the user's mood whose atproto.rkey is rkey, or nil.
	MoodByRkey(ctx context.Context, user, rkey string) (*model.Mood, error)
	// SoftDeleteByRkey marks the mood deleted and unsets atproto, if its
	// atproto.rkey is still rkey.
	SoftDeleteByRkey(ctx context.Context, id, rkey string) (bool, error)
	// SwapRkey moves a live mood from record `from` to record `to`, if its
	// atproto.rkey is still `from`.
	SwapRkey(ctx context.Context, id, from, to string) (bool, error)
	// ClearUserRkeys unsets atproto on every mood of a user.
	ClearUserRkeys(ctx context.Context, user string) (int64, error)
}

// Option adjusts how verdicts are carried out.
type Option func(*options)

type options struct {
	keepOrphans bool
}

// KeepOrphans turns off the orphan policy: records whose mood is
// soft-deleted or gone are counted and left on the PDS instead of deleted.
func KeepOrphans() Option { return func(o *options) { o.keepOrphans = true } }

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Tally counts verdicts, for callers that report them (the consumer's
// stats, the audit command's summary).
type Tally map[Verdict]int

// Add adds other's counts.
func (t Tally) Add(other Tally) {
	for v, n := range other {
		t[v] += n
	}
}

func (e *Engine) firehoseStore() (FirehoseStore, error) {
	fs, ok := e.Store.(FirehoseStore)
	if !ok {
		return nil, model.Permanent("store %T cannot carry out firehose verdicts", e.Store)
	}
	return fs, nil
}

// verdict reports a verdict to Observe and the log. Confirmations are the
// steady state and stay at debug level; everything else says what happened.
func (e *Engine) verdict(v Verdict, acct model.Account, rkey, moodID, why string) {
	e.observe("verdict_"+string(v), 1)
	args := []any{"verdict", string(v), "uri", model.URI(acct.DID, rkey), "user", acct.User}
	if moodID != "" {
		args = append(args, "mood", moodID)
	}
	if why != "" {
		args = append(args, "why", why)
	}
	switch v {
	case VerdictConfirm, VerdictIgnore:
		e.Log.Debug("firehose op", args...)
	case VerdictSpoof, VerdictInvalid:
		e.Log.Warn("firehose op skipped", args...)
	default:
		e.Log.Info("firehose op applied", args...)
	}
}

// ApplyUpsert carries out the verdict for a record created or updated in
// acct's repo and returns it. An error means the op was not (fully)
// applied: permanent ones cannot be, others should be retried.
func (e *Engine) ApplyUpsert(ctx context.Context, acct model.Account, op Upsert, opts ...Option) (Verdict, error) {
	fs, err := e.firehoseStore()
	if err != nil {
		return "", err
	}
	defer e.lockUser(acct.User)()
	return e.applyUpsert(ctx, fs, acct, op, nil, buildOptions(opts))
}

// applyUpsert is ApplyUpsert under the user's lock. known, when not nil, is
// the mood the record names as already read (ReconcileUser reads them in
// one query); it is used for the first round only.
func (e *Engine) applyUpsert(ctx context.Context, fs FirehoseStore, acct model.Account, op Upsert, known *model.Mood, o options) (Verdict, error) {
	if op.Value != nil && op.Invalid == "" {
		op.Invalid = model.ValidateRecord(op.Value)
	}
	if op.Value == nil || op.Invalid != "" {
		why := op.Invalid
		if why == "" {
			why = "record missing"
		}
		e.verdict(VerdictInvalid, acct, op.Rkey, "", why)
		return VerdictInvalid, nil
	}
	id := op.Value.MoodID()
	for round := 0; round < maxConvergeRounds; round++ {
		mood := known
		known = nil
		if mood == nil {
			moods, err := fs.Moods(ctx, []string{id})
			if err != nil {
				return "", fmt.Errorf("read mood %s: %w", id, err)
			}
			mood = moods[id]
		}
		v := DecideUpsert(acct.User, op, mood)
		done, err := e.carryOutUpsert(ctx, fs, acct, op, mood, v, o)
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
func (e *Engine) carryOutUpsert(ctx context.Context, fs FirehoseStore, acct model.Account, op Upsert, mood *model.Mood, v Verdict, o options) (done bool, err error) {
	id := op.Value.MoodID()
	switch v {
	case VerdictRepair:
		ok, err := fs.SetRkey(ctx, id, op.Rkey)
		if err != nil {
			return false, fmt.Errorf("set atproto.rkey of %s: %w", id, err)
		}
		if !ok {
			return false, nil
		}
	case VerdictDuplicate:
		stored, err := e.PDS.GetRecord(ctx, acct.DID, mood.Rkey)
		if err != nil {
			return false, fmt.Errorf("read stored record of %s: %w", id, err)
		}
		if stored == nil || stored.Value.MoodID() != id {
			// The stored rkey is stale (its record was deleted and the
			// delete not seen yet, or it holds something else): this record
			// is the mood's record now, if it still exists.
			return e.adoptRecord(ctx, fs, acct, op, mood)
		}
		if err := e.deleteRecordOf(ctx, acct.DID, op.Rkey, id); err != nil {
			return false, err
		}
	case VerdictOrphan:
		if o.keepOrphans {
			e.verdict(v, acct, op.Rkey, id, "kept: orphan policy off")
			return true, nil
		}
		if err := e.deleteRecordOf(ctx, acct.DID, op.Rkey, id); err != nil {
			return false, err
		}
	case VerdictSpoof:
		e.verdict(v, acct, op.Rkey, id, "ref names a mood of another user")
		return true, nil
	}
	e.verdict(v, acct, op.Rkey, id, "")
	return true, nil
}

// adoptRecord swaps a mood from its stale rkey to op's record, once that
// record is confirmed to exist and to name the mood.
func (e *Engine) adoptRecord(ctx context.Context, fs FirehoseStore, acct model.Account, op Upsert, mood *model.Mood) (bool, error) {
	rec, err := e.PDS.GetRecord(ctx, acct.DID, op.Rkey)
	if err != nil {
		return false, fmt.Errorf("read record %s: %w", op.Rkey, err)
	}
	if rec == nil || rec.Value.MoodID() != mood.ID {
		// Neither record is there any more: a replayed event. The delete
		// of the stored record decides what happens to the mood.
		e.verdict(VerdictIgnore, acct, op.Rkey, mood.ID, "duplicate of a stale rkey, but gone too")
		return true, nil
	}
	ok, err := fs.SwapRkey(ctx, mood.ID, mood.Rkey, op.Rkey)
	if err != nil {
		return false, fmt.Errorf("swap atproto.rkey of %s: %w", mood.ID, err)
	}
	if ok {
		e.observe("stale_rkey_swap", 1)
		e.verdict(VerdictDuplicate, acct, op.Rkey, mood.ID, "stored rkey "+mood.Rkey+" was stale: swapped")
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
	if err := e.PDS.DeleteRecord(ctx, did, rkey); err != nil {
		return fmt.Errorf("delete record %s: %w", rkey, err)
	}
	e.observe("pds_delete", 1)
	return nil
}

// ApplyDelete carries out the verdict for a record deleted from acct's repo
// and returns it.
func (e *Engine) ApplyDelete(ctx context.Context, acct model.Account, rkey string) (Verdict, error) {
	fs, err := e.firehoseStore()
	if err != nil {
		return "", err
	}
	defer e.lockUser(acct.User)()
	return e.applyDelete(ctx, fs, acct, rkey, true)
}

// applyDelete is ApplyDelete under the user's lock. checkGone re-reads the
// record before soft-deleting a live mood, so a replayed delete of a record
// that exists again does not delete the mood.
func (e *Engine) applyDelete(ctx context.Context, fs FirehoseStore, acct model.Account, rkey string, checkGone bool) (Verdict, error) {
	for round := 0; round < maxConvergeRounds; round++ {
		mood, err := fs.MoodByRkey(ctx, acct.User, rkey)
		if err != nil {
			return "", fmt.Errorf("find mood of %s: %w", rkey, err)
		}
		v := DecideDelete(mood)
		var ok bool
		switch v {
		case VerdictIgnore:
			e.verdict(v, acct, rkey, "", "no mood holds this rkey")
			return v, nil
		case VerdictPDSDelete:
			if checkGone {
				rec, err := e.PDS.GetRecord(ctx, acct.DID, rkey)
				if err != nil {
					return "", fmt.Errorf("read record %s: %w", rkey, err)
				}
				if rec != nil {
					e.verdict(VerdictIgnore, acct, rkey, mood.ID, "record exists again")
					return VerdictIgnore, nil
				}
				checkGone = false
			}
			ok, err = fs.SoftDeleteByRkey(ctx, mood.ID, rkey)
		case VerdictClear:
			ok, err = fs.ClearRkey(ctx, mood.ID, rkey)
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

// AccountDeleted unsets atproto on every mood of acct's user: the account
// and with it every record are gone.
func (e *Engine) AccountDeleted(ctx context.Context, acct model.Account) (int64, error) {
	fs, err := e.firehoseStore()
	if err != nil {
		return 0, err
	}
	defer e.lockUser(acct.User)()
	n, err := fs.ClearUserRkeys(ctx, acct.User)
	if err != nil {
		return 0, fmt.Errorf("unset atproto of %s: %w", acct.User, err)
	}
	e.observe("account_deleted_cleared", int(n))
	e.Log.Info("account deleted on the PDS: unset atproto of its moods", "user", acct.User, "did", acct.DID, "moods", n)
	return n, nil
}

// ReconcileUser compares a user's whole repo with their moods and repairs
// Mongo (and, by the orphan and duplicate rules, the repo): every record
// goes through DecideUpsert as if it had just been written, and every mood
// whose rkey no record holds goes through DecideDelete as if its record had
// just been deleted. It is what the consumer runs after a gap in the
// firehose, and what audit and cleanup run on demand.
func (e *Engine) ReconcileUser(ctx context.Context, user string, opts ...Option) (Tally, error) {
	fs, err := e.firehoseStore()
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	acct, err := fs.Account(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("look up account of %s: %w", user, err)
	}
	if acct == nil || acct.DID == "" {
		return nil, model.Permanent("user %s has no PDS account", user)
	}
	defer e.lockUser(user)()

	records, err := e.readRepo(ctx, acct.DID)
	if err != nil {
		return nil, err
	}
	// Oldest first, so when several records name one mood the earliest is
	// the one kept, whatever order the listing came in.
	sort.Slice(records, func(i, j int) bool { return records[i].Rkey < records[j].Rkey })

	ids := make([]string, 0, len(records))
	for _, r := range records {
		if model.ValidID(r.Value.MoodID()) {
			ids = append(ids, r.Value.MoodID())
		}
	}
	moods := map[string]*model.Mood{}
	if len(ids) > 0 {
		if moods, err = fs.Moods(ctx, ids); err != nil {
			return nil, fmt.Errorf("read moods of %s: %w", user, err)
		}
	}

	tally := Tally{}
	var errs []error
	listed := make(map[string]bool, len(records))
	acted := map[string]bool{} // moods changed by an earlier record: read again
	for _, r := range records {
		listed[r.Rkey] = true
		op := Upsert{Rkey: r.Rkey, Invalid: r.Invalid}
		if r.Invalid == "" {
			v := r.Value
			op.Value = &v
		}
		var known *model.Mood
		if op.Value != nil && !acted[op.Value.MoodID()] {
			known = moods[op.Value.MoodID()]
		}
		v, err := e.applyUpsert(ctx, fs, *acct, op, known, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", r.Rkey, err))
			continue
		}
		tally[v]++
		if op.Value != nil && v != VerdictConfirm {
			acted[op.Value.MoodID()] = true
		}
	}

	all, err := fs.UserMoods(ctx, user)
	if err != nil {
		errs = append(errs, fmt.Errorf("read moods of %s: %w", user, err))
		return tally, errors.Join(errs...)
	}
	for _, m := range all {
		if m.Rkey == "" || listed[m.Rkey] {
			continue
		}
		// Not in the listing: deleted on the PDS, unless it was written
		// after the listing was taken (the publisher at work). The delete
		// path reads the record again before touching a live mood.
		v, err := e.applyDelete(ctx, fs, *acct, m.Rkey, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("mood %s: %w", m.ID, err))
			continue
		}
		tally[v]++
	}
	return tally, errors.Join(errs...)
}
