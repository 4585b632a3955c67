package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Store is the Mongo side as the engine needs it. Writes are
// compare-and-set: they report whether the document was in the expected
// state, and leave it alone when it was not.
type Store interface {
	// Moods returns the documents with these ids that exist.
	Moods(ctx context.Context, ids []string) (map[string]*model.Mood, error)
	// UserMoods returns every mood of a user, deleted ones included.
	UserMoods(ctx context.Context, user string) ([]*model.Mood, error)
	// Account returns the ATProto account of a user, nil when the user has
	// none (or no users row).
	Account(ctx context.Context, user string) (*model.Account, error)
	// SetRkey sets atproto.rkey on a live mood whose atproto is unset.
	SetRkey(ctx context.Context, id, rkey string) (bool, error)
	// ClearRkey unsets atproto on a mood whose atproto.rkey equals rkey.
	ClearRkey(ctx context.Context, id, rkey string) (bool, error)
	// DeleteUserMoods hard-deletes every mood of a user.
	DeleteUserMoods(ctx context.Context, user string) (int64, error)
}

// MaxBatch is the most writes the PDS accepts in one applyWrites call.
const MaxBatch = 200

// PDS is the repo side as the engine needs it. Implementations authenticate
// as the repo's own user and classify their errors: IsPermanent for what a
// retry cannot fix, anything else is retried.
type PDS interface {
	// ApplyWrites applies the writes atomically: all or none.
	ApplyWrites(ctx context.Context, did string, writes []model.Write) error
	// CreateRecord creates a record at rkey; it fails if the key is taken.
	CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error
	// DeleteRecord deletes a record; deleting a missing record succeeds.
	DeleteRecord(ctx context.Context, did, rkey string) error
	// GetRecord returns the record at rkey, nil when there is none.
	GetRecord(ctx context.Context, did, rkey string) (*model.Record, error)
	// ListRecords returns every mood record of the repo.
	ListRecords(ctx context.Context, did string) ([]model.Record, error)
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

	userLocks keyedMutex // by user; released when no longer in use
}

// NewEngine returns an engine over the given store and PDS.
func NewEngine(store Store, pds PDS, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{Store: store, PDS: pds, Log: log}
}

func (e *Engine) lockUser(user string) func() {
	return e.userLocks.lock(user)
}

func (e *Engine) observe(action string, n int) {
	if e.Observe != nil && n > 0 {
		e.Observe(action, n)
	}
}

// maxConvergeRounds bounds the read-decide-act loop; a mood that keeps
// changing under us is retried later rather than chased forever.
const maxConvergeRounds = 3

// SyncMoods converges the PDS to Mongo for some moods of one user (the
// create and delete intents). It returns one result per id: nil when the
// mood is converged (or needs nothing), a PermanentError when the intent
// can never be applied, another error when it should be retried.
func (e *Engine) SyncMoods(ctx context.Context, user string, ids []string) map[string]error {
	defer e.lockUser(user)()
	results := make(map[string]error, len(ids))
	pending := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, seen := results[id]; seen {
			continue
		}
		results[id] = nil
		pending = append(pending, id)
	}
	for round := 0; len(pending) > 0; round++ {
		if round == maxConvergeRounds {
			for _, id := range pending {
				results[id] = fmt.Errorf("mood %s still changing after %d rounds", id, round)
			}
			break
		}
		moods, err := e.Store.Moods(ctx, pending)
		if err != nil {
			for _, id := range pending {
				results[id] = fmt.Errorf("read moods: %w", err)
			}
			break
		}
		var work []*model.Mood
		for _, id := range pending {
			m := moods[id]
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
		acct, err := e.Store.Account(ctx, user)
		if err == nil && (acct == nil || acct.DID == "") {
			err = model.Permanent("user %s has no PDS account", user)
		}
		if err != nil {
			for _, m := range work {
				results[m.ID] = err
			}
			break
		}
		failed := e.converge(ctx, acct.DID, work)
		pending = pending[:0]
		for _, m := range work {
			if err := failed[m.ID]; err != nil {
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

// SyncUser converges every mood of a user (the reconcile intent).
func (e *Engine) SyncUser(ctx context.Context, user string) error {
	moods, err := e.Store.UserMoods(ctx, user)
	if err != nil {
		return fmt.Errorf("read moods of %s: %w", user, err)
	}
	ids := make([]string, 0, len(moods))
	for _, m := range moods {
		if DecidePublish(m) != PublishNothing {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var errs []error
	for id, err := range e.SyncMoods(ctx, user, ids) {
		if err != nil {
			errs = append(errs, fmt.Errorf("mood %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// converge carries out the publisher decision for each mood: PDS writes in
// applyWrites batches, then the compare-and-set in Mongo. It returns the
// moods that failed.
func (e *Engine) converge(ctx context.Context, did string, moods []*model.Mood) map[string]error {
	failed := make(map[string]error)
	for start := 0; start < len(moods); start += MaxBatch {
		chunk := moods[start:min(start+MaxBatch, len(moods))]
		written, err := e.writeBatch(ctx, did, chunk)
		if err != nil {
			if !errors.Is(err, errBatchRefused) {
				for _, m := range chunk {
					failed[m.ID] = err
				}
				continue
			}
			// One bad op fails an atomic batch (a key already taken, most
			// often after a crash): fall back to one write at a time.
			e.Log.Debug("applyWrites refused, writing one at a time", "did", did, "ops", len(chunk))
			written = make(map[string]string, len(chunk))
			for _, m := range chunk {
				rkey, err := e.writeOne(ctx, did, m)
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
	if len(writes) == 1 {
		// A batch of one gains nothing and hides which case failed.
		return nil, errBatchRefused
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

// writeOne performs one mood's PDS action on its own. For a create it probes
// the deterministic keys: a key holding this mood's own record (a retry after
// a crash, or a concurrent worker) is adopted; a key holding another mood's
// record moves on to the next clock id.
func (e *Engine) writeOne(ctx context.Context, did string, m *model.Mood) (string, error) {
	if DecidePublish(m) == PublishDelete {
		if err := e.PDS.DeleteRecord(ctx, did, m.Rkey); err != nil {
			return "", err
		}
		e.observe("pds_delete", 1)
		return m.Rkey, nil
	}
	for attempt := 0; attempt < model.MaxRkeyProbes; attempt++ {
		rkey := model.Rkey(m, attempt)
		existing, err := e.PDS.GetRecord(ctx, did, rkey)
		if err != nil {
			return "", err
		}
		if existing != nil {
			if existing.Value.MoodID() == m.ID {
				e.observe("pds_adopt", 1)
				return rkey, nil
			}
			continue
		}
		createErr := e.PDS.CreateRecord(ctx, did, rkey, model.NewRecordValue(m))
		if createErr == nil {
			e.observe("pds_create", 1)
			return rkey, nil
		}
		if model.IsTransport(createErr) || model.IsPermanent(createErr) {
			return "", createErr
		}
		// The PDS answers a taken key with a bare 500: look again to tell
		// a lost race from a real failure.
		existing, err = e.PDS.GetRecord(ctx, did, rkey)
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
	return "", fmt.Errorf("no free rkey for mood %s after %d probes", m.ID, model.MaxRkeyProbes)
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
	if err := e.PDS.DeleteRecord(ctx, did, rkey); err != nil {
		return err
	}
	e.observe("pds_delete", 1)
	return nil
}

// Purge deletes every mood record in the repo, then hard-deletes the user's
// moods in Mongo. did may come from the intent, for when the users row is
// already gone.
func (e *Engine) Purge(ctx context.Context, user, did string) error {
	if user == "" {
		return model.Permanent("purge needs a user")
	}
	defer e.lockUser(user)()
	if did == "" {
		acct, err := e.Store.Account(ctx, user)
		if err != nil {
			return fmt.Errorf("look up account of %s: %w", user, err)
		}
		if acct != nil {
			did = acct.DID
		}
	}
	if did != "" {
		records, err := e.PDS.ListRecords(ctx, did)
		if err != nil {
			return fmt.Errorf("list records of %s: %w", did, err)
		}
		if err := e.deleteRecords(ctx, did, records); err != nil {
			return err
		}
	}
	n, err := e.Store.DeleteUserMoods(ctx, user)
	if err != nil {
		return fmt.Errorf("delete moods of %s: %w", user, err)
	}
	// Forget me: drop the cached session too. A redelivered purge needs
	// none, since listing a repo is public.
	if f, ok := e.PDS.(interface {
		ForgetSession(ctx context.Context, did string) error
	}); ok && did != "" {
		if err := f.ForgetSession(ctx, did); err != nil {
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
			if err := e.PDS.DeleteRecord(ctx, did, r.Rkey); err != nil {
				return err
			}
			e.observe("pds_delete", 1)
		}
	}
	return nil
}
