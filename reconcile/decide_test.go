package reconcile

import (
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

const (
	owner   = "auth0|alice"
	other   = "auth0|bob"
	moodHex = "507f1f77bcf86cd799439011"
)

func rec(ref string) *model.RecordValue {
	return &model.RecordValue{Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: ref, MongoID: ref}
}

// TestDecideUpsert has one case per create/update row of DESIGN.md's
// reconcile table, plus the edges of each.
func TestDecideUpsert(t *testing.T) {
	live := func(rkey string) *model.Mood { return &model.Mood{ID: moodHex, User: owner, Rkey: rkey} }
	cases := []struct {
		name string
		op   Upsert
		mood *model.Mood
		want Class
	}{
		{"ref to own mood, atproto unset: repair", Upsert{Rkey: "r1", Value: rec(moodHex)}, live(""), ClassUnlinked},
		{"same rkey already stored: confirm", Upsert{Rkey: "r1", Value: rec(moodHex)}, live("r1"), ClassSynced},
		{"mood points at another live rkey: duplicate", Upsert{Rkey: "r2", Value: rec(moodHex)}, live("r1"), ClassDuplicate},
		{"ref to another user's mood: spoof", Upsert{Rkey: "r1", Value: rec(moodHex)}, &model.Mood{ID: moodHex, User: other}, ClassSpoof},
		{"ref to another user's deleted mood: still spoof", Upsert{Rkey: "r1", Value: rec(moodHex)}, &model.Mood{ID: moodHex, User: other, Deleted: true}, ClassSpoof},
		{"ref to soft-deleted mood: orphan", Upsert{Rkey: "r1", Value: rec(moodHex)}, &model.Mood{ID: moodHex, User: owner, Deleted: true}, ClassOrphan},
		{"ref to soft-deleted mood still holding the rkey: orphan", Upsert{Rkey: "r1", Value: rec(moodHex)}, &model.Mood{ID: moodHex, User: owner, Deleted: true, Rkey: "r1"}, ClassOrphan},
		{"ref to no document: lost (kept: maybe the only copy)", Upsert{Rkey: "r1", Value: rec(moodHex)}, nil, ClassLost},
		{"undecodable record: invalid", Upsert{Rkey: "r1", Invalid: "not CBOR"}, live(""), ClassInvalid},
		{"flagged invalid though decoded: invalid", Upsert{Rkey: "r1", Value: rec(moodHex), Invalid: "mood longer than 5000 characters"}, live(""), ClassInvalid},
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
		mood *model.Mood
		want Class
	}{
		{"rkey matches a live mood: deleted on PDS", &model.Mood{ID: moodHex, User: owner, Rkey: "r1"}, ClassDeletedOnPDS},
		{"rkey matches a soft-deleted mood: clear", &model.Mood{ID: moodHex, User: owner, Rkey: "r1", Deleted: true}, ClassCleared},
		{"no mood holds the rkey: ignore", nil, ClassIgnored},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecideDelete(c.mood); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestDecidePublish has one case per row of the publisher table.
func TestDecidePublish(t *testing.T) {
	cases := []struct {
		name string
		mood *model.Mood
		want PublishAction
	}{
		{"live, atproto unset: create", &model.Mood{ID: moodHex}, PublishCreate},
		{"live, rkey set: nothing", &model.Mood{ID: moodHex, Rkey: "r1"}, PublishNothing},
		{"soft-deleted, rkey set: delete", &model.Mood{ID: moodHex, Rkey: "r1", Deleted: true}, PublishDelete},
		{"soft-deleted, atproto unset: nothing", &model.Mood{ID: moodHex, Deleted: true}, PublishNothing},
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

// TestStrongestCause: one pass answers several reconcile intents of a
// user; a restored PDS's cause wins, and the periodic pass's (which may
// skip reading the repo) never stands in for another.
func TestStrongestCause(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want Cause
	}{
		{[]string{"periodic"}, CausePeriodic},
		{[]string{"periodic", "periodic"}, CausePeriodic},
		{[]string{"periodic", "gap"}, CauseGap},
		{[]string{"gap", "periodic"}, CauseGap},
		{[]string{"periodic", ""}, CauseIntent},
		{[]string{"periodic", "full"}, CauseFull},
		{[]string{"gap", "future-cursor", "periodic"}, CauseFutureCursor},
		{[]string{"periodic", "future-cursor", "gap"}, CauseFutureCursor},
	} {
		if got := StrongestCause(c.in); got != c.want {
			t.Errorf("StrongestCause(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestDecideMissingRecord: a live mood's missing record is written again
// when the repo is known to have lost records (cause, or a rewrite owed)
// or when the repo's newest commit is older than the mood (nobody can have
// deleted a record written after it); otherwise it was deleted on the PDS.
func TestDecideMissingRecord(t *testing.T) {
	when := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	before := syntax.NewTID(when.Add(-time.Hour).UnixMicro(), 0).String()
	after := syntax.NewTID(when.Add(time.Hour).UnixMicro(), 0).String()
	for _, c := range []struct {
		name  string
		cause Cause
		owed  bool
		rev   string
		want  MissingAction
	}{
		{"gap, repo newer than the mood: deleted on the PDS", CauseGap, false, after, MissingSoftDelete},
		{"periodic, rev unknown: deleted on the PDS", CausePeriodic, false, "", MissingSoftDelete},
		{"intent, repo older than the mood: the repo went back in time", CauseIntent, false, before, MissingRewrite},
		{"future cursor: rewrite", CauseFutureCursor, false, after, MissingRewrite},
		{"DID changed: rewrite", CauseDIDChanged, false, after, MissingRewrite},
		{"rewrite owed since an earlier pass, whatever the cause", CauseGap, true, after, MissingRewrite},
		{"a rev that is no TID is no evidence", CauseGap, false, "not-a-tid", MissingSoftDelete},
	} {
		if got := DecideMissingRecord(c.cause, c.owed, c.rev, when); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

// TestDecideLost: a lost mood's record is kept unless the operator asks
// otherwise; a mood a purge erased is deleted whatever is asked, and never
// restored.
func TestDecideLost(t *testing.T) {
	for _, c := range []struct {
		erased bool
		asked  LostAction
		want   LostAction
	}{
		{false, LostKeep, LostKeep},
		{false, LostRestore, LostRestore},
		{false, LostDelete, LostDelete},
		{true, LostKeep, LostDelete},
		{true, LostRestore, LostDelete},
	} {
		if got := DecideLost(c.erased, c.asked); got != c.want {
			t.Errorf("DecideLost(%v, %s) = %s, want %s", c.erased, c.asked, got, c.want)
		}
	}
}

// TestDecideBreaker: soft deletes pass while the hour's window stays
// within the bound; the first ask past it trips the breaker, which then
// holds everything until released; a new window starts once the old one
// is an hour old.
func TestDecideBreaker(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var st model.BreakerState
	ok, st := DecideBreaker(st, 60, 100, time.Hour, t0)
	if !ok || st.Count != 60 {
		t.Fatalf("60 of 100: ok %v, %+v", ok, st)
	}
	ok, st = DecideBreaker(st, 40, 100, time.Hour, t0.Add(time.Minute))
	if !ok || st.Count != 100 {
		t.Fatalf("100 of 100: ok %v, %+v", ok, st)
	}
	ok, st = DecideBreaker(st, 1, 100, time.Hour, t0.Add(2*time.Minute))
	if ok || !st.Tripped || st.Held != 1 {
		t.Fatalf("101st: ok %v, %+v", ok, st)
	}
	ok, st = DecideBreaker(st, 3, 100, time.Hour, t0.Add(2*time.Hour))
	if ok || st.Held != 4 {
		t.Fatalf("tripped holds until released, however late: ok %v, %+v", ok, st)
	}
	released := model.BreakerState{}
	if ok, _ := DecideBreaker(released, 3, 100, time.Hour, t0.Add(2*time.Hour)); !ok {
		t.Fatal("a released breaker holds")
	}
	if ok, next := DecideBreaker(model.BreakerState{WindowStart: t0, Count: 100}, 10, 100, time.Hour, t0.Add(time.Hour)); !ok || next.Count != 10 {
		t.Fatalf("a new window: ok %v, %+v", ok, next)
	}
	if ok, _ := DecideBreaker(model.BreakerState{Tripped: true}, 10, 0, time.Hour, t0); !ok {
		t.Fatal("limit 0 is no bound")
	}
	if ok, _ := DecideBreaker(released, 101, 100, time.Hour, t0); ok {
		t.Fatal("one pass over the bound passed")
	}
}

// TestDecideMissing has one row per cause of the cause table.
func TestDecideMissing(t *testing.T) {
	want := map[Cause]MissingAction{
		CauseIntent: MissingSoftDelete, CauseFirstStart: MissingSoftDelete, CauseGap: MissingSoftDelete,
		CauseOutdatedCursor: MissingSoftDelete, CausePeriodic: MissingSoftDelete, CauseFull: MissingSoftDelete, CauseReactivated: MissingSoftDelete,
		CauseOperator: MissingSoftDelete, CauseFutureCursor: MissingRewrite, CauseDIDChanged: MissingRewrite,
	}
	for _, c := range Causes {
		if got := DecideMissing(c); got != want[c] {
			t.Errorf("DecideMissing(%s) = %s, want %s", c, got, want[c])
		}
	}
	if ParseCause("future-cursor") != CauseFutureCursor || ParseCause("nonsense") != CauseIntent || ParseCause("") != CauseIntent {
		t.Error("ParseCause does not read the causes it knows, or takes an unknown one as other than an intent's")
	}
	for _, c := range []struct {
		n, limit int
		allow    bool
		trip     bool
	}{{10, 10, false, false}, {11, 10, false, true}, {11, 10, true, false}, {0, 0, false, false}} {
		if got := MassDeleteGuard(c.n, c.limit, c.allow); got != c.trip {
			t.Errorf("MassDeleteGuard(%d, %d, %v) = %v", c.n, c.limit, c.allow, got)
		}
	}
}
