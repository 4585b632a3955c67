package reconcile

// This file is erase-and-forget-me: a purge deletes every mood record of
// the user's repo, then the user's moods in Mongo.

import (
	"context"
	"fmt"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Purge deletes every mood record in the repo, then hard-deletes the user's
// moods in Mongo. did may come from the intent, for when the users row is
// already gone; it must be the user's own DID — the users row's, or once
// the row is gone the one moodsync bound the user to — so a purge can never
// empty somebody else's repo.
//
// A purge erases what existed when it was asked: asOf is the intent's
// publish time (now when zero). Moods created after it (by their ObjectID's
// time), and their records, are the user's new moods and stay, so a purge
// redelivered or replayed later never erases them. The binding keeps the
// tombstone (when the user was erased): records naming erased moods seen
// later — a deactivated repo coming back — are deleted, never restored.
func (e *Engine) Purge(ctx context.Context, user, did string, asOf time.Time) error {
	if user == "" {
		return model.Permanent("purge needs a user")
	}
	if asOf.IsZero() {
		asOf = time.Now()
	}
	defer e.lockUser(user)()
	owner, err := e.ownDID(ctx, user)
	if err != nil {
		return err
	}
	switch {
	case did == "":
		did = owner
	case owner == "":
		return model.Permanent("purge names %s, but moodsync knows no DID of user %s: nothing deleted", did, user)
	case did != owner:
		return model.Permanent("purge names %s, but user %s is bound to %s: nothing deleted", did, user, owner)
	}
	keepSession := false
	if did != "" {
		if err := e.checkOneUser(ctx, e.Store, did, user); err != nil {
			return err
		}
		// The tombstone first: a crash after it leaves a purge that the
		// redelivery finishes, and records of erased moods that nothing
		// restores meanwhile.
		if err := e.Store.SetErased(ctx, user, did, asOf); err != nil {
			return fmt.Errorf("record the purge of %s: %w", user, err)
		}
		records, err := e.PDS.ListRecords(ctx, did)
		switch st, inactive := model.IsInactive(err); {
		case inactive:
			// The repo cannot be read or written: a deleted account took
			// its records with it; a deactivated or taken-down one keeps
			// them out of view, and the PDS refuses writes to it.
			// The session is kept: with it the records are deleted once the
			// repo is back (the tombstone says which).
			e.Log.Warn("purge: repo unreachable, its records are not deleted now (they are when it is back)", "user", user, "did", did, "status", st)
			keepSession = true
		case err != nil:
			return fmt.Errorf("list records of %s: %w", did, err)
		default:
			if err := e.deleteRecords(ctx, did, erasedRecords(records, asOf)); err != nil {
				return err
			}
		}
	}
	n, err := e.Store.DeleteUserMoods(ctx, user, asOf)
	if err != nil {
		return fmt.Errorf("delete moods of %s: %w", user, err)
	}
	// Forget me: drop the cached session too. A redelivered purge needs
	// none, since listing a repo is public. The binding stays: it is what
	// authorises a redelivered purge once the users row is gone.
	if did != "" && !keepSession {
		if err := e.PDS.ForgetSession(ctx, did); err != nil {
			e.Log.Warn("could not forget PDS session", "did", did, "err", err)
		}
	}
	e.Log.Info("purged user", "user", user, "did", did, "moods", n)
	return nil
}

// erasedRecords are the records a purge asked at asOf erases: every record
// but those naming a mood created after asOf.
func erasedRecords(records []model.Record, asOf time.Time) []model.Record {
	var out []model.Record
	for _, r := range records {
		if at, ok := model.IDTime(model.NormalizeID(r.Value.MoodID())); ok && at.After(asOf) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// deleteRecords deletes records in applyWrites batches, one at a time when
// a batch is refused.
func (e *Engine) deleteRecords(ctx context.Context, did string, records []model.Record) error {
	for start := 0; start < len(records); start += MaxBatch {
		chunk := records[start:min(start+MaxBatch, len(records))]
		writes := make([]model.Write, len(chunk))
		for i, r := range chunk {
			writes[i] = model.Write{Delete: true, Rkey: r.Rkey}
		}
		err := e.PDS.ApplyWrites(ctx, did, writes)
		if err == nil {
			e.observe("pds_delete", len(writes))
			continue
		}
		if model.IsTransport(err) || model.IsPermanent(err) {
			return err
		}
		for _, r := range chunk {
			if err := e.PDS.DeleteRecord(ctx, did, r.Rkey, r.CID); err != nil {
				return err
			}
			e.observe("pds_delete", 1)
		}
	}
	return nil
}
