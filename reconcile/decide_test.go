package reconcile

import (
	"strings"
	"testing"
)

const (
	owner   = "auth0|alice"
	other   = "auth0|bob"
	moodHex = "507f1f77bcf86cd799439011"
)

func rec(ref string) *RecordValue {
	return &RecordValue{Type: Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: ref, MongoID: ref}
}

// TestDecideUpsert has one case per create/update row of DESIGN.md's
// reconcile table, plus the edges of each.
func TestDecideUpsert(t *testing.T) {
	live := func(rkey string) *Mood { return &Mood{ID: moodHex, User: owner, Rkey: rkey} }
	cases := []struct {
		name string
		op   Upsert
		mood *Mood
		want Verdict
	}{
		{"ref to own mood, atproto unset: repair", Upsert{Rkey: "r1", Value: rec(moodHex)}, live(""), VerdictRepair},
		{"same rkey already stored: confirm", Upsert{Rkey: "r1", Value: rec(moodHex)}, live("r1"), VerdictConfirm},
		{"mood points at another live rkey: duplicate", Upsert{Rkey: "r2", Value: rec(moodHex)}, live("r1"), VerdictDuplicate},
		{"ref to another user's mood: spoof", Upsert{Rkey: "r1", Value: rec(moodHex)}, &Mood{ID: moodHex, User: other}, VerdictSpoof},
		{"ref to another user's deleted mood: still spoof", Upsert{Rkey: "r1", Value: rec(moodHex)}, &Mood{ID: moodHex, User: other, Deleted: true}, VerdictSpoof},
		{"ref to soft-deleted mood: orphan", Upsert{Rkey: "r1", Value: rec(moodHex)}, &Mood{ID: moodHex, User: owner, Deleted: true}, VerdictOrphan},
		{"ref to soft-deleted mood still holding the rkey: orphan", Upsert{Rkey: "r1", Value: rec(moodHex)}, &Mood{ID: moodHex, User: owner, Deleted: true, Rkey: "r1"}, VerdictOrphan},
		{"ref to hard-deleted mood: orphan", Upsert{Rkey: "r1", Value: rec(moodHex)}, nil, VerdictOrphan},
		{"undecodable record: invalid", Upsert{Rkey: "r1", Invalid: "not CBOR"}, live(""), VerdictInvalid},
		{"flagged invalid though decoded: invalid", Upsert{Rkey: "r1", Value: rec(moodHex), Invalid: "mood longer than 5000 characters"}, live(""), VerdictInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecideUpsert(owner, c.op, c.mood); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestDecideDelete has one case per delete row of the reconcile table.
func TestDecideDelete(t *testing.T) {
	cases := []struct {
		name string
		mood *Mood
		want Verdict
	}{
		{"rkey matches a live mood: deleted on PDS", &Mood{ID: moodHex, User: owner, Rkey: "r1"}, VerdictPDSDelete},
		{"rkey matches a soft-deleted mood: clear", &Mood{ID: moodHex, User: owner, Rkey: "r1", Deleted: true}, VerdictClear},
		{"no mood holds the rkey: ignore", nil, VerdictIgnore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecideDelete(c.mood); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestValidateRecord covers the "ref missing/malformed, or mood field
// invalid" row.
func TestValidateRecord(t *testing.T) {
	legacy := rec("")
	legacy.MongoID = moodHex
	cases := []struct {
		name    string
		v       *RecordValue
		invalid bool
	}{
		{"both refs", rec(moodHex), false},
		{"legacy mongoId only", legacy, false},
		{"ref wins over mongoId", &RecordValue{Mood: "x", When: "w", Ref: moodHex, MongoID: "junk"}, false},
		{"exactly 5000 characters", &RecordValue{Mood: strings.Repeat("é", MaxMoodLen), When: "w", Ref: moodHex}, false},
		{"missing record", nil, true},
		{"no ref", rec(""), true},
		{"bad hex ref", rec("zz7f1f77bcf86cd799439011"), true},
		{"short ref", rec("507f1f77"), true},
		{"uppercase-length ref too long", rec(moodHex + "00"), true},
		{"empty mood", &RecordValue{When: "w", Ref: moodHex}, true},
		{"5001 characters", &RecordValue{Mood: strings.Repeat("a", MaxMoodLen+1), When: "w", Ref: moodHex}, true},
		{"no when", &RecordValue{Mood: "x", Ref: moodHex}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			why := ValidateRecord(c.v)
			if (why != "") != c.invalid {
				t.Fatalf("ValidateRecord = %q, want invalid=%v", why, c.invalid)
			}
		})
	}
}

// TestDecidePublish has one case per row of the publisher table.
func TestDecidePublish(t *testing.T) {
	cases := []struct {
		name string
		mood *Mood
		want PublishAction
	}{
		{"live, atproto unset: create", &Mood{ID: moodHex}, PublishCreate},
		{"live, rkey set: nothing", &Mood{ID: moodHex, Rkey: "r1"}, PublishNothing},
		{"soft-deleted, rkey set: delete", &Mood{ID: moodHex, Rkey: "r1", Deleted: true}, PublishDelete},
		{"soft-deleted, atproto unset: nothing", &Mood{ID: moodHex, Deleted: true}, PublishNothing},
		{"document gone: nothing", nil, PublishNothing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecidePublish(c.mood); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}
