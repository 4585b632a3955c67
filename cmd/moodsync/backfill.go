package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

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
	env, results, err := f.compare(ctx, args, c.stderr, func() (err error) {
		rate, err = parseRate(rateFlag)
		return err
	})
	if err != nil {
		return err
	}
	defer env.in.Close()
	plans := planBackfill(results, limit)
	if dryRun {
		writeBackfillPlan(c.stdout, plans)
		return plansError(plans)
	}
	total := 0
	for _, p := range plans {
		total += len(p.fixes)
	}
	bar := newProgress(c.stderr, "backfilling moods", total)
	fo := reconcile.FixOptions{Progress: func(n int) {
		bar.Add(n)
		if c.written != nil {
			c.written(n)
		}
	}}
	if pc := newPacer(rate); pc != nil {
		fo.Pace = pc.wait
		fo.Chunk = max(1, min(reconcile.MaxBatch, int(rate)))
	}
	var failed atomic.Int64
	eachAccount(ctx, accountsOf(plans), f.concurrency, func(i int, acct model.Account) {
		p := &plans[i]
		if p.err != nil || len(p.fixes) == 0 {
			return
		}
		p.results = env.engine.ApplyFixes(ctx, acct, p.fixes, fo)
		if err := reconcile.FixErrors(p.results); err != nil {
			failed.Add(1)
			env.log.Warn("backfill: user not finished", "user", acct.User, "did", acct.DID, "err", err)
		}
	})
	bar.Finish()
	writeBackfillResults(c.stdout, plans)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (run it again to finish): %w", err)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d users not finished (run it again to finish)", n)
	}
	return plansError(plans)
}

// userPlan is the fixes for one user and, once run, their results.
type userPlan struct {
	acct    model.Account
	fixes   []reconcile.Fix
	results []reconcile.FixResult
	err     error // the compare failed
}

func accountsOf(plans []userPlan) []model.Account {
	out := make([]model.Account, len(plans))
	for i, p := range plans {
		out[i] = p.acct
	}
	return out
}

// plansError reports users whose compare failed.
func plansError(plans []userPlan) error {
	var errs []error
	for _, p := range plans {
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.acct.User, p.err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d users could not be compared: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// planBackfill plans every user's backfill; with limit > 0 only the first
// limit records are written (users in order, links are free).
func planBackfill(results []compared, limit int) []userPlan {
	plans := make([]userPlan, len(results))
	left := limit
	for i, res := range results {
		plans[i] = userPlan{acct: res.acct, err: res.err}
		if res.err != nil {
			continue
		}
		for _, fx := range reconcile.PlanBackfill(res.report) {
			if fx.Kind == reconcile.FixCreate && limit > 0 {
				if left == 0 {
					continue
				}
				left--
			}
			plans[i].fixes = append(plans[i].fixes, fx)
		}
	}
	return plans
}

// writeBackfillPlan prints what a backfill would write: every record in
// full, and every link.
func writeBackfillPlan(w io.Writer, plans []userPlan) {
	creates, links := 0, 0
	for _, p := range plans {
		if p.err != nil {
			fmt.Fprintf(w, "%s (%s): could not compare: %v\n", p.acct.User, p.acct.DID, p.err)
			continue
		}
		for _, fx := range p.fixes {
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
func writeBackfillResults(w io.Writer, plans []userPlan) {
	var created, linked, failed, changed int
	for _, p := range plans {
		if p.err != nil {
			fmt.Fprintf(w, "%s (%s): could not compare: %v\n", p.acct.User, p.acct.DID, p.err)
			continue
		}
		if len(p.fixes) == 0 {
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
		f += len(p.fixes) - len(p.results) // never started
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
