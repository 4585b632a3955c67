package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// cleanupCommand deletes orphaned and duplicate records from the PDS,
// links records Mongo lost track of, resolves stale rkeys as deletions on
// the PDS, and reports spoofed and invalid records without touching them.
// It never creates a record: that is backfill.
type cleanupCommand struct{ stdout, stderr io.Writer }

func (c *cleanupCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("cleanup", c.stderr, false)
	var dryRun bool
	f.fs.BoolVar(&dryRun, "dry-run", false, "print what would be done, and change nothing")
	env, results, err := f.compare(ctx, args, c.stderr, nil)
	if err != nil {
		return err
	}
	defer env.in.Close()
	plans := planCleanup(results)
	total := 0
	for _, p := range plans {
		total += len(p.fixes)
	}
	var failed atomic.Int64
	if !dryRun {
		bar := newProgress(c.stderr, "cleaning up", total)
		fo := reconcile.FixOptions{Progress: bar.Add}
		eachAccount(ctx, accountsOf(plans), f.concurrency, func(i int, acct model.Account) {
			if p := &plans[i]; p.err == nil && len(p.fixes) > 0 {
				p.results = env.engine.ApplyFixes(ctx, acct, p.fixes, fo)
				if err := reconcile.FixErrors(p.results); err != nil {
					failed.Add(1)
					env.log.Warn("cleanup: user not finished", "user", acct.User, "did", acct.DID, "err", err)
				}
			}
		})
		bar.Finish()
	}
	writeCleanup(c.stdout, results, plans, dryRun)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (run it again to finish): %w", err)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d users not finished (run it again)", n)
	}
	return plansError(plans)
}

// noticeNames name the records cleanup leaves alone.
var noticeNames = map[reconcile.Class]string{
	reconcile.ClassSpoof:        "spoofed",
	reconcile.ClassInvalid:      "invalid",
	reconcile.ClassTextMismatch: "mismatched",
}

// planCleanup plans every compared user's cleanup.
func planCleanup(results []compared) []userPlan {
	plans := make([]userPlan, len(results))
	for i, res := range results {
		plans[i] = userPlan{acct: res.acct, err: res.err}
		if res.err == nil {
			plans[i].fixes = reconcile.PlanCleanup(res.report)
		}
	}
	return plans
}

// describeFix says what a fix does, in the words of the report.
func describeFix(did string, fx reconcile.Fix) string {
	uri := model.URI(did, fx.Rkey)
	switch fx.Kind {
	case reconcile.FixLink:
		return fmt.Sprintf("link mood %s to its record %s", fx.MoodID, uri)
	case reconcile.FixAdopt:
		return fmt.Sprintf("point mood %s at its other record %s", fx.MoodID, uri)
	case reconcile.FixDeleteOrphan:
		return fmt.Sprintf("delete orphaned record %s (mood %s)", uri, fx.MoodID)
	case reconcile.FixDeleteDuplicate:
		return fmt.Sprintf("delete duplicate record %s (mood %s)", uri, fx.MoodID)
	case reconcile.FixSoftDelete:
		return fmt.Sprintf("soft-delete mood %s: its record %s was deleted on the PDS", fx.MoodID, fx.Rkey)
	case reconcile.FixClear:
		return fmt.Sprintf("unset atproto of soft-deleted mood %s (record %s)", fx.MoodID, fx.Rkey)
	}
	return fmt.Sprintf("%s %s", fx.Kind, uri)
}

// outcome says how a carried-out fix ended.
func outcome(r reconcile.FixResult) string {
	switch {
	case r.Err != nil:
		return "failed: " + r.Err.Error()
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Changed():
		return fmt.Sprintf("changed meanwhile: %s", r.Verdict)
	}
	return "done"
}

// writeCleanup prints, per user with anything to say, the fixes (with
// their outcome unless dry) and the notices left alone.
func writeCleanup(w io.Writer, results []compared, plans []userPlan, dryRun bool) {
	fixes, done, left, backfill := 0, 0, 0, 0
	for i, res := range results {
		p := plans[i]
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
		}
		if len(p.fixes) == 0 && len(notices) == 0 {
			continue
		}
		fmt.Fprintf(w, "🧹 Cleanup for user: %s (%s)\n", res.acct.User, res.acct.DID)
		for j, fx := range p.fixes {
			fixes++
			switch {
			case dryRun:
				fmt.Fprintf(w, "  would %s\n", describeFix(res.acct.DID, fx))
			case j < len(p.results):
				o := outcome(p.results[j])
				if o == "done" {
					done++
				}
				fmt.Fprintf(w, "  %s: %s\n", describeFix(res.acct.DID, fx), o)
			default:
				fmt.Fprintf(w, "  %s: not started\n", describeFix(res.acct.DID, fx))
			}
		}
		for _, n := range notices {
			left++
			fmt.Fprintf(w, "  leave %s record %s: %s\n", noticeNames[n.Class], model.URI(res.acct.DID, n.Rkey), n.Detail)
		}
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: would carry out %s; %s left alone; nothing changed\n",
			plural(fixes, "fix", "fixes"), plural(left, "record", "records"))
	} else {
		fmt.Fprintf(w, "cleanup: %d of %s done; %s left alone\n", done, plural(fixes, "fix", "fixes"), plural(left, "record", "records"))
	}
	if backfill > 0 {
		fmt.Fprintf(w, "%s not synced: run moodsync backfill\n", plural(backfill, "mood is", "moods are"))
	}
}
