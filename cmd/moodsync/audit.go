package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/whistlegraph/moodsync/reconcile"
)

// auditCommand compares Mongo and the PDS for users and reports drift and
// the plan the daemon's reconcile would carry out. It changes nothing.
type auditCommand struct{ stdout, stderr io.Writer }

// driftExitCode is audit's exit code with --fail-on-drift when something
// is to repair (1 stays for "the audit itself failed").
const driftExitCode = 3

func (c *auditCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("audit", c.stderr, false)
	var asJSON, failOnDrift bool
	f.fs.BoolVar(&asJSON, "json", false, "print the report as JSON (full ids) instead of text")
	f.fs.BoolVar(&failOnDrift, "fail-on-drift", false, fmt.Sprintf("exit %d when anything is to repair (spoofed, invalid and mismatched records are notices: they never fail)", driftExitCode))
	env, results, err := f.reconcile(ctx, args, c.stderr, nil, func() reconcile.ReconcileOptions {
		return reconcile.ReconcileOptions{DryRun: true}
	})
	if err != nil {
		return err
	}
	defer env.in.Close()
	out := newAuditOutput(results)
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		writeAuditText(c.stdout, out)
	}
	switch {
	case out.Total.Failed > 0:
		return fmt.Errorf("%d of %d users could not be audited", out.Total.Failed, out.Total.Users)
	case failOnDrift && out.Total.Drift > 0:
		return exitError{driftExitCode}
	}
	return nil
}

// auditOutput is the report, as printed (the JSON form is for scripts).
type auditOutput struct {
	Users []userAudit `json:"users"`
	Total auditTotal  `json:"total"`
}

type userAudit struct {
	User string `json:"user"`
	DID  string `json:"did"`
	*reconcile.Summary
	Error string `json:"error,omitempty"`
}

type auditTotal struct {
	Users   int                     `json:"users"`
	Failed  int                     `json:"failed"`
	Drift   int                     `json:"drift"`
	Notices int                     `json:"notices"`
	Mongo   reconcile.MongoCounts   `json:"mongo"`
	ATProto reconcile.ATProtoCounts `json:"atproto"`
	// ByClass counts the findings of each class over every user.
	ByClass map[reconcile.Class]int `json:"byClass"`
}

func newAuditOutput(results []compared) auditOutput {
	out := auditOutput{Users: make([]userAudit, 0, len(results)), Total: auditTotal{ByClass: map[reconcile.Class]int{}}}
	for _, res := range results {
		u := userAudit{User: res.acct.User, DID: res.acct.DID}
		out.Total.Users++
		if res.err != nil {
			u.Error = res.err.Error()
			out.Total.Failed++
			out.Users = append(out.Users, u)
			continue
		}
		r := res.report
		u.Summary = reconcile.Summarize(r, res.plan)
		out.Total.Mongo.Add(r.Mongo)
		out.Total.ATProto.Add(r.ATProto)
		out.Total.Drift += u.Drift
		out.Total.Notices += u.Notices
		for _, f := range r.Findings {
			out.Total.ByClass[f.Class]++
		}
		out.Users = append(out.Users, u)
	}
	return out
}

// writeCounts writes the two count blocks; lines for classes that are
// rare stay out while they are zero.
func writeCounts(w io.Writer, m reconcile.MongoCounts, a reconcile.ATProtoCounts) {
	fmt.Fprintf(w, "MongoDB moods: %d\n", m.Live)
	fmt.Fprintf(w, "  ✅ Synced to ATProto: %d\n", m.Synced)
	fmt.Fprintf(w, "  ⚠️  Not synced: %d\n", m.NotSynced)
	optionalCount(w, "🔗 Record not linked", m.Unlinked)
	optionalCount(w, "❓ Stale rkey", m.StaleRkey)
	fmt.Fprintf(w, "  🗑️  Soft deleted: %d\n", m.SoftDeleted)
	optionalCount(w, "🧩 Malformed (left untouched)", m.Malformed)
	writeATProtoCounts(w, a)
}

// optionalCount writes a count line only when it is not zero.
func optionalCount(w io.Writer, label string, n int) {
	if n > 0 {
		fmt.Fprintf(w, "  %s: %d\n", label, n)
	}
}

// writeATProtoCounts writes the repo's count block.
func writeATProtoCounts(w io.Writer, a reconcile.ATProtoCounts) {
	fmt.Fprintf(w, "ATProto moods: %d\n", a.Records)
	fmt.Fprintf(w, "  ✅ Matched in MongoDB: %d\n", a.Matched)
	fmt.Fprintf(w, "  ⚠️  Orphaned (MongoDB deleted): %d\n", a.Orphaned)
	optionalCount(w, "🛟 Lost (no MongoDB document, kept for restore)", a.Lost)
	optionalCount(w, "👥 Duplicates", a.Duplicate)
	optionalCount(w, "🎭 Spoofed ref", a.Spoofed)
	optionalCount(w, "❌ Invalid", a.Invalid)
	optionalCount(w, "✏️  Text mismatch", a.TextMismatch)
}

// writeAuditText writes the human report: a block per user, then totals.
func writeAuditText(w io.Writer, out auditOutput) {
	for _, u := range out.Users {
		fmt.Fprintf(w, "🔍 Mood Sync Audit for user: %s (%s)\n", u.User, u.DID)
		if u.Error != "" {
			fmt.Fprintf(w, "  ❗ could not audit: %s\n\n", u.Error)
			continue
		}
		writeCounts(w, u.Mongo, u.ATProto)
		if len(u.Findings) == 0 {
			fmt.Fprint(w, "Issues: none\n\n")
			continue
		}
		writeIssues(w, u.Findings)
		writePlan(w, u.User, u.Summary)
		fmt.Fprintln(w)
	}
	t := out.Total
	fmt.Fprintf(w, "📊 Total: %s", plural(t.Users, "user", "users"))
	if t.Failed > 0 {
		fmt.Fprintf(w, " (%d could not be audited)", t.Failed)
	}
	fmt.Fprintln(w)
	writeCounts(w, t.Mongo, t.ATProto)
	fmt.Fprintf(w, "Drift: %d to repair", t.Drift)
	if t.Drift > 0 {
		backfill, lost := t.ByClass[reconcile.ClassNotSynced], t.ByClass[reconcile.ClassLost]
		fmt.Fprintf(w, " (backfill: %d, cleanup: %d", backfill, t.Drift-backfill-lost)
		if lost > 0 {
			fmt.Fprintf(w, ", restore: %d", lost)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintf(w, "; notices: %d\n", t.Notices)
}

// writeIssues lists the findings by class, a line per class with the
// first few ids.
func writeIssues(w io.Writer, findings []reconcile.Finding) {
	fmt.Fprintln(w, "Issues:")
	for _, class := range reconcile.Classes {
		var ids []string
		for _, f := range findings {
			if f.Class != class {
				continue
			}
			if class.ByRkey() {
				ids = append(ids, f.Rkey)
			} else {
				ids = append(ids, f.MoodID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		kind := "IDs"
		if class.ByRkey() {
			kind = "rkeys"
		}
		fmt.Fprintf(w, "  - %s (%s: %s)\n", class.Text(len(ids)), kind, shortList(ids))
	}
}

// writePlan says what a reconcile of the user would do, fix kinds counted
// in plan order, and what the mass-delete guard would hold back.
func writePlan(w io.Writer, user string, u *reconcile.Summary) {
	var kinds []reconcile.FixKind
	count := map[reconcile.FixKind]int{}
	for _, fx := range u.Plan {
		if count[fx.Kind] == 0 {
			kinds = append(kinds, fx.Kind)
		}
		count[fx.Kind]++
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, count[k])
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "Plan: %s\n", strings.Join(parts, ", "))
	}
	if u.Held > 0 {
		fmt.Fprintf(w, "  ⛔ mass-delete guard: %s would be held (cleanup --user %s --allow-mass-delete)\n", plural(u.Held, "soft delete", "soft deletes"), user)
	}
}
