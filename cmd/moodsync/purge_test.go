package main

import "testing"

// TestPurgeCLIGolden checks purge's help and refusals against golden files.
func TestPurgeCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"purge-help.golden", []string{"purge", "-h"}, 0},
		{"purge-no-yes.golden", []string{"purge", "--user", "auth0|1"}, 2},
		{"purge-no-user.golden", []string{"purge", "--yes"}, 2},
	})
}
