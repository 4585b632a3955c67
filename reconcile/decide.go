package reconcile

import "github.com/whistlegraph/moodsync/reconcile/model"

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

// Verdict classifies one firehose op against Mongo.
type Verdict string

const (
	VerdictConfirm   Verdict = "confirm"    // Mongo already points at this record
	VerdictRepair    Verdict = "repair"     // set atproto.rkey to this record
	VerdictDuplicate Verdict = "duplicate"  // mood points at another record: delete this one
	VerdictSpoof     Verdict = "spoof"      // ref names another user's mood: touch nothing
	VerdictOrphan    Verdict = "orphan"     // mood soft- or hard-deleted: delete the record
	VerdictInvalid   Verdict = "invalid"    // ref or fields unusable: skip
	VerdictPDSDelete Verdict = "pds-delete" // record deleted on the PDS: soft-delete the mood
	VerdictClear     Verdict = "clear"      // record of a soft-deleted mood is gone: unset atproto
	VerdictIgnore    Verdict = "ignore"     // nothing of ours
	// VerdictMalformed: the mood's MongoDB document cannot be used (a field
	// missing or of the wrong type): touch nothing until it is fixed.
	VerdictMalformed Verdict = "malformed-mood"
)

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
func DecideUpsert(owner string, op Upsert, mood *model.Mood) Verdict {
	if op.Value == nil || op.Invalid != "" {
		return VerdictInvalid
	}
	if mood == nil {
		return VerdictOrphan
	}
	if mood.Malformed != "" {
		return VerdictMalformed
	}
	if mood.User != owner {
		return VerdictSpoof
	}
	switch {
	case mood.Deleted:
		return VerdictOrphan
	case mood.Rkey == op.Rkey:
		return VerdictConfirm
	case mood.Rkey == "":
		return VerdictRepair
	default:
		return VerdictDuplicate
	}
}

// DecideDelete classifies a record delete. mood is the owner's mood whose
// atproto.rkey equals the deleted rkey, nil when none does.
func DecideDelete(mood *model.Mood) Verdict {
	switch {
	case mood == nil:
		return VerdictIgnore
	case mood.Malformed != "":
		return VerdictMalformed
	case mood.Deleted:
		return VerdictClear
	default:
		return VerdictPDSDelete
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

// DefaultMassDeleteLimit is how many of one user's moods a whole-user pass
// soft-deletes at most on evidence other than seen delete ops.
const DefaultMassDeleteLimit = 10

// MassDeleteGuard reports whether n soft deletes of one user in one pass
// are more than limit allows; allow (an operator's --allow-mass-delete)
// lifts the bound. A tripped guard soft-deletes none of them.
func MassDeleteGuard(n, limit int, allow bool) (tripped bool) {
	return !allow && n > limit
}
