package main

import (
	"bytes"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// TestCleanupCLIGolden checks cleanup's help, its refusals and its dry run
// for a fixed compare against golden files.
func TestCleanupCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"cleanup-help.golden", []string{"cleanup", "-h"}, 0},
		{"cleanup-delete-lost-no-user.golden", []string{"cleanup", "--delete-lost"}, 1},
		{"cleanup-all-alone.golden", []string{"cleanup", "--all"}, 1},
	})
	t.Run("cleanup-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeCleanup(&out, fixedCompare(reconcile.ScopeCleanup), true)
		golden(t, "cleanup-dry-run.golden", out.Bytes())
	})
}
