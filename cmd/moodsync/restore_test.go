package main

import (
	"bytes"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// TestRestoreCLIGolden checks restore's help, its refusal without users
// named, and its dry run for a fixed compare against golden files.
func TestRestoreCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"restore-help.golden", []string{"restore", "-h"}, 0},
		{"restore-no-users.golden", []string{"restore"}, 1},
	})
	t.Run("restore-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeRestore(&out, fixedCompare(reconcile.ScopeRestore), true)
		golden(t, "restore-dry-run.golden", out.Bytes())
	})
}
