package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/whistlegraph/moodsync/reconcile"
)

// restoreCommand brings lost moods back into Mongo from their records: a
// record whose ref names no document (Mongo restored from a backup, a
// document deleted by hand) becomes {_id: ref, user, mood, when, atproto:
// {rkey}} again. It only inserts where no document with that _id exists,
// never overwrites, never for a mood a purge erased; run again it adds
// nothing. It is the whole-user reconcile with the restore scope.
type restoreCommand struct {
	stdout, stderr io.Writer

	// restored, when set, is told how many fixes were just carried out
	// (tests interrupt a run with it).
	restored func(n int)
}

func (c *restoreCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("restore", c.stderr, false)
	var all, dryRun bool
	var rateFlag string
	var rate float64
	f.fs.BoolVar(&all, "all", false, "every user with a PDS account (or name one with --user)")
	f.fs.BoolVar(&dryRun, "dry-run", false, "print what would be restored, and change nothing")
	f.fs.StringVar(&rateFlag, "rate", "", "at most N moods restored a second over all users, e.g. 50/s (default: no limit)")
	env, results, err := f.reconcile(ctx, args, c.stderr, func() (err error) {
		if all == (f.user != "") {
			return errors.New("name the users: --user SUB, or --all")
		}
		rate, err = parseRate(rateFlag)
		return err
	}, func() reconcile.ReconcileOptions {
		o := reconcile.ReconcileOptions{Scope: reconcile.ScopeRestore, Lost: reconcile.LostRestore, DryRun: dryRun,
			Fix: reconcile.FixOptions{Progress: c.restored}}
		if pc := newPacer(rate); pc != nil {
			o.Fix.Pace = pc.wait
		}
		return o
	})
	if err != nil {
		return err
	}
	defer env.in.Close()
	writeRestore(c.stdout, results, dryRun)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (run it again to finish): %w", err)
	}
	if n := unfinished(results); n > 0 {
		return fmt.Errorf("%d users not finished (run it again to finish)", n)
	}
	return nil
}

// writeRestore prints, per user with lost moods, what was (or would be)
// restored, and a total in the audit's words.
func writeRestore(w io.Writer, results []compared, dryRun bool) {
	var restored, present, erased, failed, lost int
	for _, res := range results {
		if res.err != nil {
			fmt.Fprintf(w, "🛟 %s (%s): could not compare: %v\n", res.acct.User, res.acct.DID, res.err)
			continue
		}
		n := len(res.report.Of(reconcile.ClassLost))
		if n == 0 {
			continue
		}
		lost += n
		fmt.Fprintf(w, "🛟 Restore for user: %s (%s): %s\n", res.acct.User, res.acct.DID, plural(n, "lost mood", "lost moods"))
		if len(res.plan.Fixes) < n {
			k := n - len(res.plan.Fixes)
			erased += k
			fmt.Fprintf(w, "  ⛔ %s erased by a purge: not restored (their records are deleted)\n", plural(k, "mood was", "moods were"))
		}
		for j, fx := range res.plan.Fixes {
			switch {
			case dryRun:
				fmt.Fprintf(w, "  would %s\n", fx.Describe(res.acct.DID))
			case j >= len(res.results):
				failed++
				fmt.Fprintf(w, "  %s: not started\n", fx.Describe(res.acct.DID))
			default:
				r := res.results[j]
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(w, "  %s: failed: %v\n", fx.Describe(res.acct.DID), r.Err)
				case r.Verdict == reconcile.ClassLost:
					restored++
					fmt.Fprintf(w, "  %s: done\n", fx.Describe(res.acct.DID))
				case r.Verdict == reconcile.ClassIgnored:
					erased++
					fmt.Fprintf(w, "  %s: refused: erased by a purge\n", fx.Describe(res.acct.DID))
				default:
					present++
					fmt.Fprintf(w, "  %s: a document with this id exists now; left as it is\n", fx.Describe(res.acct.DID))
				}
			}
		}
	}
	if dryRun {
		fmt.Fprintf(w, "📊 Restore (dry run): %s; would restore %d; nothing changed\n", plural(lost, "lost mood", "lost moods"), lost-erased)
		return
	}
	fmt.Fprintf(w, "📊 Restore: %s; restored %d, already present %d, erased by purge %d, not done %d\n",
		plural(lost, "lost mood", "lost moods"), restored, present, erased, failed)
}
