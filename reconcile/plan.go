package reconcile

// This file turns a whole-user compare's findings into a plan, as pure
// functions: each class's row of classTable says which fixes a finding of
// it leads to (the planner's methods below), fixTable says what each fix
// is expected to find and how it is described. Nothing here does I/O;
// user.go carries the plan out.

import (
	"fmt"
	"slices"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// FixKind is one repair step.
type FixKind string

const (
	// FixLink sets atproto.rkey of a mood to a record naming it (repair).
	FixLink FixKind = "link"
	// FixAdopt moves a mood from its stale rkey to another record of it.
	FixAdopt FixKind = "adopt"
	// FixDeleteOrphan deletes a record whose mood is deleted.
	FixDeleteOrphan FixKind = "delete-orphan"
	// FixDeleteDuplicate deletes a second record of a mood.
	FixDeleteDuplicate FixKind = "delete-duplicate"
	// FixDeleteLost deletes the record of a lost mood: the user was erased
	// by a purge, or an operator said so (cleanup --delete-lost).
	FixDeleteLost FixKind = "delete-lost"
	// FixRestore inserts a lost mood back into Mongo from its record
	// (restore), only where no document with its id exists.
	FixRestore FixKind = "restore"
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

// fixInfo is one row of fixTable.
type fixInfo struct {
	// expect is the class the engine reaches when it carries the fix out
	// on the state the compare saw.
	expect Class
	// describe says what the fix does, in the words of cleanup's report.
	describe func(did string, f Fix) string
}

// fixTable is the one table of fix kinds, in plan order.
var fixTable = []struct {
	kind FixKind
	info fixInfo
}{
	{FixLink, fixInfo{ClassUnlinked, func(did string, f Fix) string {
		return fmt.Sprintf("link mood %s to its record %s", f.MoodID, model.URI(did, f.Rkey))
	}}},
	{FixAdopt, fixInfo{ClassDuplicate, func(did string, f Fix) string {
		return fmt.Sprintf("point mood %s at its other record %s", f.MoodID, model.URI(did, f.Rkey))
	}}},
	{FixDeleteOrphan, fixInfo{ClassOrphan, func(did string, f Fix) string {
		return fmt.Sprintf("delete orphaned record %s (mood %s)", model.URI(did, f.Rkey), f.MoodID)
	}}},
	{FixDeleteDuplicate, fixInfo{ClassDuplicate, func(did string, f Fix) string {
		return fmt.Sprintf("delete duplicate record %s (mood %s)", model.URI(did, f.Rkey), f.MoodID)
	}}},
	{FixDeleteLost, fixInfo{ClassLost, func(did string, f Fix) string {
		return fmt.Sprintf("delete record %s of lost mood %s", model.URI(did, f.Rkey), f.MoodID)
	}}},
	{FixRestore, fixInfo{ClassLost, func(did string, f Fix) string {
		return fmt.Sprintf("restore mood %s from its record %s", f.MoodID, model.URI(did, f.Rkey))
	}}},
	{FixSoftDelete, fixInfo{ClassDeletedOnPDS, func(_ string, f Fix) string {
		return fmt.Sprintf("soft-delete mood %s: its record %s was deleted on the PDS", f.MoodID, f.Rkey)
	}}},
	{FixClear, fixInfo{ClassCleared, func(_ string, f Fix) string {
		return fmt.Sprintf("unset atproto of soft-deleted mood %s (record %s)", f.MoodID, f.Rkey)
	}}},
	{FixRewrite, fixInfo{ClassNotSynced, func(_ string, f Fix) string {
		return fmt.Sprintf("write mood %s again: its record %s is missing from the repo", f.MoodID, f.Rkey)
	}}},
	{FixCreate, fixInfo{ClassNotSynced, func(did string, f Fix) string {
		return fmt.Sprintf("create record %s for mood %s", model.URI(did, f.Rkey), f.MoodID)
	}}},
}

// FixKinds lists every fix kind.
var FixKinds = func() []FixKind {
	out := make([]FixKind, len(fixTable))
	for i, row := range fixTable {
		out[i] = row.kind
	}
	return out
}()

func (k FixKind) info() fixInfo {
	for _, row := range fixTable {
		if row.kind == k {
			return row.info
		}
	}
	return fixInfo{describe: func(did string, f Fix) string { return fmt.Sprintf("%s %s", f.Kind, model.URI(did, f.Rkey)) }}
}

// Fix is one step of a plan. Rkey is the record it acts on (for mood fixes,
// the mood's stored rkey); Value the record as the compare saw it.
type Fix struct {
	Kind   FixKind            `json:"kind"`
	MoodID string             `json:"mood,omitempty"`
	Rkey   string             `json:"rkey,omitempty"`
	Value  *model.RecordValue `json:"-"`
}

// Expect is the class the engine reaches when it carries the fix out on
// the state the compare saw. Another class means the state changed
// meanwhile, and the engine did what the fresh state called for.
func (f Fix) Expect() Class { return f.Kind.info().expect }

// Describe says what the fix does to did's repo or moods.
func (f Fix) Describe(did string) string { return f.Kind.info().describe(did, f) }

// Scope is which fixes a whole-user reconcile carries out.
type Scope int

const (
	// ScopeAll: everything (the daemon's reconcile).
	ScopeAll Scope = iota
	// ScopeCleanup: everything but writing missing records (cleanup).
	ScopeCleanup
	// ScopeBackfill: only links and the missing records (backfill).
	ScopeBackfill
	// ScopeRestore: only lost moods brought back into Mongo (restore).
	ScopeRestore
)

// Includes reports whether the scope carries out fixes of kind k.
func (s Scope) Includes(k FixKind) bool {
	switch s {
	case ScopeCleanup:
		return k != FixCreate && k != FixRewrite && k != FixRestore
	case ScopeBackfill:
		return k == FixLink || k == FixCreate
	case ScopeRestore:
		return k == FixRestore
	}
	return k != FixRestore
}

// Policy is how a plan treats what a compare found.
type Policy struct {
	// Cause is why the user is compared; RewriteOwed says the user owes a
	// rewrite since an earlier pass; RepoRev is the repo's newest commit
	// as asked before it was read. With the mood's when they decide what a
	// live mood gets whose stored rkey names no record
	// (DecideMissingRecord).
	Cause       Cause
	RewriteOwed bool
	RepoRev     string
	// MassDeleteLimit bounds the soft deletes of missing records (see
	// MassDeleteGuard); AllowMassDelete lifts it.
	MassDeleteLimit int
	AllowMassDelete bool
	// Lost is what an operator asks for lost moods' records; Erased is
	// when a purge erased the user (zero: never). DecideLost decides.
	Lost   LostAction
	Erased time.Time
	Scope  Scope
}

// Plan is the fixes for one user, in the order they must run.
type Plan struct {
	Fixes []Fix
	// Held are the soft deletes the mass-delete guard kept back: when there
	// are any, none of the user's missing records was taken as deleted.
	Held []Fix
}

// planner collects a plan's fixes in the groups that run in order: links
// and adoptions first (so the engine sees which record each mood keeps),
// then record deletions, then the Mongo side of records that are gone,
// then the soft deletes (bounded by the guard), then the records to write.
type planner struct {
	p                                          Policy
	first, deletes, last, softDeletes, creates []Fix
}

func (pl *planner) create(f Finding) {
	v := model.NewRecordValue(f.mood)
	pl.creates = append(pl.creates, Fix{Kind: FixCreate, MoodID: f.MoodID, Rkey: model.Rkey(f.mood, 0), Value: &v})
}

func (pl *planner) link(f Finding) {
	pl.first = append(pl.first, Fix{Kind: FixLink, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
}

func (pl *planner) staleRkey(f Finding) {
	switch {
	case f.Keep != "":
		pl.first = append(pl.first, Fix{Kind: FixAdopt, MoodID: f.MoodID, Rkey: f.Keep, Value: f.value})
	case f.taken:
		// Another mood's record holds the key: left for an operator.
	case f.deleted:
		pl.last = append(pl.last, Fix{Kind: FixClear, MoodID: f.MoodID, Rkey: f.Rkey})
	case f.mood != nil && DecideMissingRecord(pl.p.Cause, pl.p.RewriteOwed, pl.p.RepoRev, f.mood.When) == MissingRewrite:
		// The fix clears the stale rkey; the record is written with the
		// creates.
		pl.last = append(pl.last, Fix{Kind: FixRewrite, MoodID: f.MoodID, Rkey: f.Rkey})
	default:
		pl.softDeletes = append(pl.softDeletes, Fix{Kind: FixSoftDelete, MoodID: f.MoodID, Rkey: f.Rkey})
	}
}

func (pl *planner) orphan(f Finding) {
	pl.deletes = append(pl.deletes, Fix{Kind: FixDeleteOrphan, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
	if f.holds {
		// The publisher's delete half-done: once the record is gone, the
		// mood's pointer to it goes too.
		pl.last = append(pl.last, Fix{Kind: FixClear, MoodID: f.MoodID, Rkey: f.Rkey})
	}
}

func (pl *planner) lost(f Finding) {
	switch DecideLost(model.ErasedBy(pl.p.Erased, f.MoodID), pl.p.Lost) {
	case LostDelete:
		pl.deletes = append(pl.deletes, Fix{Kind: FixDeleteLost, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
	case LostRestore:
		pl.first = append(pl.first, Fix{Kind: FixRestore, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
	}
}

func (pl *planner) duplicate(f Finding) {
	pl.deletes = append(pl.deletes, Fix{Kind: FixDeleteDuplicate, MoodID: f.MoodID, Rkey: f.Rkey, Value: f.value})
}

// PlanFixes turns a report into fixes, in the order they must run, each
// finding as its class's row of classTable says. Notices get no fix.
func PlanFixes(r *Report, p Policy) Plan {
	pl := &planner{p: p}
	for _, f := range r.Findings {
		if plan := f.Class.info().plan; plan != nil {
			plan(pl, f)
		}
	}
	var plan Plan
	softDeletes := pl.softDeletes
	if MassDeleteGuard(len(softDeletes), p.MassDeleteLimit, p.AllowMassDelete) {
		plan.Held, softDeletes = softDeletes, nil
	}
	for _, f := range slices.Concat(pl.first, pl.deletes, pl.last, softDeletes, pl.creates) {
		if p.Scope.Includes(f.Kind) {
			plan.Fixes = append(plan.Fixes, f)
		}
	}
	return plan
}
