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
	// mood is the not-synced mood, for the record backfill would write, or
	// the mood whose record is gone (its when decides a rewrite).
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
	Records  int `json:"records"`
	Matched  int `json:"matched"`
	Orphaned int `json:"orphaned"`
	// Lost are records whose mood is missing from MongoDB (kept).
	Lost         int `json:"lost,omitempty"`
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
	c.Lost += o.Lost
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
		if m == nil {
			m = others[id]
		}
		// The record is decided as the firehose decides its op; which of
		// several records naming one live mood it keeps is decided per mood
		// below.
		switch class := DecideUpsert(acct.User, Upsert{Rkey: rec.Rkey, Value: v}, m); class {
		case ClassMalformed:
			r.add(Finding{Class: class, MoodID: id, Rkey: rec.Rkey, Detail: "record of a mood whose MongoDB document is malformed"})
		case ClassSpoof:
			r.add(Finding{Class: class, MoodID: id, Rkey: rec.Rkey, Detail: "ref names a mood of another user"})
		case ClassOrphan, ClassLost:
			f := Finding{Class: class, MoodID: id, Rkey: rec.Rkey, Detail: "mood missing from MongoDB", value: v}
			if m != nil {
				f.Detail, f.deleted, f.holds = "mood soft-deleted", true, m.Rkey == rec.Rkey
			}
			r.add(f)
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
			f := Finding{Class: ClassStaleRkey, MoodID: m.ID, Rkey: m.Rkey, Detail: "record is gone", mood: m}
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
	f.Class.info().count(r, f)
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
