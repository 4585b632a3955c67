package model

import (
	"strings"
	"testing"
	"time"
)

const moodHex = "507f1f77bcf86cd799439011"

func rec(ref string) *RecordValue {
	return &RecordValue{Type: Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: ref, MongoID: ref}
}

func TestNormalizeID(t *testing.T) {
	for in, want := range map[string]string{
		moodHex:                  moodHex,
		strings.ToUpper(moodHex): moodHex,
		"ABC":                    "ABC", // not an id: left for ValidID to refuse
		"":                       "",
	} {
		if got := NormalizeID(in); got != want {
			t.Errorf("NormalizeID(%q) = %q, want %q", in, got, want)
		}
	}
	if ValidID(strings.ToUpper(moodHex)) {
		t.Error("ValidID accepts upper case: callers must normalise first")
	}
}

// TestRkeyDeterministic: the same mood always gets the same key, its
// timestamp is the mood's when, and probes move to another clock id.
func TestRkeyDeterministic(t *testing.T) {
	m := &Mood{ID: moodHex, When: time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)}
	a, b := Rkey(m, 0), Rkey(m, 0)
	if a != b || len(a) != 13 {
		t.Fatalf("Rkey not deterministic or not a TID: %q %q", a, b)
	}
	if Rkey(m, 1) == a {
		t.Fatal("the next probe has the same key")
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
		{"exactly 5000 characters", &RecordValue{Mood: strings.Repeat("é", MaxLen), When: "w", Ref: moodHex}, false},
		{"missing record", nil, true},
		{"no ref", rec(""), true},
		{"bad hex ref", rec("zz7f1f77bcf86cd799439011"), true},
		{"short ref", rec("507f1f77"), true},
		{"ref too long", rec(moodHex + "00"), true},
		{"upper-case ref is the same id", rec(strings.ToUpper(moodHex)), false},
		{"empty mood", &RecordValue{When: "w", Ref: moodHex}, true},
		{"5001 characters", &RecordValue{Mood: strings.Repeat("a", MaxLen+1), When: "w", Ref: moodHex}, true},
		{"no when", &RecordValue{Mood: "x", Ref: moodHex}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			why := ValidateRecord(c.v)
			if (why != "") != c.invalid {
				t.Fatalf("ValidateRecord = %q, want invalid=%v", why, c.invalid)
			}
			if why == "" && c.v.MoodID() != moodHex {
				t.Fatalf("MoodID after validation = %q, want %q", c.v.MoodID(), moodHex)
			}
		})
	}
}
