package reconcile

// This file is the Mongo → PDS write path (the publisher rule table,
// DecidePublish): create and delete intents, and the creates of a
// whole-user reconcile, converge a user's records to their moods.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// SyncMoods converges the PDS to Mongo for some moods of one user (the
// create and delete intents). It returns one result per id: nil when the
// mood is converged (or needs nothing), a permanent error when the intent
// can never be applied (someone else's mood, no or an inactive account),
// another error when it should be retried.
func (e *Engine) SyncMoods(ctx context.Context, user string, ids []string) map[string]error {
	defer e.lockUser(user)()
	return e.syncMoods(ctx, user, ids)
}

// syncMoods is SyncMoods under the user's lock.
func (e *Engine) syncMoods(ctx context.Context, user string, ids []string) map[string]error {
	results := make(map[string]error, len(ids))
	pending := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, seen := results[id]; seen {
			continue
		}
		results[id] = nil
		pending = append(pending, id)
	}
	fail := func(ids []string, err error) {
		for _, id := range ids {
			results[id] = err
		}
	}
	var acct *model.Account
	for round := 0; len(pending) > 0; round++ {
		if round == maxConvergeRounds {
			for _, id := range pending {
				results[id] = fmt.Errorf("mood %s still changing after %d rounds", id, round)
			}
			break
		}
		moods, err := e.Store.Moods(ctx, pending)
		if err != nil {
			fail(pending, fmt.Errorf("read moods: %w", err))
			break
		}
		var work []*model.Mood
		for _, id := range pending {
			m := moods[id]
			if m != nil && m.Malformed != "" {
				results[id] = model.Permanent("mood %s: its MongoDB document is malformed (%s): nothing written", id, m.Malformed)
				continue
			}
			if m != nil && m.User != user {
				results[id] = model.Permanent("mood %s is not owned by user %s", id, user)
				continue
			}
			if DecidePublish(m) != PublishNothing {
				work = append(work, m)
			}
		}
		if len(work) == 0 {
			break
		}
		if acct == nil {
			var rebound bool
			acct, _, rebound, err = e.subject(ctx, user)
			if err != nil {
				fail(moodIDs(work), err)
				break
			}
			if rebound {
				// Every rkey was cleared: every live mood of the user is to
				// be written into the new repo, not only this intent's.
				all, err := e.Store.UserMoods(ctx, user)
				if err != nil {
					fail(moodIDs(work), fmt.Errorf("read moods of %s: %w", user, err))
					break
				}
				pending = pending[:0]
				for _, m := range all {
					if DecidePublish(m) != PublishNothing || slices.Contains(ids, m.ID) {
						pending = append(pending, m.ID)
					}
				}
				continue
			}
		}
		failed := e.converge(ctx, acct.DID, work)
		pending = pending[:0]
		for _, m := range work {
			if err := failed[m.ID]; err != nil {
				e.noteInactive(ctx, user, acct.DID, err)
				results[m.ID] = err
				continue
			}
			// Read again: the level-triggered loop ends only when the
			// decision for the fresh state is "nothing".
			pending = append(pending, m.ID)
		}
	}
	return results
}

func moodIDs(moods []*model.Mood) []string {
	ids := make([]string, len(moods))
	for i, m := range moods {
		ids[i] = m.ID
	}
	return ids
}

// converge carries out the publisher decision for each mood: PDS writes in
// applyWrites batches, then the compare-and-set in Mongo. It returns the
// moods that failed.
func (e *Engine) converge(ctx context.Context, did string, moods []*model.Mood) map[string]error {
	failed := make(map[string]error)
	// A delete removes only the record it means: the record at the stored
	// rkey must carry this mood's ref (a deterministic key can be reused).
	var writes, deletes []*model.Mood
	swap := map[string]string{} // mood id → CID of the record to delete
	for _, m := range moods {
		if DecidePublish(m) != PublishDelete {
			writes = append(writes, m)
			continue
		}
		rec, err := e.PDS.GetRecord(ctx, did, m.Rkey)
		switch {
		case err != nil:
			failed[m.ID] = fmt.Errorf("read record %s: %w", m.Rkey, err)
			continue
		case rec == nil:
			// Already gone: only Mongo is left to converge.
		case rec.Value.MoodID() != m.ID:
			e.observe("delete_other_record_kept", 1)
			e.Log.Warn("record at a deleted mood's rkey names another mood: left in place",
				"mood", m.ID, "uri", model.URI(did, m.Rkey), "names", rec.Value.MoodID())
		default:
			swap[m.ID] = rec.CID
			deletes = append(deletes, m)
			continue
		}
		if err := e.record(ctx, did, m, m.Rkey); err != nil {
			failed[m.ID] = err
		}
	}
	for start := 0; start < len(writes); start += MaxBatch {
		chunk := writes[start:min(start+MaxBatch, len(writes))]
		var written map[string]string
		var err error
		if len(chunk) > 1 {
			written, err = e.writeBatch(ctx, did, chunk)
			if err != nil && !errors.Is(err, errBatchRefused) {
				for _, m := range chunk {
					failed[m.ID] = err
				}
				continue
			}
			if err != nil {
				// One bad op fails an atomic batch (a key already taken,
				// most often after a crash): fall back to one write at a
				// time.
				e.Log.Debug("applyWrites refused, writing one at a time", "did", did, "ops", len(chunk))
			}
		}
		if written == nil {
			// A single write, or a refused batch: one call per mood.
			written = make(map[string]string, len(chunk))
			for _, m := range chunk {
				rkey, err := e.writeOne(ctx, did, m, swap[m.ID])
				if err != nil {
					failed[m.ID] = err
					continue
				}
				written[m.ID] = rkey
			}
		}
		for _, m := range chunk {
			rkey, ok := written[m.ID]
			if !ok {
				continue
			}
			if err := e.record(ctx, did, m, rkey); err != nil {
				failed[m.ID] = err
			}
		}
	}
	// Deletes go one at a time, each naming the CID it read (swapRecord):
	// applyWrites has no swap per record, so a batch could remove a record
	// written again meanwhile.
	for _, m := range deletes {
		rkey, err := e.writeOne(ctx, did, m, swap[m.ID])
		if err == nil {
			err = e.record(ctx, did, m, rkey)
		}
		if err != nil {
			failed[m.ID] = err
		}
	}
	return failed
}

var errBatchRefused = errors.New("applyWrites refused the batch")

// writeBatch writes the records of a chunk of moods to create in one
// applyWrites call, at attempt-0 keys. It returns mood id → rkey written.
func (e *Engine) writeBatch(ctx context.Context, did string, chunk []*model.Mood) (map[string]string, error) {
	writes := make([]model.Write, 0, len(chunk))
	rkeys := make(map[string]string, len(chunk))
	for _, m := range chunk {
		rk := model.Rkey(m, 0)
		writes = append(writes, model.Write{Rkey: rk, Value: model.NewRecordValue(m)})
		rkeys[m.ID] = rk
	}
	if err := e.PDS.ApplyWrites(ctx, did, writes); err != nil {
		if model.IsTransport(err) || model.IsPermanent(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errBatchRefused, err)
	}
	e.observe("pds_create", len(writes))
	return rkeys, nil
}

// writeOne performs one mood's PDS action on its own, in one call when
// nothing is in the way. A delete names the CID it read, so a record
// rewritten meanwhile is not removed. A create is tried at the
// deterministic key first; only when the PDS refuses it is the key read: a
// key holding this mood's own record (a retry after a crash, or a
// concurrent worker) is adopted, a key holding another mood's record moves
// on to the next clock id.
func (e *Engine) writeOne(ctx context.Context, did string, m *model.Mood, swapCID string) (string, error) {
	if DecidePublish(m) == PublishDelete {
		if err := e.PDS.DeleteRecord(ctx, did, m.Rkey, swapCID); err != nil {
			return "", err
		}
		e.observe("pds_delete", 1)
		return m.Rkey, nil
	}
	for attempt := 0; attempt < model.MaxRkeyProbes; attempt++ {
		rkey := model.Rkey(m, attempt)
		createErr := e.PDS.CreateRecord(ctx, did, rkey, model.NewRecordValue(m))
		if createErr == nil {
			e.observe("pds_create", 1)
			return rkey, nil
		}
		if model.IsTransport(createErr) || model.IsPermanent(createErr) {
			return "", createErr
		}
		// The PDS answers a taken key with a bare 500: look to tell a key
		// already taken from a real failure.
		existing, err := e.PDS.GetRecord(ctx, did, rkey)
		if err != nil {
			return "", err
		}
		if existing == nil {
			return "", fmt.Errorf("create %s: %w", rkey, createErr)
		}
		if existing.Value.MoodID() == m.ID {
			e.observe("pds_adopt", 1)
			return rkey, nil
		}
	}
	return "", model.NoFreeRkey(m.ID, m.User)
}

// record stores the outcome of a PDS write in Mongo with compare-and-set.
// When the mood changed under us — soft-deleted, gone, or pointed at another
// record meanwhile — the record just written is no longer wanted and is
// deleted again, so no orphan or duplicate is left behind.
func (e *Engine) record(ctx context.Context, did string, m *model.Mood, rkey string) error {
	if DecidePublish(m) == PublishDelete {
		if _, err := e.Store.ClearRkey(ctx, m.ID, rkey); err != nil {
			return fmt.Errorf("unset atproto of %s: %w", m.ID, err)
		}
		return nil
	}
	ok, err := e.Store.SetRkey(ctx, m.ID, rkey)
	if err != nil {
		return fmt.Errorf("set atproto.rkey of %s: %w", m.ID, err)
	}
	if ok {
		return nil
	}
	fresh, err := e.Store.Moods(ctx, []string{m.ID})
	if err != nil {
		return fmt.Errorf("re-read %s: %w", m.ID, err)
	}
	cur := fresh[m.ID]
	if cur != nil && cur.Rkey == rkey {
		return nil // someone (the consumer, another replica) got there first
	}
	e.Log.Info("mood changed while its record was written; removing the record",
		"mood", m.ID, "uri", model.URI(did, rkey))
	return e.deleteRecordOf(ctx, did, rkey, m.ID)
}
