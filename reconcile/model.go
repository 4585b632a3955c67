// Package reconcile is moodsync's one decision engine. Every component —
// the intent publisher, the firehose consumer and the operator commands —
// asks it what to do and lets it act; none of them decides on its own.
//
// Decisions are pure functions of (event or intent, Mongo state, repo owner)
// so they can be table-tested; the Engine applies them through two small
// interfaces, Store (MongoDB) and PDS (XRPC), using compare-and-set writes
// so concurrent actors converge instead of undoing each other.
package reconcile

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Collection is the NSID of mood records.
const Collection = "computer.aesthetic.mood"

// MaxMoodLen is the lexicon's maxLength for the mood text.
const MaxMoodLen = 5000

// MaxBatch is the most writes the PDS accepts in one applyWrites call.
const MaxBatch = 200

// Mood is one document of the app's `moods` collection.
type Mood struct {
	ID      string // ObjectID as 24 lowercase hex digits
	User    string // Auth0 sub of the owner
	Text    string
	When    time.Time
	Deleted bool
	Rkey    string // atproto.rkey; empty when `atproto` is unset
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

// ValidMoodID reports whether s is a 24-hex-digit ObjectID.
func ValidMoodID(s string) bool {
	if len(s) != 24 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// URI is the at:// URI of a mood record.
func URI(did, rkey string) string {
	return fmt.Sprintf("at://%s/%s/%s", did, Collection, rkey)
}
