package reconcile

import (
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// This file holds the decision tables of DESIGN.md as pure functions.
// Nothing here does I/O; engine.go carries decisions out.

// PublishAction is what the publisher does to the PDS for one mood.
type PublishAction int

const (
	// PublishNothing: the PDS already matches, or the PDS-side state is the
	// consumer's business (a live mood whose record vanished was deleted on
	// the PDS on purpose).
	PublishNothing PublishAction = iota
	// PublishCreate: write the record at the mood's deterministic rkey, then
	// set atproto.rkey.
	PublishCreate
	// PublishDelete: delete the record at atproto.rkey, then unset atproto.
	PublishDelete
)

func (a PublishAction) String() string {
	switch a {
	case PublishCreate:
		return "create"
	case PublishDelete:
		return "delete"
	default:
		return "nothing"
	}
}

// DecidePublish is the publisher rule table (Mongo truth → PDS). m is nil
// when the document is gone.
func DecidePublish(m *model.Mood) PublishAction {
	switch {
	case m == nil, m.Malformed != "":
		return PublishNothing
	case !m.Deleted && m.Rkey == "":
		return PublishCreate
	case m.Deleted && m.Rkey != "":
		return PublishDelete
	default:
		return PublishNothing
	}
}

// Upsert is a create or update op of a mood record seen on the firehose or
// in a repo export. Value is nil and Invalid says why when the record could
// not be decoded or fails the lexicon.
type Upsert struct {
	Rkey    string
	Value   *model.RecordValue
	Invalid string
}

// DecideUpsert classifies a record create/update. owner is the Auth0 sub of
// the repo's user; mood is the Mongo document the record's ref names (nil
// when there is none).
func DecideUpsert(owner string, op Upsert, mood *model.Mood) Class {
	if op.Value == nil || op.Invalid != "" {
		return ClassInvalid
	}
	if mood == nil {
		// No document: the record may be the only copy of the mood left.
		return ClassLost
	}
	if mood.Malformed != "" {
		return ClassMalformed
	}
	if mood.User != owner {
		return ClassSpoof
	}
	switch {
	case mood.Deleted:
		return ClassOrphan
	case mood.Rkey == op.Rkey:
		return ClassSynced
	case mood.Rkey == "":
		return ClassUnlinked
	default:
		return ClassDuplicate
	}
}

// DecideDelete classifies a record delete. mood is the owner's mood whose
// atproto.rkey equals the deleted rkey, nil when none does.
func DecideDelete(mood *model.Mood) Class {
	switch {
	case mood == nil:
		return ClassIgnored
	case mood.Malformed != "":
		return ClassMalformed
	case mood.Deleted:
		return ClassCleared
	default:
		return ClassDeletedOnPDS
	}
}

// Cause says why a whole user is reconciled. It decides what a live mood
// whose record is missing from the repo means (DecideMissing).
type Cause string

const (
	// CauseIntent: a reconcile intent from the app or an operator.
	CauseIntent Cause = "intent"
	// CauseFirstStart: the first start on a firehose (no stored cursor).
	CauseFirstStart Cause = "first-start"
	// CauseGap: a gap in one repo's stream (#sync, a broken chain, tooBig,
	// an unverifiable commit, a user whose earlier events were dropped).
	CauseGap Cause = "gap"
	// CauseOutdatedCursor: the firehose no longer has our cursor.
	CauseOutdatedCursor Cause = "outdated-cursor"
	// CausePeriodic: the periodic anti-entropy pass. It exports no repo
	// whose rev and moods are as the last clean pass saw them.
	CausePeriodic Cause = "periodic"
	// CauseFull: a periodic pass that compares every user in full,
	// changed or not.
	CauseFull Cause = "full"
	// CauseReactivated: the account is active again after being inactive.
	CauseReactivated Cause = "reactivated"
	// CauseOperator: audit, cleanup and backfill.
	CauseOperator Cause = "operator"
	// CauseFutureCursor: the firehose says our cursor is in its future: the
	// PDS was restored from a backup and lost what was written since.
	CauseFutureCursor Cause = "future-cursor"
	// CauseDIDChanged: the user's users row names a new DID.
	CauseDIDChanged Cause = "did-changed"
)

// Causes lists every cause.
var Causes = []Cause{
	CauseIntent, CauseFirstStart, CauseGap, CauseOutdatedCursor, CausePeriodic,
	CauseFull, CauseReactivated, CauseOperator, CauseFutureCursor, CauseDIDChanged,
}

// ParseCause reads the optional cause of a reconcile intent; anything it
// does not know is an intent's own.
func ParseCause(s string) Cause {
	for _, c := range Causes {
		if string(c) == s {
			return c
		}
	}
	return CauseIntent
}

// MissingAction is what a whole-user pass does with a live mood whose
// stored rkey names no record in the repo.
type MissingAction int

const (
	// MissingSoftDelete: the record was deleted on the PDS (by the user):
	// soft-delete the mood, within the mass-delete guard.
	MissingSoftDelete MissingAction = iota
	// MissingRewrite: the repo lost the record without anyone deleting it
	// (restored from a backup, or a new repo): Mongo is truth, so unset the
	// rkey and write the record again.
	MissingRewrite
)

func (a MissingAction) String() string {
	if a == MissingRewrite {
		return "rewrite"
	}
	return "soft-delete"
}

// DecideMissing is the cause table of DESIGN.md: only a repo known to have
// lost records on its own makes a missing record a write; every other
// cause takes it as deleted on the PDS.
func DecideMissing(c Cause) MissingAction {
	switch c {
	case CauseFutureCursor, CauseDIDChanged:
		return MissingRewrite
	default:
		return MissingSoftDelete
	}
}

// LostAction is what a whole-user pass does with the record of a lost
// mood (a record whose ref names no document in Mongo).
type LostAction int

const (
	// LostKeep: keep the record and report it; it may be the only copy of
	// the mood left (Mongo restored from a backup).
	LostKeep LostAction = iota
	// LostRestore: insert the mood back into Mongo from the record
	// (moodsync restore).
	LostRestore
	// LostDelete: delete the record (the user was erased by a purge, or an
	// operator said so: cleanup --delete-lost).
	LostDelete
)

func (a LostAction) String() string {
	switch a {
	case LostRestore:
		return "restore"
	case LostDelete:
		return "delete"
	}
	return "keep"
}

// DecideLost is the lost-mood rule of DESIGN.md's recovery section: the
// record of a lost mood is kept unless the user was erased by a purge
// (then it is deleted, and never restored); otherwise an operator's ask
// (restore, or cleanup --delete-lost) decides.
func DecideLost(erased bool, asked LostAction) LostAction {
	if erased {
		return LostDelete
	}
	return asked
}

// StrongestCause is the cause one pass answering several reconcile intents
// of a user runs under: a cause that makes a missing record a rewrite wins
// (a lost record must never be taken as a user's delete because another
// intent was answered in the same pass), and any cause wins over the
// periodic pass, which may skip an unchanged repo.
// Causes are read as a reconcile intent carries them (ParseCause).
func StrongestCause(causes []string) Cause {
	best := ParseCause(causes[0])
	for _, s := range causes[1:] {
		c := ParseCause(s)
		if DecideMissing(c) == MissingRewrite || best == CausePeriodic {
			best = c
		}
	}
	return best
}

// DecideMissingRecord is what a whole-user pass does with one live mood
// whose stored rkey names no record in the repo. A repo known to have lost
// records — by the pass's cause (DecideMissing), or because the user owes a
// rewrite since such a cause (owed) — gets the record written again. So
// does a repo whose newest commit (repoRev, a TID) is older than the mood
// itself: no commit after the record was written exists, so nobody deleted
// it; the repo went back in time (a PDS restored from a backup, whatever
// the firehose said). Otherwise the record was deleted on the PDS.
func DecideMissingRecord(cause Cause, owed bool, repoRev string, moodWhen time.Time) MissingAction {
	if owed || DecideMissing(cause) == MissingRewrite {
		return MissingRewrite
	}
	if rev, err := syntax.ParseTID(repoRev); err == nil && !moodWhen.IsZero() && rev.Time().Before(moodWhen) {
		return MissingRewrite
	}
	return MissingSoftDelete
}

// DefaultMassDeleteLimit is how many of one user's moods a whole-user pass
// soft-deletes at most on evidence other than seen delete ops.
const DefaultMassDeleteLimit = 10

// MassDeleteGuard reports whether n soft deletes of one user in one pass
// are more than limit allows; allow (an operator's --allow-mass-delete)
// lifts the bound. A tripped guard soft-deletes none of them.
func MassDeleteGuard(n, limit int, allow bool) (tripped bool) {
	return !allow && n > limit
}

// DefaultMassDeleteBreaker is how many soft deletes on evidence other than
// seen delete ops whole-user passes make at most in BreakerWindow, across
// every user.
const DefaultMassDeleteBreaker = 100

// BreakerWindow is the window of the mass-delete breaker.
const BreakerWindow = time.Hour

// DecideBreaker is the mass-delete breaker across all users, as a pure
// function of its state: n more soft deletes are allowed while the window
// (renewed once it is older than window) stays within limit. The first ask
// past it trips the breaker, and a tripped breaker holds every further one
// (counted in Held) until an operator releases it: a PDS restore nobody
// noticed must not soft-delete a few moods of every user. limit 0: no
// bound.
func DecideBreaker(st model.BreakerState, n, limit int, window time.Duration, now time.Time) (ok bool, next model.BreakerState) {
	next = st
	if limit <= 0 || n <= 0 {
		return true, next
	}
	if next.Tripped {
		next.Held += n
		return false, next
	}
	if next.WindowStart.IsZero() || now.Sub(next.WindowStart) >= window {
		next.WindowStart, next.Count = now, 0
	}
	if next.Count+n > limit {
		next.Tripped, next.TrippedAt, next.Held = true, now, n
		return false, next
	}
	next.Count += n
	return true, next
}
