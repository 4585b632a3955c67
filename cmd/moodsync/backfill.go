package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// backfillCommand writes records for live moods that have none, through the
// publisher's write path (deterministic rkeys, applyWrites batches), and
// links moods whose record already exists. Run again after an interruption
// it finishes without duplicates: the compare sees what was written.
type backfillCommand struct {
	stdout, stderr io.Writer

	// written, when set, is told how many fixes were just carried out
	// (tests interrupt a run with it).
	written func(n int)
}

func (c *backfillCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("backfill", c.stderr, false)
	var limit int
	var dryRun bool
	var rateFlag string
	var rate float64
	f.fs.IntVar(&limit, "limit", 0, "write at most N records (0: no limit)")
	f.fs.BoolVar(&dryRun, "dry-run", false, "print exactly what would be written, and write nothing")
	f.fs.StringVar(&rateFlag, "rate", "", "at most N records written a second over all users, e.g. 50/s (default: no limit)")
	env, results, err := f.reconcile(ctx, args, c.stderr, func() (err error) {
		rate, err = parseRate(rateFlag)
		return err
	}, func() reconcile.ReconcileOptions {
		o := reconcile.ReconcileOptions{Scope: reconcile.ScopeBackfill, DryRun: dryRun,
			Select: limitCreates(limit),
			Fix:    reconcile.FixOptions{Progress: c.written}}
		if pc := newPacer(rate); pc != nil {
			o.Fix.Pace = pc.wait
			o.Fix.Chunk = max(1, min(reconcile.MaxBatch, int(rate)))
		}
		return o
	})
	if err != nil {
		return err
	}
	defer env.in.Close()
	if dryRun {
		writeBackfillPlan(c.stdout, results)
		return comparedError(results)
	}
	writeBackfillResults(c.stdout, results)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (run it again to finish): %w", err)
	}
	if n := unfinished(results); n > 0 {
		return fmt.Errorf("%d users not finished (run it again to finish)", n)
	}
	return nil
}

// limitCreates keeps at most limit creates over every user (0: no limit);
// links are free.
func limitCreates(limit int) func([]reconcile.Fix) []reconcile.Fix {
	if limit <= 0 {
		return nil
	}
	var mu sync.Mutex
	left := limit
	return func(fixes []reconcile.Fix) []reconcile.Fix {
		mu.Lock()
		defer mu.Unlock()
		kept := fixes[:0:0]
		for _, fx := range fixes {
			if fx.Kind == reconcile.FixCreate {
				if left == 0 {
					continue
				}
				left--
			}
			kept = append(kept, fx)
		}
		return kept
	}
}

// comparedError reports users that could not be compared.
func comparedError(results []compared) error {
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.acct.User, r.err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d users could not be compared: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// writeBackfillPlan prints what a backfill would write: every record in
// full, and every link.
func writeBackfillPlan(w io.Writer, results []compared) {
	creates, links := 0, 0
	for _, p := range results {
		if p.err != nil {
			fmt.Fprintf(w, "%s (%s): could not compare: %v\n", p.acct.User, p.acct.DID, p.err)
			continue
		}
		for _, fx := range p.plan.Fixes {
			uri := model.URI(p.acct.DID, fx.Rkey)
			switch fx.Kind {
			case reconcile.FixCreate:
				creates++
				body, _ := json.Marshal(fx.Value)
				fmt.Fprintf(w, "create %s %s\n", uri, body)
			case reconcile.FixLink:
				links++
				fmt.Fprintf(w, "link mood %s to existing %s\n", fx.MoodID, uri)
			}
		}
	}
	fmt.Fprintf(w, "dry run: would create %s and link %s; nothing written\n",
		plural(creates, "record", "records"), plural(links, "mood", "moods"))
}

// writeBackfillResults prints a line per user that had work, and a total.
func writeBackfillResults(w io.Writer, results []compared) {
	var created, linked, failed, changed int
	for _, p := range results {
		if p.err != nil {
			fmt.Fprintf(w, "%s (%s): could not compare: %v\n", p.acct.User, p.acct.DID, p.err)
			continue
		}
		if len(p.plan.Fixes) == 0 {
			continue
		}
		var c, l, f, ch int
		for _, r := range p.results {
			switch {
			case r.Err != nil:
				f++
			case r.Changed():
				ch++
			case r.Fix.Kind == reconcile.FixCreate:
				c++
			case r.Fix.Kind == reconcile.FixLink:
				l++
			}
		}
		f += len(p.plan.Fixes) - len(p.results) // never started
		fmt.Fprintf(w, "%s: created %d, linked %d", p.acct.User, c, l)
		if ch > 0 {
			fmt.Fprintf(w, ", %d changed meanwhile", ch)
		}
		if f > 0 {
			fmt.Fprintf(w, ", %d not done", f)
		}
		fmt.Fprintln(w)
		created, linked, failed, changed = created+c, linked+l, failed+f, changed+ch
	}
	fmt.Fprintf(w, "backfill: created %s, linked %s", plural(created, "record", "records"), plural(linked, "mood", "moods"))
	if changed > 0 {
		fmt.Fprintf(w, ", %d changed meanwhile", changed)
	}
	if failed > 0 {
		fmt.Fprintf(w, ", %d not done", failed)
	}
	fmt.Fprintln(w)
}
