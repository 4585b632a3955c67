package reconcile

// This file is erase-and-forget-me: a purge deletes every mood record of
// the user's repo, then the user's moods in Mongo.

import (
	"context"
	"fmt"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Purge deletes every mood record in the repo, then hard-deletes the user's
// moods in Mongo. did may come from the intent, for when the users row is
// already gone; it must be the user's own DID — the users row's, or once
// the row is gone the one moodsync bound the user to — so a purge can never
// empty somebody else's repo.
func (e *Engine) Purge(ctx context.Context, user, did string) error {
	if user == "" {
		return model.Permanent("purge needs a user")
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
	if did != "" {
		if err := e.checkOneUser(ctx, e.Store, did, user); err != nil {
			return err
		}
		records, err := e.PDS.ListRecords(ctx, did)
		switch st, inactive := model.IsInactive(err); {
		case inactive:
			// The repo cannot be read or written: a deleted account took
			// its records with it; a deactivated or taken-down one keeps
			// them out of view, and the PDS refuses writes to it.
			e.Log.Warn("purge: repo unreachable, its records are not deleted", "user", user, "did", did, "status", st)
		case err != nil:
			return fmt.Errorf("list records of %s: %w", did, err)
		default:
			if err := e.deleteRecords(ctx, did, records); err != nil {
				return err
			}
		}
	}
	n, err := e.Store.DeleteUserMoods(ctx, user)
	if err != nil {
		return fmt.Errorf("delete moods of %s: %w", user, err)
	}
	// Forget me: drop the cached session too. A redelivered purge needs
	// none, since listing a repo is public. The binding stays: it is what
	// authorises a redelivered purge once the users row is gone.
	if did != "" {
		if err := e.PDS.ForgetSession(ctx, did); err != nil {
			e.Log.Warn("could not forget PDS session", "did", did, "err", err)
		}
	}
	e.Log.Info("purged user", "user", user, "did", did, "moods", n)
	return nil
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
