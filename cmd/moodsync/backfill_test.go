package main

import (
	"bytes"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// TestBackfillCLIGolden checks backfill's help, a bad --rate and its dry
// run for a fixed compare against golden files, and --limit.
func TestBackfillCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"backfill-help.golden", []string{"backfill", "-h"}, 0},
		{"backfill-bad-rate.golden", []string{"backfill", "--rate", "fast"}, 1},
	})
	t.Run("backfill-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeBackfillPlan(&out, fixedCompare(reconcile.ScopeBackfill))
		golden(t, "backfill-dry-run.golden", out.Bytes())
	})
	t.Run("backfill-limit", func(t *testing.T) {
		n := 0
		limit := limitCreates(1)
		for _, p := range fixedCompare(reconcile.ScopeBackfill) {
			for _, fx := range limit(p.plan.Fixes) {
				if fx.Kind == reconcile.FixCreate {
					n++
				}
			}
		}
		if n != 1 {
			t.Fatalf("--limit 1 planned %d creates", n)
		}
	})
}
