package reconcile

// This file is the whole-user comparison of anti-entropy as pure functions:
// Compare classifies a snapshot of one user (their moods in Mongo, the mood
// records of their repo) and PlanCleanup / PlanBackfill turn the findings
// into fixes. Nothing here does I/O; antientropy.go reads the snapshot and
// carries the fixes out through the same engine paths the firehose uses.

import (
	"slices"
	"strings"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Class is the kind of a finding of a whole-user compare.
type Class string

// Drift: Mongo and the repo disagree in a way moodsync repairs (backfill
// writes the missing records, cleanup does the rest).
const (
	// ClassNotSynced: a live mood with atproto unset and no record naming it.
	ClassNotSynced Class = "not-synced"
	// ClassUnlinked: a live mood with atproto unset, but a record names it
	// (a crash between the PDS write and the Mongo update, or a record an
	// old script wrote): link the mood to it.
	ClassUnlinked Class = "unlinked"
	// ClassOrphan: a record whose mood is soft-deleted or gone.
	ClassOrphan Class = "orphan"
	// ClassDuplicate: a second record for one mood.
	ClassDuplicate Class = "duplicate"
	// ClassStaleRkey: a mood whose atproto.rkey names no record of it.
	ClassStaleRkey Class = "stale-rkey"
)

// Notices: reported, never changed by moodsync (they are records a user
// wrote that moodsync does not own, or a disagreement no rule covers).
const (
	// ClassSpoof: a record whose ref names another user's mood.
	ClassSpoof Class = "spoof"
	// ClassInvalid: a record that cannot be decoded or fails the lexicon.
	ClassInvalid Class = "invalid"
	// ClassTextMismatch: the mood's own record says another mood or when.
	ClassTextMismatch Class = "text-mismatch"
	// ClassMalformed: a mood whose MongoDB document cannot be used (a
	// field missing or of the wrong type), or a record naming one: both
	// are left alone until the document is fixed.
	ClassMalformed Class = "malformed"
)

// Classes lists every class in report order.
var Classes = []Class{
	ClassNotSynced, ClassUnlinked, ClassStaleRkey, ClassOrphan, ClassDuplicate,
	ClassSpoof, ClassInvalid, ClassTextMismatch, ClassMalformed,
}

// Drift reports whether the class is a disagreement moodsync repairs, as
// opposed to a notice it only reports.
func (c Class) Drift() bool {
	switch c {
	case ClassNotSynced, ClassUnlinked, ClassOrphan, ClassDuplicate, ClassStaleRkey:
		return true
	}
	return false
}

// Finding is one thing a compare found. MoodID and Rkey say which mood and
// which record it is about (either may be empty); Keep is the record that
// stays for a duplicate, the record to adopt for a stale rkey.
type Finding struct {
	Class  Class  `json:"class"`
	MoodID string `json:"mood,omitempty"`
	Rkey   string `json:"rkey,omitempty"`
	Keep   string `json:"keep,omitempty"`
	Detail string `json:"detail,omitempty"`

	// value is the record as exported, for fixes that act on a record.
	value *model.RecordValue
	// deleted says the mood of a stale rkey or orphan is soft-deleted.
	deleted bool
	// holds says the orphan's soft-deleted mood still points at it.
	holds bool
	// taken says a stale rkey names a record of another mood: no engine
	// rule resolves that safely, so it is left to an operator.
	taken bool
	// mood is the not-synced mood, for the record backfill would write.
	mood *model.Mood
}

// MongoCounts are the Mongo side of a compare.
type MongoCounts struct {
	Live        int `json:"live"`
	Synced      int `json:"synced"`
	NotSynced   int `json:"notSynced"`
	Unlinked    int `json:"unlinked"`
	StaleRkey   int `json:"staleRkey"`
	SoftDeleted int `json:"softDeleted"`
	// Malformed moods are neither live nor soft-deleted: unusable.
	Malformed int `json:"malformed,omitempty"`
}

// ATProtoCounts are the repo side of a compare.
type ATProtoCounts struct {
	Records      int `json:"records"`
	Matched      int `json:"matched"`
	Orphaned     int `json:"orphaned"`
	Duplicate    int `json:"duplicate"`
	Spoofed      int `json:"spoofed"`
	Invalid      int `json:"invalid"`
	TextMismatch int `json:"textMismatch"`
}

// Add adds other's counts.
func (c *MongoCounts) Add(o MongoCounts) {
	c.Live += o.Live
	c.Synced += o.Synced
	c.NotSynced += o.NotSynced
	c.Unlinked += o.Unlinked
	c.StaleRkey += o.StaleRkey
	c.SoftDeleted += o.SoftDeleted
	c.Malformed += o.Malformed
}

// Add adds other's counts.
func (c *ATProtoCounts) Add(o ATProtoCounts) {
	c.Records += o.Records
	c.Matched += o.Matched
	c.Orphaned += o.Orphaned
	c.Duplicate += o.Duplicate
	c.Spoofed += o.Spoofed
	c.Invalid += o.Invalid
	c.TextMismatch += o.TextMismatch
}

// Report is the outcome of comparing one user.
type Report struct {
	User     string        `json:"user"`
	DID      string        `json:"did"`
	Mongo    MongoCounts   `json:"mongo"`
	ATProto  ATProtoCounts `json:"atproto"`
	Findings []Finding     `json:"findings"`
}

// Drift is the number of findings moodsync repairs.
func (r *Report) Drift() int {
	n := 0
	for _, f := range r.Findings {
		if f.Class.Drift() {
			n++
		}
	}
	return n
}

// Of returns the findings of one class, in report order.
func (r *Report) Of(c Class) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Class == c {
			out = append(out, f)
		}
	}
	return out
}

// Compare classifies a snapshot of one user. moods are all of the user's
// moods, soft-deleted ones included; others are the moods of other users
// that records of this repo name (so a spoof can be told from an orphan);
// records are every mood record of the repo. When several records name one
// mood, the oldest (lowest rkey) is the one kept.
func Compare(acct model.Account, moods []*model.Mood, others map[string]*model.Mood, records []model.Record) *Report {
	r := &Report{User: acct.User, DID: acct.DID, Findings: []Finding{}}
	recs := slices.Clone(records)
	slices.SortFunc(recs, func(a, b model.Record) int { return strings.Compare(a.Rkey, b.Rkey) })
	own := make(map[string]*model.Mood, len(moods))
	for _, m := range moods {
		own[m.ID] = m
	}
	byRkey := make(map[string]*model.RecordValue, len(recs))
	naming := map[string][]model.Record{} // live own mood → records naming it, oldest first

	r.ATProto.Records = len(recs)
	for _, rec := range recs {
		v, why := recordValue(rec)
		if v == nil {
			r.add(Finding{Class: ClassInvalid, Rkey: rec.Rkey, Detail: why})
			continue
		}
		byRkey[rec.Rkey] = v
		id := v.MoodID()
		m := own[id]
		switch {
		case m != nil && m.Malformed != "", m == nil && others[id] != nil && others[id].Malformed != "":
			r.add(Finding{Class: ClassMalformed, MoodID: id, Rkey: rec.Rkey, Detail: "record of a mood whose MongoDB document is malformed"})
		case m == nil && others[id] != nil && others[id].User != acct.User:
			r.add(Finding{Class: ClassSpoof, MoodID: id, Rkey: rec.Rkey, Detail: "ref names a mood of another user"})
		case m == nil:
			r.add(Finding{Class: ClassOrphan, MoodID: id, Rkey: rec.Rkey, Detail: "mood missing from MongoDB", value: v})
		case m.Deleted:
			r.add(Finding{Class: ClassOrphan, MoodID: id, Rkey: rec.Rkey, Detail: "mood soft-deleted", value: v,
				deleted: true, holds: m.Rkey == rec.Rkey})
		default:
			naming[id] = append(naming[id], rec)
		}
	}

	sorted := slices.Clone(moods)
	slices.SortFunc(sorted, func(a, b *model.Mood) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range sorted {
		if m.Malformed != "" {
			r.add(Finding{Class: ClassMalformed, MoodID: m.ID, Detail: m.Malformed})
			continue
		}
		if m.Deleted {
			r.Mongo.SoftDeleted++
			if v := byRkey[m.Rkey]; m.Rkey != "" && (v == nil || v.MoodID() != m.ID) {
				r.add(Finding{Class: ClassStaleRkey, MoodID: m.ID, Rkey: m.Rkey, Detail: "soft-deleted mood points at a record that is gone", deleted: true})
			}
			continue
		}
		r.Mongo.Live++
		named := naming[m.ID]
		var kept model.Record
		switch stored := byRkey[m.Rkey]; {
		case m.Rkey == "" && len(named) == 0:
			r.add(Finding{Class: ClassNotSynced, MoodID: m.ID, mood: m})
			continue
		case m.Rkey == "":
			kept = named[0]
			r.add(Finding{Class: ClassUnlinked, MoodID: m.ID, Rkey: kept.Rkey, Detail: "record exists, atproto unset", value: &kept.Value})
		case stored != nil && stored.MoodID() == m.ID:
			kept = model.Record{Rkey: m.Rkey, Value: *stored}
			r.Mongo.Synced++
			if why := mismatch(m, stored); why != "" {
				r.add(Finding{Class: ClassTextMismatch, MoodID: m.ID, Rkey: m.Rkey, Detail: why})
			}
		case len(named) > 0:
			kept = named[0]
			r.add(Finding{Class: ClassStaleRkey, MoodID: m.ID, Rkey: m.Rkey, Keep: kept.Rkey,
				Detail: "record is gone; another record of this mood is adopted", value: &kept.Value})
		default:
			f := Finding{Class: ClassStaleRkey, MoodID: m.ID, Rkey: m.Rkey, Detail: "record is gone"}
			if stored != nil {
				f.Detail, f.taken = "record holds another mood; left for an operator", true
			}
			r.add(f)
			continue
		}
		r.ATProto.Matched++
		for _, dup := range named {
			if dup.Rkey != kept.Rkey {
				v := dup.Value
				r.add(Finding{Class: ClassDuplicate, MoodID: m.ID, Rkey: dup.Rkey, Keep: kept.Rkey, Detail: "second record of one mood", value: &v})
			}
		}
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if c := slices.Index(Classes, a.Class) - slices.Index(Classes, b.Class); c != 0 {
			return c
		}
		if c := strings.Compare(a.MoodID, b.MoodID); c != 0 {
			return c
		}
		return strings.Compare(a.Rkey, b.Rkey)
	})
	return r
}

// add appends a finding and counts it on its side.
func (r *Report) add(f Finding) {
	r.Findings = append(r.Findings, f)
	switch f.Class {
	case ClassNotSynced:
		r.Mongo.NotSynced++
	case ClassUnlinked:
		r.Mongo.Unlinked++
	case ClassStaleRkey:
		if !f.deleted {
			r.Mongo.StaleRkey++
		}
	case ClassOrphan:
		r.ATProto.Orphaned++
	case ClassDuplicate:
		r.ATProto.Duplicate++
	case ClassSpoof:
		r.ATProto.Spoofed++
	case ClassInvalid:
		r.ATProto.Invalid++
	case ClassTextMismatch:
		r.ATProto.TextMismatch++
	case ClassMalformed:
		if f.Rkey == "" {
			r.Mongo.Malformed++
		}
	}
}

// recordValue is the usable value of a listed or exported record, or nil
// and why it is not usable.
func recordValue(rec model.Record) (*model.RecordValue, string) {
	if rec.Invalid != "" {
		return nil, rec.Invalid
	}
	v := rec.Value
	if why := model.ValidateRecord(&v); why != "" {
		return nil, why
	}
	return &v, ""
}

// mismatch says how a mood's own record differs from the mood, "" when it
// does not. `when` is compared as an instant, so a legacy record written
// without milliseconds still matches.
func mismatch(m *model.Mood, v *model.RecordValue) string {
	var diffs []string
	if v.Mood != m.Text {
		diffs = append(diffs, "mood text differs")
	}
	when, err := time.Parse(time.RFC3339Nano, v.When)
	if err != nil || when.UnixMilli() != m.When.UnixMilli() {
		diffs = append(diffs, "when differs")
	}
	return strings.Join(diffs, ", ")
}

// FixKind is one repair step.
type FixKind string

const (
	// FixLink sets atproto.rkey of a mood to a record naming it (repair).
	FixLink FixKind = "link"
	// FixAdopt moves a mood from its stale rkey to another record of it.
	FixAdopt FixKind = "adopt"
	// FixDeleteOrphan deletes a record whose mood is deleted or gone.
	FixDeleteOrphan FixKind = "delete-orphan"
	// FixDeleteDuplicate deletes a second record of a mood.
	FixDeleteDuplicate FixKind = "delete-duplicate"
	// FixSoftDelete soft-deletes a live mood whose record is gone: it was
	// deleted on the PDS.
	FixSoftDelete FixKind = "soft-delete"
	// FixClear unsets atproto of a soft-deleted mood whose record is gone.
	FixClear FixKind = "clear"
	// FixCreate writes the missing record of a live mood (the publisher's
	// create, at the deterministic rkey).
	FixCreate FixKind = "create"
	// FixRewrite unsets the rkey of a live mood whose record the repo lost
	// (not deleted by anyone), and writes the record again.
	FixRewrite FixKind = "rewrite"
)

// Fix is one step of a plan. Rkey is the record it acts on (for mood fixes,
// the mood's stored rkey); Value the record as the compare saw it.
type Fix struct {
	Kind   FixKind            `json:"kind"`
	MoodID string             `json:"mood,omitempty"`
	Rkey   string             `json:"rkey,omitempty"`
	Value  *model.RecordValue `json:"-"`
}

// Expect is the verdict the engine reaches when it carries the fix out on
// the state the compare saw. Another verdict means the state changed
// meanwhile, and the engine did what the fresh state called for.
func (f Fix) Expect() Verdict {
	switch f.Kind {
	case FixLink:
		return VerdictRepair
	case FixAdopt, FixDeleteDuplicate:
		return VerdictDuplicate
	case FixDeleteOrphan:
		return VerdictOrphan
	case FixSoftDelete:
		return VerdictPDSDelete
	case FixClear:
		return VerdictClear
	case FixCreate, FixRewrite:
		return verdictCreated
	}
	return ""
}

// verdictCreated is the outcome of a create fix carried out (the publisher
// path has no firehose verdict).
const verdictCreated Verdict = "created"

// Scope is which fixes a whole-user reconcile carries out.
type Scope int

const (
	// ScopeAll: everything (the daemon's reconcile).
	ScopeAll Scope = iota
	// ScopeCleanup: everything but writing missing records (cleanup).
	ScopeCleanup
	// ScopeBackfill: only links and the missing records (backfill).
	ScopeBackfill
)

// Policy is how a plan treats what a compare found.
type Policy struct {
	// Missing is what a live mood gets whose stored rkey names no record.
	Missing MissingAction
	// MassDeleteLimit bounds the soft deletes of Missing (see
	// MassDeleteGuard); AllowMassDelete lifts it.
	MassDeleteLimit int
	AllowMassDelete bool
	Scope           Scope
}

// Plan is the fixes for one user, in the order they must run.
type Plan struct {
	Fixes []Fix
	// Held are the soft deletes the mass-delete guard kept back: when there
	// are any, none of the user's missing records was taken as deleted.
	Held []Fix
}

// PlanFixes turns a report into fixes, in the order they must run: links
// and adoptions first (so the engine sees which record each mood keeps),
// then record deletions, then the Mongo side of records that are gone,
// then the records to write. Notices get no fix.
func PlanFixes(r *Report, p Policy) Plan {
	var first, deletes, last, softDeletes, creates []Fix
	for _, f := range r.Findings {
		switch f.Class {
		case ClassUnlinked:
			first = append(first, Fix{Kind: FixLink, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
		case ClassNotSynced:
			v := model.NewRecordValue(f.mood)
			creates = append(creates, Fix{Kind: FixCreate, MoodID: f.MoodID, Rkey: model.Rkey(f.mood, 0), Value: &v})
		case ClassStaleRkey:
			switch {
			case f.Keep != "":
				first = append(first, Fix{Kind: FixAdopt, MoodID: f.MoodID, Rkey: f.Keep, Value: f.value})
			case f.taken:
			case f.deleted:
				last = append(last, Fix{Kind: FixClear, MoodID: f.MoodID, Rkey: f.Rkey})
			case p.Missing == MissingRewrite:
				// The fix clears the stale rkey; the record is written
				// with the creates.
				last = append(last, Fix{Kind: FixRewrite, MoodID: f.MoodID, Rkey: f.Rkey})
			default:
				softDeletes = append(softDeletes, Fix{Kind: FixSoftDelete, MoodID: f.MoodID, Rkey: f.Rkey})
			}
		case ClassOrphan:
			deletes = append(deletes, Fix{Kind: FixDeleteOrphan, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
			if f.holds {
				// The publisher's delete half-done: once the record is
				// gone, the mood's pointer to it goes too.
				last = append(last, Fix{Kind: FixClear, MoodID: f.MoodID, Rkey: f.Rkey})
			}
		case ClassDuplicate:
			deletes = append(deletes, Fix{Kind: FixDeleteDuplicate, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
		}
	}
	var plan Plan
	if MassDeleteGuard(len(softDeletes), p.MassDeleteLimit, p.AllowMassDelete) {
		plan.Held, softDeletes = softDeletes, nil
	}
	all := slices.Concat(first, deletes, last, softDeletes, creates)
	for _, f := range all {
		if p.Scope.Includes(f.Kind) {
			plan.Fixes = append(plan.Fixes, f)
		}
	}
	return plan
}

// Includes reports whether the scope carries out fixes of kind k.
func (s Scope) Includes(k FixKind) bool {
	switch s {
	case ScopeCleanup:
		return k != FixCreate && k != FixRewrite
	case ScopeBackfill:
		return k == FixLink || k == FixCreate
	}
	return true
}
