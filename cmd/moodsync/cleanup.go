package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// cleanupCommand deletes orphaned and duplicate records from the PDS,
// links records Mongo lost track of, resolves stale rkeys as deletions on
// the PDS, and reports spoofed and invalid records without touching them.
// It never creates a record: that is backfill. The records of lost moods
// (no document in Mongo) are kept unless --delete-lost says otherwise:
// restore brings them back.
type cleanupCommand struct{ stdout, stderr io.Writer }

func (c *cleanupCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("cleanup", c.stderr, false)
	var dryRun, allowMassDelete, deleteLost, all bool
	configFlags{f.fs, &f.cfg}.add("mass-delete-breaker")
	f.fs.BoolVar(&dryRun, "dry-run", false, "print what would be done, and change nothing")
	f.fs.BoolVar(&allowMassDelete, "allow-mass-delete", false, "soft-delete every mood whose record is missing from the repo, even more than the mass-delete guard allows (needs --user)")
	f.fs.BoolVar(&all, "all", false, "with --allow-mass-delete: release the mass-delete breaker and carry out the soft deletes it held, for every user (each user's own guard still holds)")
	f.fs.BoolVar(&deleteLost, "delete-lost", false, "delete the records of lost moods (whose MongoDB document is gone) instead of keeping them for restore: only when they were deleted on purpose (needs --user)")
	env, results, err := f.reconcile(ctx, args, c.stderr, func() error {
		if allowMassDelete && f.user == "" && !all {
			return errors.New("--allow-mass-delete needs --user (one user's drift at a time), or --all to release the mass-delete breaker")
		}
		if all && (!allowMassDelete || f.user != "") {
			return errors.New("--all goes with --allow-mass-delete and no --user")
		}
		if deleteLost && f.user == "" {
			return errors.New("--delete-lost needs --user: a lost mood may be the only copy left; look at one user at a time")
		}
		return nil
	}, func() reconcile.ReconcileOptions {
		o := reconcile.ReconcileOptions{Scope: reconcile.ScopeCleanup, DryRun: dryRun,
			AllowMassDelete: allowMassDelete && !all, BypassBreaker: all}
		if deleteLost {
			o.Lost = reconcile.LostDelete
		}
		return o
	})
	if err != nil {
		return err
	}
	defer env.in.Close()
	if all && !dryRun {
		if st, err := env.breaker.Release(ctx); err != nil {
			return err
		} else if st.Tripped {
			fmt.Fprintf(c.stdout, "mass-delete breaker released (tripped %s, %s held)\n", st.TrippedAt.Format(time.RFC3339), plural(st.Held, "soft delete", "soft deletes"))
		}
	}
	writeCleanup(c.stdout, results, dryRun)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (run it again to finish): %w", err)
	}
	if n := unfinished(results); n > 0 {
		return fmt.Errorf("%d users not finished (run it again)", n)
	}
	return nil
}

// outcome says how a carried-out fix ended.
func outcome(r reconcile.FixResult) string {
	switch {
	case r.Err != nil:
		return "failed: " + r.Err.Error()
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Changed():
		return fmt.Sprintf("changed meanwhile: %s", r.Verdict.Label())
	}
	return "done"
}

// writeCleanup prints, per user with anything to say, the fixes (with
// their outcome unless dry), what the mass-delete guard held back, and the
// notices left alone.
func writeCleanup(w io.Writer, results []compared, dryRun bool) {
	fixes, done, left, backfill, held, lost := 0, 0, 0, 0, 0, 0
	for _, res := range results {
		if res.err != nil {
			fmt.Fprintf(w, "🧹 %s (%s): could not compare: %v\n", res.acct.User, res.acct.DID, res.err)
			continue
		}
		var notices []reconcile.Finding
		for _, f := range res.report.Findings {
			if !f.Class.Drift() {
				notices = append(notices, f)
			}
			if f.Class == reconcile.ClassNotSynced {
				backfill++
			}
			if f.Class == reconcile.ClassLost {
				lost++
			}
		}
		p := res.plan
		if len(p.Fixes) == 0 && len(notices) == 0 && len(p.Held) == 0 {
			continue
		}
		fmt.Fprintf(w, "🧹 Cleanup for user: %s (%s)\n", res.acct.User, res.acct.DID)
		for j, fx := range p.Fixes {
			fixes++
			switch {
			case dryRun:
				fmt.Fprintf(w, "  would %s\n", fx.Describe(res.acct.DID))
			case j < len(res.results):
				o := outcome(res.results[j])
				if o == "done" {
					done++
				}
				fmt.Fprintf(w, "  %s: %s\n", fx.Describe(res.acct.DID), o)
			default:
				fmt.Fprintf(w, "  %s: not started\n", fx.Describe(res.acct.DID))
			}
		}
		if len(p.Held) > 0 {
			held += len(p.Held)
			fmt.Fprintf(w, "  ⛔ mass-delete guard: %s missing from the repo, none soft-deleted (check the repo, then: moodsync cleanup --user %s --allow-mass-delete)\n",
				plural(len(p.Held), "live mood's record is", "live moods' records are"), res.acct.User)
		}
		for _, n := range notices {
			left++
			fmt.Fprintf(w, "  leave %s record %s: %s\n", n.Class.Left(), model.URI(res.acct.DID, n.Rkey), n.Detail)
		}
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: would carry out %s; %s left alone; nothing changed\n",
			plural(fixes, "fix", "fixes"), plural(left, "record", "records"))
	} else {
		fmt.Fprintf(w, "cleanup: %d of %s done; %s left alone\n", done, plural(fixes, "fix", "fixes"), plural(left, "record", "records"))
	}
	if held > 0 {
		fmt.Fprintf(w, "%s held by the mass-delete guard\n", plural(held, "soft delete", "soft deletes"))
	}
	if backfill > 0 {
		fmt.Fprintf(w, "%s not synced: run moodsync backfill\n", plural(backfill, "mood is", "moods are"))
	}
	if lost -= deletedLost(results); lost > 0 {
		fmt.Fprintf(w, "%s kept (no MongoDB document): moodsync restore brings them back; cleanup --user SUB --delete-lost removes the records of moods deleted on purpose\n",
			plural(lost, "lost mood", "lost moods"))
	}
}

// deletedLost counts the fixes that delete lost moods' records: those lost
// moods are not kept.
func deletedLost(results []compared) int {
	n := 0
	for _, r := range results {
		for _, fx := range r.plan.Fixes {
			if fx.Kind == reconcile.FixDeleteLost {
				n++
			}
		}
	}
	return n
}

// unfinished counts the users whose compare or some fix failed.
func unfinished(results []compared) int {
	n := 0
	for _, r := range results {
		if r.err != nil || reconcile.FixErrors(r.results) != nil {
			n++
		}
	}
	return n
}
