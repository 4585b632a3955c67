package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

var cmpWhen = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

// cmpMood is mood n of the owner (ids differ in their last digits).
func cmpMood(n int, rkey string, deleted bool) *model.Mood {
	return &model.Mood{ID: fmt.Sprintf("507f1f77bcf86cd7994390%02d", n), User: owner, Text: "sunny", When: cmpWhen, Rkey: rkey, Deleted: deleted}
}

// cmpRec is a record at rkey of mood n, as moodsync writes it.
func cmpRec(rkey string, n int) model.Record {
	m := cmpMood(n, "", false)
	return model.Record{Rkey: rkey, Value: model.NewRecordValue(m)}
}

func id(n int) string { return cmpMood(n, "", false).ID }

// TestCompare has one case per class of the whole-user compare, plus the
// edges of each, and checks the fixes cleanup and backfill plan for it.
func TestCompare(t *testing.T) {
	legacy := cmpRec("3kaaaaaaaaa11", 1)
	legacy.Value.Ref = "" // the design note's lexicon: mongoId only
	noMillis := cmpRec("3kaaaaaaaaa11", 1)
	noMillis.Value.When = "2025-10-14T19:30:00Z"
	edited := cmpRec("3kaaaaaaaaa11", 1)
	edited.Value.Mood = "rainy"
	badRef := cmpRec("3kaaaaaaaaa12", 1)
	badRef.Value.Ref, badRef.Value.MongoID = "not-an-id", ""
	foreign := &model.Mood{ID: id(9), User: other, Text: "x", When: cmpWhen}

	cases := []struct {
		name    string
		moods   []*model.Mood
		others  map[string]*model.Mood
		records []model.Record
		want    []string // "class mood rkey keep", mood as its number
		cleanup []string // "kind mood rkey"
		backfil []string
	}{
		{name: "synced", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)}, records: []model.Record{cmpRec("3kaaaaaaaaa11", 1)}},
		{name: "legacy mongoId-only record synced", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)}, records: []model.Record{legacy}},
		{name: "when without milliseconds is the same instant", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)}, records: []model.Record{noMillis}},
		{name: "soft-deleted without record is fine", moods: []*model.Mood{cmpMood(1, "", true)}},
		{
			name: "not synced", moods: []*model.Mood{cmpMood(1, "", false)},
			want:    []string{"not-synced 1"},
			backfil: []string{"create 1 " + model.Rkey(cmpMood(1, "", false), 0)},
		},
		{
			name: "unlinked: record exists, atproto unset (legacy record)", moods: []*model.Mood{cmpMood(1, "", false)}, records: []model.Record{legacy},
			want:    []string{"unlinked 1 3kaaaaaaaaa11"},
			cleanup: []string{"link 1 3kaaaaaaaaa11"},
			backfil: []string{"link 1 3kaaaaaaaaa11"},
		},
		{
			name: "unlinked with two records: oldest linked, the other a duplicate", moods: []*model.Mood{cmpMood(1, "", false)},
			records: []model.Record{cmpRec("3kbbbbbbbbb22", 1), cmpRec("3kaaaaaaaaa11", 1)},
			want:    []string{"unlinked 1 3kaaaaaaaaa11", "duplicate 1 3kbbbbbbbbb22 3kaaaaaaaaa11"},
			cleanup: []string{"link 1 3kaaaaaaaaa11", "delete-duplicate 1 3kbbbbbbbbb22"},
			backfil: []string{"link 1 3kaaaaaaaaa11"},
		},
		{
			name: "orphan: mood soft-deleted", moods: []*model.Mood{cmpMood(1, "", true)}, records: []model.Record{cmpRec("3kaaaaaaaaa11", 1)},
			want:    []string{"orphan 1 3kaaaaaaaaa11"},
			cleanup: []string{"delete-orphan 1 3kaaaaaaaaa11"},
		},
		{
			name: "orphan: soft-deleted mood still points at it (delete half-done)", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", true)},
			records: []model.Record{cmpRec("3kaaaaaaaaa11", 1)},
			want:    []string{"orphan 1 3kaaaaaaaaa11"},
			cleanup: []string{"delete-orphan 1 3kaaaaaaaaa11", "clear 1 3kaaaaaaaaa11"},
		},
		{
			// A record whose document is gone may be the only copy left
			// (Mongo restored from a backup): kept, never cleaned up.
			name: "lost: mood missing", records: []model.Record{cmpRec("3kaaaaaaaaa11", 1)},
			want: []string{"lost 1 3kaaaaaaaaa11"},
		},
		{
			name: "duplicate of a synced mood", moods: []*model.Mood{cmpMood(1, "3kbbbbbbbbb22", false)},
			records: []model.Record{cmpRec("3kaaaaaaaaa11", 1), cmpRec("3kbbbbbbbbb22", 1)},
			want:    []string{"duplicate 1 3kaaaaaaaaa11 3kbbbbbbbbb22"},
			cleanup: []string{"delete-duplicate 1 3kaaaaaaaaa11"},
		},
		{
			name: "stale rkey of a live mood: deleted on the PDS", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)},
			want:    []string{"stale-rkey 1 3kaaaaaaaaa11"},
			cleanup: []string{"soft-delete 1 3kaaaaaaaaa11"},
		},
		{
			name: "stale rkey of a soft-deleted mood: clear", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", true)},
			want:    []string{"stale-rkey 1 3kaaaaaaaaa11"},
			cleanup: []string{"clear 1 3kaaaaaaaaa11"},
		},
		{
			name: "stale rkey with other records of the mood: oldest adopted, rest duplicates", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)},
			records: []model.Record{cmpRec("3kccccccccc33", 1), cmpRec("3kbbbbbbbbb22", 1)},
			want:    []string{"stale-rkey 1 3kaaaaaaaaa11 3kbbbbbbbbb22", "duplicate 1 3kccccccccc33 3kbbbbbbbbb22"},
			cleanup: []string{"adopt 1 3kbbbbbbbbb22", "delete-duplicate 1 3kccccccccc33"},
		},
		{
			name: "stale rkey holding another mood's record: reported, no fix", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false), cmpMood(2, "3kaaaaaaaaa11", false)},
			records: []model.Record{cmpRec("3kaaaaaaaaa11", 2)},
			want:    []string{"stale-rkey 1 3kaaaaaaaaa11"},
		},
		{
			name: "spoof: ref names another user's mood", others: map[string]*model.Mood{id(9): foreign},
			records: []model.Record{cmpRec("3kaaaaaaaaa11", 9)},
			want:    []string{"spoof 9 3kaaaaaaaaa11"},
		},
		{
			name: "invalid: undecodable, bad ref", moods: []*model.Mood{cmpMood(1, "", false)},
			records: []model.Record{{Rkey: "3kaaaaaaaaa11", Invalid: "record is not CBOR-decodable"}, badRef},
			want:    []string{"not-synced 1", "invalid - 3kaaaaaaaaa11", "invalid - 3kaaaaaaaaa12"},
			backfil: []string{"create 1 " + model.Rkey(cmpMood(1, "", false), 0)},
		},
		{
			name: "text mismatch: reported, no fix", moods: []*model.Mood{cmpMood(1, "3kaaaaaaaaa11", false)}, records: []model.Record{edited},
			want: []string{"text-mismatch 1 3kaaaaaaaaa11"},
		},
	}
	num := func(moodID string) string {
		if moodID == "" {
			return "-"
		}
		return strings.TrimLeft(moodID[22:], "0")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Compare(model.Account{User: owner, DID: "did:plc:alice"}, c.moods, c.others, c.records)
			var got []string
			for _, f := range r.Findings {
				got = append(got, strings.TrimSpace(strings.Join([]string{string(f.Class), num(f.MoodID), f.Rkey, f.Keep}, " ")))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("findings %q, want %q", got, c.want)
			}
			plan := func(fixes []Fix) []string {
				var out []string
				for _, f := range fixes {
					out = append(out, strings.Join([]string{string(f.Kind), num(f.MoodID), f.Rkey}, " "))
				}
				return out
			}
			cleanup := PlanFixes(r, Policy{Scope: ScopeCleanup, MassDeleteLimit: DefaultMassDeleteLimit}).Fixes
			backfill := PlanFixes(r, Policy{Scope: ScopeBackfill, MassDeleteLimit: DefaultMassDeleteLimit}).Fixes
			if got := plan(cleanup); !slices.Equal(got, c.cleanup) {
				t.Errorf("cleanup plan %q, want %q", got, c.cleanup)
			}
			if got := plan(backfill); !slices.Equal(got, c.backfil) {
				t.Errorf("backfill plan %q, want %q", got, c.backfil)
			}
			for _, f := range append(cleanup, backfill...) {
				if f.Kind != FixSoftDelete && f.Kind != FixClear && f.Value == nil {
					t.Errorf("%s fix of %s carries no record", f.Kind, f.Rkey)
				}
			}
			if n := r.ATProto.Matched + r.ATProto.Orphaned + r.ATProto.Lost + r.ATProto.Duplicate + r.ATProto.Spoofed + r.ATProto.Invalid; n != r.ATProto.Records {
				t.Errorf("record classes add up to %d of %d records: %+v", n, r.ATProto.Records, r.ATProto)
			}
			if n := r.Mongo.Synced + r.Mongo.NotSynced + r.Mongo.Unlinked + r.Mongo.StaleRkey; n != r.Mongo.Live {
				t.Errorf("mood classes add up to %d of %d live moods: %+v", n, r.Mongo.Live, r.Mongo)
			}
		})
	}
}

// TestCompareCounts checks the counts and drift of a user with some of
// everything.
func TestCompareCounts(t *testing.T) {
	moods := []*model.Mood{
		cmpMood(1, "3kaaaaaaaaa11", false), // synced
		cmpMood(2, "", false),              // not synced
		cmpMood(3, "", true),               // soft-deleted
		cmpMood(4, "3kaaaaaaaaa44", false), // stale
		cmpMood(5, "", true),               // orphaned record
	}
	records := []model.Record{cmpRec("3kaaaaaaaaa11", 1), cmpRec("3kaaaaaaaaa55", 5), cmpRec("3kaaaaaaaaa66", 9), {Rkey: "3kaaaaaaaaa77", Invalid: "x"}}
	r := Compare(model.Account{User: owner}, moods, map[string]*model.Mood{id(9): {ID: id(9), User: other}}, records)
	wantMongo := MongoCounts{Live: 3, Synced: 1, NotSynced: 1, StaleRkey: 1, SoftDeleted: 2}
	wantATP := ATProtoCounts{Records: 4, Matched: 1, Orphaned: 1, Spoofed: 1, Invalid: 1}
	if r.Mongo != wantMongo || r.ATProto != wantATP {
		t.Fatalf("counts %+v %+v, want %+v %+v", r.Mongo, r.ATProto, wantMongo, wantATP)
	}
	if r.Drift() != 3 {
		t.Fatalf("drift %d, want 3 (not synced, stale, orphan)", r.Drift())
	}
	if got := PlanFixes(r, Policy{MassDeleteLimit: DefaultMassDeleteLimit}).Fixes; len(got) != 3 || got[len(got)-1].Kind != FixCreate {
		t.Fatalf("repair plan %+v: want orphan delete, soft-delete, then the create", got)
	}
}
