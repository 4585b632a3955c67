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
	case m == nil:
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
	case mood.Deleted:
		return VerdictClear
	default:
		return VerdictPDSDelete
	}
}
