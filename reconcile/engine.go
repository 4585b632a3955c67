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
	"log/slog"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Store is the Mongo side as the engine needs it: every operation a backend
// must provide, reads and writes. Code that must change nothing (a status,
// an audit) is given a Reader.
type Store interface {
	Reader
	Writer
}

// Reader is every read of the Mongo side.
type Reader interface {
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
}

// Writer is every write of the Mongo side. Writes are compare-and-set:
// they report whether the document was in the expected state, and leave it
// alone when it was not.
type Writer interface {
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
	// DeleteUserMoods hard-deletes the moods of a user created (by their
	// ObjectID's time) up to upTo; every mood when upTo is zero.
	DeleteUserMoods(ctx context.Context, user string, upTo time.Time) (int64, error)
	// InsertMood inserts a mood only where no document with its id exists
	// (restore): false when one does. It never overwrites.
	InsertMood(ctx context.Context, m model.Mood) (bool, error)
	// SetErased records the purge tombstone on user's binding (bound to
	// did when never bound).
	SetErased(ctx context.Context, user, did string, at time.Time) error
	// SetRewriteOwed records whether user's repo owes a rewrite of the
	// records it lost.
	SetRewriteOwed(ctx context.Context, user string, owed bool) error
}

// MaxBatch is the most writes the PDS accepts in one applyWrites call.
const MaxBatch = 200

// PDS is the repo side as the engine needs it: every operation a backend
// must provide. Implementations authenticate as the repo's own user and
// classify their errors: model.TransportError for what to retry later,
// model.InactiveError when the account is deactivated, taken down or gone,
// model.PermanentError for what no retry fixes.
type PDS interface {
	RepoReader
	// ApplyWrites applies the writes atomically: all or none.
	ApplyWrites(ctx context.Context, did string, writes []model.Write) error
	// CreateRecord creates a record at rkey; it fails if the key is taken.
	CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error
	// DeleteRecord deletes a record, only if its CID is still swapCID when
	// that is set; deleting a missing record succeeds.
	DeleteRecord(ctx context.Context, did, rkey, swapCID string) error
	// ForgetSession drops the cached session of did (after a purge).
	ForgetSession(ctx context.Context, did string) error
}

// RepoReader is every read of the repo side; all of them are public on
// the PDS (no session).
type RepoReader interface {
	// GetRecord returns the record at rkey, nil when there is none.
	GetRecord(ctx context.Context, did, rkey string) (*model.Record, error)
	// ListRecords returns every mood record of the repo.
	ListRecords(ctx context.Context, did string) ([]model.Record, error)
	// ExportRecords returns every mood record of the repo from one export.
	ExportRecords(ctx context.Context, did string) ([]model.Record, error)
	// RepoStatus is the PDS's word on the repo: active or why not.
	RepoStatus(ctx context.Context, did string) (model.RepoStatus, error)
}

// Breaker bounds the soft deletes whole-user passes decide on evidence
// other than seen delete ops, across every user (DecideBreaker).
type Breaker interface {
	// Take asks for n soft deletes: false when the breaker is tripped (or
	// trips now), and they are to be held.
	Take(ctx context.Context, n int) (bool, error)
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
	// Breaker, when set, bounds the soft deletes of missing records across
	// every user.
	Breaker Breaker

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
