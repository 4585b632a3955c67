// Package reconcile is moodsync's one decision engine. Every component —
// the intent publisher, the firehose consumer and the operator commands —
// asks it what to do and lets it act; none of them decides on its own.
//
// Decisions are pure functions of (event or intent, Mongo state, repo owner)
// so they can be table-tested (decide.go, compare.go); the Engine applies
// them through two interfaces, Store (MongoDB) and PDS (XRPC), using
// compare-and-set writes so concurrent actors converge instead of undoing
// each other. There is one whole-user reconcile (user.go) for every caller.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Store is the Mongo side as the engine needs it: every operation a backend
// must provide. Writes are compare-and-set: they report whether the
// document was in the expected state, and leave it alone when it was not.
type Store interface {
	// Moods returns the documents with these ids that exist.
	Moods(ctx context.Context, ids []string) (map[string]*model.Mood, error)
	// UserMoods returns every mood of a user, deleted ones included.
	UserMoods(ctx context.Context, user string) ([]*model.Mood, error)
	// MoodByRkey returns the user's mood whose atproto.rkey is rkey, or nil.
	MoodByRkey(ctx context.Context, user, rkey string) (*model.Mood, error)

	// Account returns the ATProto account of a user's users row, nil when
	// the user has none (or no users row).
	Account(ctx context.Context, user string) (*model.Account, error)
	// UsersOfDID returns the users whose users row names did.
	UsersOfDID(ctx context.Context, did string) ([]string, error)

	// Binding returns the DID binding of a user, nil when there is none.
	Binding(ctx context.Context, user string) (*model.Binding, error)
	// BindingsOfDID returns the bindings to did.
	BindingsOfDID(ctx context.Context, did string) ([]model.Binding, error)
	// Bind binds user to did if the binding still names prev ("" for none).
	Bind(ctx context.Context, user, did, prev string) (bool, error)
	// SetStatus records the account status of user's binding to did.
	SetStatus(ctx context.Context, user, did, status string) error
	// NoteReconcile records the last whole-user reconcile on user's
	// binding, if there is one (for operators: moodsync status).
	NoteReconcile(ctx context.Context, user string, mark model.ReconcileMark) error
	// SetCleanPass records what a clean whole-user pass saw on user's
	// binding to did (Bind to another DID forgets it).
	SetCleanPass(ctx context.Context, user, did string, c model.CleanPass) error

	// SetRkey sets atproto.rkey on a live mood whose atproto is unset.
	SetRkey(ctx context.Context, id, rkey string) (bool, error)
	// ClearRkey unsets atproto on a mood whose atproto.rkey equals rkey.
	ClearRkey(ctx context.Context, id, rkey string) (bool, error)
	// SoftDeleteByRkey marks the mood deleted and unsets atproto, if its
	// atproto.rkey is still rkey.
	SoftDeleteByRkey(ctx context.Context, id, rkey string) (bool, error)
	// SwapRkey moves a live mood from record `from` to record `to`, if its
	// atproto.rkey is still `from`.
	SwapRkey(ctx context.Context, id, from, to string) (bool, error)
	// ClearUserRkeys unsets atproto on every mood of a user.
	ClearUserRkeys(ctx context.Context, user string) (int64, error)
	// DeleteUserMoods hard-deletes every mood of a user.
	DeleteUserMoods(ctx context.Context, user string) (int64, error)
}

// MaxBatch is the most writes the PDS accepts in one applyWrites call.
const MaxBatch = 200

// PDS is the repo side as the engine needs it: every operation a backend
// must provide. Implementations authenticate as the repo's own user and
// classify their errors: model.TransportError for what to retry later,
// model.InactiveError when the account is deactivated, taken down or gone,
// model.PermanentError for what no retry fixes.
type PDS interface {
	// ApplyWrites applies the writes atomically: all or none.
	ApplyWrites(ctx context.Context, did string, writes []model.Write) error
	// CreateRecord creates a record at rkey; it fails if the key is taken.
	CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error
	// DeleteRecord deletes a record, only if its CID is still swapCID when
	// that is set; deleting a missing record succeeds.
	DeleteRecord(ctx context.Context, did, rkey, swapCID string) error
	// GetRecord returns the record at rkey, nil when there is none.
	GetRecord(ctx context.Context, did, rkey string) (*model.Record, error)
	// ListRecords returns every mood record of the repo.
	ListRecords(ctx context.Context, did string) ([]model.Record, error)
	// ExportRecords returns every mood record of the repo from one export.
	ExportRecords(ctx context.Context, did string) ([]model.Record, error)
	// RepoStatus is the PDS's word on the repo: active or why not.
	RepoStatus(ctx context.Context, did string) (model.RepoStatus, error)
	// ForgetSession drops the cached session of did (after a purge).
	ForgetSession(ctx context.Context, did string) error
}

// Engine applies decisions. It is safe for concurrent use: work on one user
// is serialised inside the process, and compare-and-set plus deterministic
// rkeys keep separate processes from fighting.
type Engine struct {
	Store Store
	PDS   PDS
	Log   *slog.Logger

	// Observe, when set, is told about every action taken, for metrics.
	Observe func(action string, n int)
	// MassDeleteLimit bounds the soft deletes of one user in one whole-user
	// pass on evidence other than seen delete ops (0: the default, 10).
	MassDeleteLimit int

	locks userLocks
}

// NewEngine returns an engine over the given store and PDS.
func NewEngine(store Store, pds PDS, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{Store: store, PDS: pds, Log: log}
}

func (e *Engine) lockUser(user string) func() { return e.locks.lock(user) }

func (e *Engine) observe(action string, n int) {
	if e.Observe != nil && n > 0 {
		e.Observe(action, n)
	}
}

// maxConvergeRounds bounds the read-decide-act loop; a mood that keeps
// changing under us is retried later rather than chased forever.
const maxConvergeRounds = 3

// subject returns the account the engine acts for, once it is safe to write
// into its repo: the users row exists and names a DID no other row claims,
// the user is bound to that DID (a changed DID is rebound first: rebound
// reports it), and the account is not known to be inactive.
func (e *Engine) subject(ctx context.Context, user string) (acct *model.Account, rebound bool, err error) {
	acct, err = e.Store.Account(ctx, user)
	if err != nil {
		return nil, false, fmt.Errorf("look up account of %s: %w", user, err)
	}
	if acct == nil || acct.DID == "" {
		return nil, false, model.Permanent("user %s has no PDS account", user)
	}
	if err := e.checkOneUser(ctx, acct.DID, user); err != nil {
		return nil, false, err
	}
	b, err := e.Store.Binding(ctx, user)
	if err != nil {
		return nil, false, fmt.Errorf("read binding of %s: %w", user, err)
	}
	switch {
	case b == nil:
		if _, err := e.Store.Bind(ctx, user, acct.DID, ""); err != nil {
			return nil, false, fmt.Errorf("bind %s to %s: %w", user, acct.DID, err)
		}
	case b.DID != acct.DID:
		if err := e.rebind(ctx, user, b.DID, acct.DID); err != nil {
			return nil, false, err
		}
		rebound = true
	case b.Inactive():
		// Ask the PDS before parking: the event that said the account is
		// back may have been missed.
		st, err := e.PDS.RepoStatus(ctx, acct.DID)
		if err != nil {
			return nil, false, fmt.Errorf("repo status of %s: %w", acct.DID, err)
		}
		if !st.Active {
			return nil, false, model.Inactive(acct.DID, st.Status)
		}
		if err := e.Store.SetStatus(ctx, user, acct.DID, model.StatusActive); err != nil {
			return nil, false, fmt.Errorf("record status of %s: %w", user, err)
		}
	}
	return acct, rebound, nil
}

// checkOneUser refuses a DID that more than one users row claims: writing
// one user's moods into another's repo is worse than writing nothing.
func (e *Engine) checkOneUser(ctx context.Context, did, user string) error {
	users, err := e.Store.UsersOfDID(ctx, did)
	if err != nil {
		return fmt.Errorf("look up users of %s: %w", did, err)
	}
	for _, u := range users {
		if u != user {
			e.observe("did_conflict", 1)
			return model.Permanent("DID %s is claimed by more than one users row (%s and %s): no writes until the rows are fixed", did, user, u)
		}
	}
	return nil
}

// rebind moves a user whose users row names a new DID: the rkeys of their
// moods belong to the old repo, so they are cleared (the moods are written
// into the new repo next; nothing is soft-deleted, a new repo is empty) and
// the binding is moved. The old repo is left as it is. Clearing comes
// first: a crash in between repeats it, which is harmless.
func (e *Engine) rebind(ctx context.Context, user, oldDID, newDID string) error {
	n, err := e.Store.ClearUserRkeys(ctx, user)
	if err != nil {
		return fmt.Errorf("clear rkeys of %s: %w", user, err)
	}
	if _, err := e.Store.Bind(ctx, user, newDID, oldDID); err != nil {
		return fmt.Errorf("rebind %s to %s: %w", user, newDID, err)
	}
	e.observe("did_rebound", 1)
	e.Log.Warn("user's DID changed: rkeys cleared, moods are written into the new repo; the old repo is left as it is",
		"user", user, "old_did", oldDID, "new_did", newDID, "moods_cleared", n)
	return nil
}

// noteInactive records an inactive status the PDS reported for a user's
// repo, so their next intents are parked without asking it again.
func (e *Engine) noteInactive(ctx context.Context, user, did string, err error) {
	st, ok := model.IsInactive(err)
	if !ok || st == "inactive" {
		return
	}
	if serr := e.Store.SetStatus(ctx, user, did, st); serr != nil {
		e.Log.Warn("could not record account status", "user", user, "did", did, "status", st, "err", serr)
	}
}

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
			acct, rebound, err = e.subject(ctx, user)
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
	var writes []*model.Mood
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
			writes = append(writes, m)
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
	return failed
}

var errBatchRefused = errors.New("applyWrites refused the batch")

// writeBatch writes the whole chunk in one applyWrites call, creates at
// attempt-0 keys. It returns mood id → rkey written (or deleted).
func (e *Engine) writeBatch(ctx context.Context, did string, chunk []*model.Mood) (map[string]string, error) {
	writes := make([]model.Write, 0, len(chunk))
	rkeys := make(map[string]string, len(chunk))
	creates, deletes := 0, 0
	for _, m := range chunk {
		switch DecidePublish(m) {
		case PublishCreate:
			rk := model.Rkey(m, 0)
			writes = append(writes, model.Write{Rkey: rk, Value: model.NewRecordValue(m)})
			rkeys[m.ID] = rk
			creates++
		case PublishDelete:
			writes = append(writes, model.Write{Delete: true, Rkey: m.Rkey})
			rkeys[m.ID] = m.Rkey
			deletes++
		}
	}
	if err := e.PDS.ApplyWrites(ctx, did, writes); err != nil {
		if model.IsTransport(err) || model.IsPermanent(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errBatchRefused, err)
	}
	e.observe("pds_create", creates)
	e.observe("pds_delete", deletes)
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
		if err := e.checkOneUser(ctx, did, user); err != nil {
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

// ownDID is the DID a user is known by: their users row's, else the one
// they are bound to; "" when neither exists.
func (e *Engine) ownDID(ctx context.Context, user string) (string, error) {
	acct, err := e.Store.Account(ctx, user)
	if err != nil {
		return "", fmt.Errorf("look up account of %s: %w", user, err)
	}
	if acct != nil && acct.DID != "" {
		return acct.DID, nil
	}
	b, err := e.Store.Binding(ctx, user)
	if err != nil {
		return "", fmt.Errorf("read binding of %s: %w", user, err)
	}
	if b != nil {
		return b.DID, nil
	}
	return "", nil
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
