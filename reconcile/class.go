package reconcile

import "fmt"

// Class is the one vocabulary of moodsync's decisions: what a firehose op,
// a record of a repo export or a mood in Mongo says about one mood and its
// record. DecideUpsert and DecideDelete reach a class for an op; Compare
// reaches the same classes, through the same functions, for a whole user.
// What a class leads to (its fix), how it is printed (audit text, JSON, the
// metric label) and whether it is drift all come from classTable, the one
// table a new finding is added to.
type Class string

const (
	// ClassSynced: the mood points at this record (firehose: confirm).
	ClassSynced Class = "synced"
	// ClassUnlinked: a live mood with atproto unset that a record names
	// (a crash between the PDS write and the Mongo update, or a record an
	// old script wrote): link the mood to it (firehose: repair).
	ClassUnlinked Class = "unlinked"
	// ClassNotSynced: a live mood with atproto unset and no record naming
	// it: write its record.
	ClassNotSynced Class = "not-synced"
	// ClassStaleRkey: a mood whose atproto.rkey names no record of it.
	// What it leads to depends on why the user is compared (DecideMissing).
	ClassStaleRkey Class = "stale-rkey"
	// ClassOrphan: a record whose mood is soft-deleted: delete the record.
	ClassOrphan Class = "orphan"
	// ClassLost: a record whose ref names no document in Mongo. It may be
	// the only copy of the mood left (Mongo restored from a backup): kept,
	// reported, and brought back by restore; deleted only for a user a
	// purge erased, or when an operator says so (cleanup --delete-lost).
	ClassLost Class = "lost"
	// ClassDuplicate: a second record of one mood: delete it.
	ClassDuplicate Class = "duplicate"
	// ClassDeletedOnPDS: a delete op removed a live mood's record: the
	// user deleted it, so the mood is soft-deleted.
	ClassDeletedOnPDS Class = "deleted-on-pds"
	// ClassCleared: the record of a soft-deleted mood is gone: unset
	// atproto.
	ClassCleared Class = "cleared"
	// ClassSpoof: a record whose ref names another user's mood: touch
	// nothing.
	ClassSpoof Class = "spoof"
	// ClassInvalid: a record that cannot be decoded or fails the lexicon.
	ClassInvalid Class = "invalid"
	// ClassTextMismatch: the mood's own record says another mood or when.
	ClassTextMismatch Class = "text-mismatch"
	// ClassMalformed: a mood whose MongoDB document cannot be used (a
	// field missing or of the wrong type), or a record naming one: both are
	// left alone until the document is fixed.
	ClassMalformed Class = "malformed"
	// ClassIgnored: nothing of ours (a delete of a key no mood holds).
	ClassIgnored Class = "ignored"
)

// classInfo is one row of the table.
type classInfo struct {
	// label is the class in metrics (moodsync_firehose_ops_total{decision},
	// moodsync_engine_actions_total{action="verdict_<label>"}) and logs.
	label string
	// drift: a disagreement moodsync repairs (or, for lost moods, that an
	// operator restores); otherwise a notice, or an outcome that needs
	// nothing more.
	drift bool
	// one and many say what a finding is in audit's text; byRkey lists
	// records by rkey rather than moods by id.
	one, many string
	byRkey    bool
	// left names, for a notice, the records cleanup leaves alone.
	left string
	// count adds a finding to its side's counts of a report.
	count func(*Report, Finding)
	// plan adds the fixes a finding leads to; nil for none.
	plan func(*planner, Finding)
}

// classTable is the one table of classes, in report order.
var classTable = []struct {
	class Class
	info  classInfo
}{
	{ClassNotSynced, classInfo{label: "not-synced", drift: true,
		one: "mood not synced to ATProto", many: "moods not synced to ATProto",
		count: func(r *Report, _ Finding) { r.Mongo.NotSynced++ }, plan: (*planner).create}},
	{ClassUnlinked, classInfo{label: "repair", drift: true,
		one: "mood whose record exists but is not linked in MongoDB", many: "moods whose record exists but is not linked in MongoDB",
		count: func(r *Report, _ Finding) { r.Mongo.Unlinked++ }, plan: (*planner).link}},
	{ClassStaleRkey, classInfo{label: "stale-rkey", drift: true,
		one: "mood pointing at a missing record (stale rkey)", many: "moods pointing at a missing record (stale rkey)",
		count: func(r *Report, f Finding) {
			if !f.deleted {
				r.Mongo.StaleRkey++
			}
		}, plan: (*planner).staleRkey}},
	{ClassOrphan, classInfo{label: "orphan", drift: true, byRkey: true,
		one: "orphaned ATProto record", many: "orphaned ATProto records",
		count: func(r *Report, _ Finding) { r.ATProto.Orphaned++ }, plan: (*planner).orphan}},
	{ClassLost, classInfo{label: "lost", drift: true, byRkey: true,
		one:   "lost mood: a record whose MongoDB document is gone (kept; moodsync restore brings it back)",
		many:  "lost moods: records whose MongoDB document is gone (kept; moodsync restore brings them back)",
		count: func(r *Report, _ Finding) { r.ATProto.Lost++ }, plan: (*planner).lost}},
	{ClassDuplicate, classInfo{label: "duplicate", drift: true, byRkey: true,
		one: "duplicate ATProto record", many: "duplicate ATProto records",
		count: func(r *Report, _ Finding) { r.ATProto.Duplicate++ }, plan: (*planner).duplicate}},
	{ClassSpoof, classInfo{label: "spoof", byRkey: true, left: "spoofed",
		one: "record with a spoofed ref (left untouched)", many: "records with a spoofed ref (left untouched)",
		count: func(r *Report, _ Finding) { r.ATProto.Spoofed++ }}},
	{ClassInvalid, classInfo{label: "invalid", byRkey: true, left: "invalid",
		one: "invalid record (left untouched)", many: "invalid records (left untouched)",
		count: func(r *Report, _ Finding) { r.ATProto.Invalid++ }}},
	{ClassTextMismatch, classInfo{label: "text-mismatch", byRkey: true, left: "mismatched",
		one: "record whose text differs from MongoDB (left untouched)", many: "records whose text differs from MongoDB (left untouched)",
		count: func(r *Report, _ Finding) { r.ATProto.TextMismatch++ }}},
	{ClassMalformed, classInfo{label: "malformed-mood", left: "malformed",
		one: "malformed MongoDB document, or a record naming one (left untouched)", many: "malformed MongoDB documents, or records naming one (left untouched)",
		count: func(r *Report, f Finding) {
			if f.Rkey == "" {
				r.Mongo.Malformed++
			}
		}}},
	// Outcomes of firehose ops only: a compare never reports them.
	{ClassSynced, classInfo{label: "confirm", one: "record confirmed", many: "records confirmed",
		count: func(*Report, Finding) {}}},
	{ClassDeletedOnPDS, classInfo{label: "pds-delete", one: "mood soft-deleted: its record was deleted on the PDS", many: "moods soft-deleted: their records were deleted on the PDS",
		count: func(*Report, Finding) {}}},
	{ClassCleared, classInfo{label: "clear", one: "soft-deleted mood unlinked from its deleted record", many: "soft-deleted moods unlinked from their deleted records",
		count: func(*Report, Finding) {}}},
	{ClassIgnored, classInfo{label: "ignore", one: "op of nothing moodsync keeps", many: "ops of nothing moodsync keeps",
		count: func(*Report, Finding) {}}},
}

// Classes lists every class in report order.
var Classes = func() []Class {
	out := make([]Class, len(classTable))
	for i, row := range classTable {
		out[i] = row.class
	}
	return out
}()

var classInfos = func() map[Class]classInfo {
	m := make(map[Class]classInfo, len(classTable))
	for _, row := range classTable {
		m[row.class] = row.info
	}
	return m
}()

func (c Class) info() classInfo {
	if i, ok := classInfos[c]; ok {
		return i
	}
	return classInfo{label: string(c), count: func(*Report, Finding) {}}
}

// Label is the class as metrics and logs name it.
func (c Class) Label() string { return c.info().label }

// Drift reports whether the class is a disagreement moodsync repairs, as
// opposed to a notice it only reports.
func (c Class) Drift() bool { return c.info().drift }

// Text says what n findings of the class are, in audit's words.
func (c Class) Text(n int) string {
	i := c.info()
	if n == 1 {
		return fmt.Sprintf("%d %s", n, i.one)
	}
	return fmt.Sprintf("%d %s", n, i.many)
}

// ByRkey reports whether findings of the class are listed by record
// (rkey) rather than by mood (id).
func (c Class) ByRkey() bool { return c.info().byRkey }

// Left names the records of a notice class that cleanup leaves alone
// ("spoofed"); "" for a class that is not a notice.
func (c Class) Left() string { return c.info().left }

// FirehoseLabels are the labels of the classes a firehose op can reach,
// reported by the metrics zero or not.
var FirehoseLabels = func() []string {
	var out []string
	for _, c := range []Class{ClassSynced, ClassUnlinked, ClassDeletedOnPDS, ClassCleared,
		ClassDuplicate, ClassSpoof, ClassOrphan, ClassLost, ClassInvalid} {
		out = append(out, c.Label())
	}
	return out
}()
