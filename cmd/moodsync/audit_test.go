package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// TestAuditCLIGolden checks audit's help, its refusal without a PDS, and the
// text and JSON it prints for a fixed compare, against golden files.
func TestAuditCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"audit-help.golden", []string{"audit", "-h"}, 0},
		{"audit-no-pds.golden", []string{"audit"}, 1},
	})
	results := fixedCompare(reconcile.ScopeAll)
	t.Run("audit-text.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeAuditText(&out, newAuditOutput(results))
		golden(t, "audit-text.golden", out.Bytes())
	})
	t.Run("audit-json.golden", func(t *testing.T) {
		out, err := json.MarshalIndent(newAuditOutput(results), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "audit-json.golden", append(out, '\n'))
	})
}
