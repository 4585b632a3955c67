// Package model is the mood model every part of moodsync shares: the Mongo
// document, the record on the PDS, its validation and deterministic key, the
// ids, and the error classes that decide between retry and dead letter.
//
// It is a leaf: it imports nothing of moodsync and, of indigo, only the
// dependency-free syntax package, so a Go program that only publishes
// intents (publisher/intent) links neither the engine nor indigo's codecs.
package model

import (
	"fmt"
	"strings"
	"time"
)

// Collection is the NSID of mood records.
const Collection = "computer.aesthetic.mood"

// MaxLen is the lexicon's maxLength for the mood text.
const MaxLen = 5000

// Mood is one document of the app's `moods` collection.
type Mood struct {
	ID      string // ObjectID as 24 lowercase hex digits
	User    string // Auth0 sub of the owner
	Text    string
	When    time.Time
	Deleted bool
	Rkey    string // atproto.rkey; empty when `atproto` is unset
	// Malformed says why the document cannot be used (a field missing or
	// of the wrong type), "" when it can. Only ID, and User when readable,
	// are set then: nothing is decided or written on its behalf, and the
	// records naming it are left alone until the document is fixed.
	Malformed string
}

// Account is the ATProto side of a `users` row.
type Account struct {
	User   string
	DID    string
	Handle string
}

// RecordValue is the body of a computer.aesthetic.mood record. Both
// back-reference names are written; readers use MoodID.
type RecordValue struct {
	Type    string `json:"$type" cborgen:"$type"`
	Mood    string `json:"mood" cborgen:"mood"`
	When    string `json:"when" cborgen:"when"`
	Ref     string `json:"ref,omitempty" cborgen:"ref,omitempty"`
	MongoID string `json:"mongoId,omitempty" cborgen:"mongoId,omitempty"`
}

// MoodID is the back-reference: `ref`, falling back to the design note's
// older `mongoId`.
func (v RecordValue) MoodID() string {
	if v.Ref != "" {
		return v.Ref
	}
	return v.MongoID
}

// Write is one op of an applyWrites batch: a create at Rkey with Value, or
// a delete of Rkey.
type Write struct {
	Delete bool
	Rkey   string
	Value  RecordValue // for creates
}

// Record is a mood record as read from a repo.
type Record struct {
	Rkey  string
	CID   string
	Value RecordValue
	// Invalid says why the record could not be decoded into RecordValue
	// ("" when it could); Value is then empty.
	Invalid string
}

// WhenLayout is how `when` is written: UTC with milliseconds, as JavaScript's
// Date.toISOString does, so the app and moodsync agree byte for byte.
const WhenLayout = "2006-01-02T15:04:05.000Z"

// NewRecordValue is the record moodsync writes for a mood.
func NewRecordValue(m *Mood) RecordValue {
	return RecordValue{
		Type:    Collection,
		Mood:    m.Text,
		When:    m.When.UTC().Format(WhenLayout),
		Ref:     m.ID,
		MongoID: m.ID,
	}
}

// ValidID reports whether s is a 24-hex-digit ObjectID in the canonical
// lower case. Callers normalise first (NormalizeID).
func ValidID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IDTime is when an ObjectID was made (its first four bytes, seconds), the
// time its mood was created; ok is false for an id that is not valid.
func IDTime(id string) (t time.Time, ok bool) {
	if !ValidID(id) {
		return time.Time{}, false
	}
	var secs int64
	if _, err := fmt.Sscanf(id[:8], "%08x", &secs); err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0).UTC(), true
}

// MoodFromRecord is the mood a record of user's repo stands for: the
// document restore inserts for a lost mood. It is nil, and why says so,
// when the record cannot stand for a mood (invalid, or a bad when).
func MoodFromRecord(user, rkey string, v RecordValue) (m *Mood, why string) {
	if why := ValidateRecord(&v); why != "" {
		return nil, why
	}
	when, err := time.Parse(time.RFC3339Nano, v.When)
	if err != nil {
		return nil, fmt.Sprintf("when %q is not a date", v.When)
	}
	return &Mood{ID: v.MoodID(), User: user, Text: v.Mood, When: when.UTC(), Rkey: rkey}, ""
}

// NormalizeID is the canonical form of an ObjectID as text: lower case, as
// Mongo's ObjectID.Hex() writes it. Every entrance (intent, record ref, CLI
// flag) normalises, so an upper-case id means the same mood.
func NormalizeID(s string) string {
	if len(s) != 24 {
		return s
	}
	return strings.ToLower(s)
}

// URI is the at:// URI of a mood record.
func URI(did, rkey string) string {
	return fmt.Sprintf("at://%s/%s/%s", did, Collection, rkey)
}

// Binding is what moodsync remembers of a user's account, in its own
// collection: the DID the user's rkeys belong to, and the account status as
// last seen (on the firehose, or in the PDS's answers). When the users row
// names another DID, the rkeys are of the old repo and are cleared.
type Binding struct {
	User     string    `bson:"_id" json:"user"`
	DID      string    `bson:"did" json:"did"`
	Status   string    `bson:"status,omitempty" json:"status,omitempty"`
	StatusAt time.Time `bson:"statusAt,omitempty" json:"statusAt,omitzero"`
	// LastEvent and LastReconcile are for operators (activity.go).
	LastEvent     *EventMark     `bson:"lastEvent,omitempty" json:"lastEvent,omitempty"`
	LastReconcile *ReconcileMark `bson:"lastReconcile,omitempty" json:"lastReconcile,omitempty"`
	// Clean is the state the last clean whole-user pass saw, if any.
	Clean *CleanPass `bson:"clean,omitempty" json:"clean,omitempty"`
	// Erased is when a purge erased the user (the tombstone): records
	// naming moods created up to then that Mongo no longer has are deleted,
	// never restored.
	Erased time.Time `bson:"erased,omitempty" json:"erased,omitzero"`
	// RewriteOwed says the user's repo lost records without anyone
	// deleting them (a PDS restored from a backup, a new repo): every pass
	// of the user writes missing records again, whatever its cause, until
	// one completes.
	RewriteOwed bool `bson:"rewriteOwed,omitempty" json:"rewriteOwed,omitempty"`
}

// ErasedMood reports whether the purge recorded on the binding erased the
// mood id: a mood created (by its ObjectID's time) up to the purge.
func (b *Binding) ErasedMood(id string) bool {
	return b != nil && ErasedBy(b.Erased, id)
}

// ErasedBy reports whether a purge at erased (zero: none) erased the mood
// id: one created, by its ObjectID's time, up to then.
func ErasedBy(erased time.Time, id string) bool {
	if erased.IsZero() {
		return false
	}
	at, ok := IDTime(id)
	return ok && !at.After(erased)
}

// Inactive reports whether the status parks the user's writes.
func (b *Binding) Inactive() bool {
	return b != nil && InactiveStatus(b.Status)
}

// InactiveStatus reports whether an account status parks writes: every
// status but active (or none recorded).
func InactiveStatus(status string) bool {
	return status != "" && status != StatusActive
}

// RepoStatus is the PDS's own word on a repo (com.atproto.sync.getRepoStatus).
type RepoStatus struct {
	Active bool
	Status string // when inactive: deactivated, takendown, suspended, deleted
	Rev    string
}

// BreakerState is the mass-delete breaker across all users: how many soft
// deletes on evidence other than seen delete ops the current window has
// taken, and whether the breaker tripped (then every further one is held
// until an operator releases it).
type BreakerState struct {
	WindowStart time.Time `bson:"windowStart" json:"windowStart"`
	Count       int       `bson:"count" json:"count"`
	Tripped     bool      `bson:"tripped,omitempty" json:"tripped,omitempty"`
	TrippedAt   time.Time `bson:"trippedAt,omitempty" json:"trippedAt,omitzero"`
	// Held counts the soft deletes held since the breaker tripped.
	Held int `bson:"held,omitempty" json:"held,omitempty"`
}
