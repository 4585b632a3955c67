// Package status gathers what moodsync knows of one user, for operators
// (`moodsync status --user`, `GET /v1/users/{sub}`): the users row (never
// the password), the DID binding and the account status as last seen, the
// PDS's own word on the repo, the user's moods by state, drift from a fresh
// compare, the user's pending intents and dead letters, and the last
// firehose event and the last reconcile of the user.
//
// Reading a status changes nothing, by type: the store and the PDS are
// given as a reconcile.Reader and a reconcile.RepoReader, which have no
// writes; the compare is reconcile.Preview, the one whole-user reconcile as
// a dry run; the queues are read through Queues, which cmd wires to
// JetStream (read by direct get, nothing taken from them).
package status

import (
	"context"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Store is the Mongo side a status is read from (*mongostore.Store).
type Store interface {
	reconcile.Reader
	// UsersRow returns what may be shown of a users row, nil without one.
	UsersRow(ctx context.Context, user string) (*model.UsersRow, error)
	// Parked returns the user's parked document (a user in trouble), nil
	// when the user is not parked.
	Parked(ctx context.Context, user string) (*model.Parked, error)
}

// Defaults of Reader's bounds.
const (
	// DefaultScan is how many pending intents (every user's) are read at
	// most to find a user's.
	DefaultScan = 10_000
	// DefaultKeep is how many of a user's pending intents and dead letters
	// are listed (all are counted).
	DefaultKeep = 10
)

// Queues reads what waits for one user in moodsync's queues.
type Queues interface {
	// Pending reads the user's intents not acknowledged yet, oldest first:
	// at most scan intents of every user, keeping at most keep of theirs.
	Pending(ctx context.Context, user string, scan, keep int) (Pending, error)
	// DeadLetters reads the user's dead letters, oldest first.
	DeadLetters(ctx context.Context, user string) ([]Letter, error)
}

// Pending is what the intents stream holds for one user: intents not
// acknowledged yet, waiting or in flight (the stream is a work queue, so an
// acknowledged intent is gone).
type Pending struct {
	// Count is how many of the intents read name the user.
	Count int `json:"count"`
	// Intents are the first of them, oldest first.
	Intents []PendingIntent `json:"intents"`
	// Waiting is how many intents the stream holds, every user's.
	Waiting uint64 `json:"waiting"`
	// Scanned is how many of them were read; Complete says that was all,
	// else Count is a lower bound.
	Scanned  int  `json:"scanned"`
	Complete bool `json:"complete"`
}

// PendingIntent is one intent waiting in the stream.
type PendingIntent struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	Op      string    `json:"op"`
	MongoID string    `json:"mongoId,omitempty"`
	Cause   string    `json:"cause,omitempty"`
}

// Letter is one dead letter: an intent that could not be applied, and why.
type Letter struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Subject     string    `json:"subject"` // the intent subject it arrived on
	DeadSubject string    `json:"deadSubject"`
	Reason      string    `json:"reason"`
	Op          string    `json:"op"`
	User        string    `json:"user"`
	MongoID     string    `json:"mongoId"`
	DID         string    `json:"did,omitempty"`
	Deliveries  int       `json:"deliveries"`
	Truncated   bool      `json:"truncated"`
	// AskedAt is when the intent was first published (a replay keeps it).
	AskedAt time.Time `json:"askedAt,omitzero"`

	// Data is the original payload.
	Data []byte `json:"-"`
}

// Reader reads the status of users.
type Reader struct {
	store           Store
	pds             reconcile.RepoReader
	massDeleteLimit int

	// Queues reads the intents and dead letters; nil when NATS could not
	// be reached, and then NATSErr says why.
	Queues  Queues
	NATSErr error
	// Scan and Keep bound the reading of the queues (DefaultScan,
	// DefaultKeep when zero).
	Scan, Keep int
}

// NewReader returns a reader over store and pds. massDeleteLimit is the
// daemon's, so the plan shows what its reconcile would hold back.
func NewReader(store Store, pds reconcile.RepoReader, massDeleteLimit int) *Reader {
	return &Reader{store: store, pds: pds, massDeleteLimit: massDeleteLimit}
}

// User is the status of one user. A section that could not be read says
// why in its Error, and the others are shown all the same.
type User struct {
	User string `json:"user"`
	// UsersRow is the app's users row; nil when there is none.
	UsersRow *model.UsersRow `json:"usersRow"`
	// UsersRowError says why the users row could not be read.
	UsersRowError string `json:"usersRowError,omitempty"`
	// Binding is moodsync's DID binding and account status; nil when the
	// user was never bound (no reconcile or write yet).
	Binding *Binding `json:"binding"`
	// PDS is the PDS's word on the repo of the user's DID (the users row's,
	// else the bound one); nil when there is no DID.
	PDS   *PDSStatus `json:"pds"`
	Moods Moods      `json:"moods"`
	Drift Drift      `json:"drift"`
	// Trouble says the user is in trouble: their intents kept failing
	// transiently and wait, parked, for a retry with a backoff of their
	// own; nil when they are not.
	Trouble *Trouble `json:"trouble"`
	// Intents are the user's intents waiting in MOODSYNC_INTENTS.
	Intents Intents `json:"intents"`
	// DeadLetters are the user's dead letters in MOODSYNC_DEAD.
	DeadLetters DeadLetters `json:"deadLetters"`
	// LastEvent is the last firehose event of the user's DID the consumer
	// recorded (commits at most once a minute); nil when none was.
	LastEvent *model.EventMark `json:"lastEvent"`
	// LastReconcile is the last reconcile of the user that could change
	// things; nil when there was none.
	LastReconcile *model.ReconcileMark `json:"lastReconcile"`
}

// Binding is the DID binding of a user and the account status as last
// seen (on the firehose, or in the PDS's answers to moodsync).
type Binding struct {
	DID string `json:"did"`
	// Status is "" when none was ever seen (active unless the PDS says
	// otherwise).
	Status   string    `json:"status,omitempty"`
	StatusAt time.Time `json:"statusAt,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// PDSStatus is com.atproto.sync.getRepoStatus of the user's DID.
type PDSStatus struct {
	DID    string `json:"did"`
	Active bool   `json:"active"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Moods counts the user's moods in Mongo by state. Synced means Mongo holds
// an rkey; whether the record is there is the compare's to say (Drift).
type Moods struct {
	Total         int `json:"total"`
	LiveSynced    int `json:"liveSynced"`
	LiveNotSynced int `json:"liveNotSynced"`
	// SoftDeletedWithRkey are soft-deleted moods whose record is still
	// linked (the publisher deletes it next).
	SoftDeletedWithRkey    int    `json:"softDeletedWithRkey"`
	SoftDeletedWithoutRkey int    `json:"softDeletedWithoutRkey"`
	Error                  string `json:"error,omitempty"`
}

// Drift is what a fresh compare found, or why there is none.
type Drift struct {
	// Error says why the user could not be compared (no account, an
	// inactive repo, the PDS unreachable); Summary is nil then.
	Error string `json:"error,omitempty"`
	*reconcile.Summary
}

// Trouble is a parked user's spell of trouble (model.Parked), or why it
// could not be read.
type Trouble struct {
	Since     time.Time `json:"since,omitzero"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	Failures  int       `json:"failures"`
	LastError string    `json:"lastError,omitempty"`
	// Owed is how many intents wait parked (mood ids, reconcile causes, a
	// purge).
	Owed  int    `json:"owed"`
	Error string `json:"error,omitempty"`
}

// Intents are the user's pending intents, or why they could not be read.
type Intents struct {
	Error string `json:"error,omitempty"`
	*Pending
}

// DeadLetters are the user's dead letters, or why they could not be read.
type DeadLetters struct {
	Error string `json:"error,omitempty"`
	Count int    `json:"count"`
	// Letters are the oldest of them.
	Letters []Letter `json:"letters"`
}

// Known reports whether moodsync knows anything of the user at all.
func (u *User) Known() bool {
	return u.UsersRow != nil || u.Binding != nil || u.Moods.Total > 0 || (u.Trouble != nil && u.Trouble.Error == "") ||
		(u.Intents.Pending != nil && u.Intents.Count > 0) || u.DeadLetters.Count > 0
}

// Read gathers the status of user. It fails only when ctx ends; what could
// not be read is said in its section.
func (r *Reader) Read(ctx context.Context, user string) (*User, error) {
	u := &User{User: user}
	var err error
	if u.UsersRow, err = r.store.UsersRow(ctx, user); err != nil {
		u.UsersRowError = err.Error()
	}
	b, err := r.store.Binding(ctx, user)
	switch {
	case err != nil:
		u.Binding = &Binding{Error: err.Error()}
	case b != nil:
		u.Binding = &Binding{DID: b.DID, Status: b.Status, StatusAt: b.StatusAt}
		u.LastEvent, u.LastReconcile = b.LastEvent, b.LastReconcile
	}
	u.PDS = r.repoStatus(ctx, u)
	u.Moods = r.moods(ctx, user)
	u.Drift = r.drift(ctx, user)
	u.Trouble = r.trouble(ctx, user)
	u.Intents = r.intents(ctx, user)
	u.DeadLetters = r.deadLetters(ctx, user)
	return u, ctx.Err()
}

// did is the DID the user's status is about: the users row's, else the
// bound one.
func (u *User) did() string {
	if u.UsersRow != nil && u.UsersRow.DID != "" {
		return u.UsersRow.DID
	}
	if u.Binding != nil {
		return u.Binding.DID
	}
	return ""
}

func (r *Reader) repoStatus(ctx context.Context, u *User) *PDSStatus {
	did := u.did()
	if did == "" {
		return nil
	}
	out := &PDSStatus{DID: did}
	st, err := r.pds.RepoStatus(ctx, did)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Active, out.Status = st.Active, st.Status
	return out
}

func (r *Reader) moods(ctx context.Context, user string) Moods {
	moods, err := r.store.UserMoods(ctx, user)
	if err != nil {
		return Moods{Error: err.Error()}
	}
	return CountMoods(moods)
}

// CountMoods counts moods by state.
func CountMoods(moods []*model.Mood) Moods {
	var c Moods
	for _, m := range moods {
		c.Total++
		switch {
		case !m.Deleted && m.Rkey != "":
			c.LiveSynced++
		case !m.Deleted:
			c.LiveNotSynced++
		case m.Rkey != "":
			c.SoftDeletedWithRkey++
		default:
			c.SoftDeletedWithoutRkey++
		}
	}
	return c
}

func (r *Reader) drift(ctx context.Context, user string) Drift {
	out, err := reconcile.Preview(ctx, r.store, r.pds, user, reconcile.CauseOperator, r.massDeleteLimit)
	if err != nil {
		return Drift{Error: err.Error()}
	}
	return Drift{Summary: reconcile.Summarize(out.Report, out.Plan)}
}

func (r *Reader) bounds() (scan, keep int) {
	scan, keep = r.Scan, r.Keep
	if scan <= 0 {
		scan = DefaultScan
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	return scan, keep
}

func (r *Reader) natsErr() string {
	if r.NATSErr != nil {
		return "NATS: " + r.NATSErr.Error()
	}
	return "NATS: not connected"
}

func (r *Reader) trouble(ctx context.Context, user string) *Trouble {
	p, err := r.store.Parked(ctx, user)
	switch {
	case err != nil:
		return &Trouble{Error: err.Error()}
	case p == nil:
		return nil
	}
	return &Trouble{Since: p.Since, NextTry: p.NextTry, Failures: p.Failures, LastError: p.LastError, Owed: p.Owed()}
}

func (r *Reader) intents(ctx context.Context, user string) Intents {
	if r.Queues == nil {
		return Intents{Error: r.natsErr()}
	}
	scan, keep := r.bounds()
	p, err := r.Queues.Pending(ctx, user, scan, keep)
	if err != nil {
		return Intents{Error: err.Error()}
	}
	return Intents{Pending: &p}
}

func (r *Reader) deadLetters(ctx context.Context, user string) DeadLetters {
	out := DeadLetters{Letters: []Letter{}}
	if r.Queues == nil {
		out.Error = r.natsErr()
		return out
	}
	letters, err := r.Queues.DeadLetters(ctx, user)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	_, keep := r.bounds()
	out.Count = len(letters)
	out.Letters = append(out.Letters, letters[:min(keep, len(letters))]...)
	return out
}
