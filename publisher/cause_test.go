package publisher

import (
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// TestStrongestCause: one pass answers several reconcile intents of a
// user; a restored PDS's cause wins, and the periodic pass's (which may
// skip reading the repo) never stands in for another.
func TestStrongestCause(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want reconcile.Cause
	}{
		{[]string{"periodic"}, reconcile.CausePeriodic},
		{[]string{"periodic", "periodic"}, reconcile.CausePeriodic},
		{[]string{"periodic", "gap"}, reconcile.CauseGap},
		{[]string{"gap", "periodic"}, reconcile.CauseGap},
		{[]string{"periodic", ""}, reconcile.CauseIntent},
		{[]string{"periodic", "full"}, reconcile.CauseFull},
		{[]string{"gap", "future-cursor", "periodic"}, reconcile.CauseFutureCursor},
		{[]string{"periodic", "future-cursor", "gap"}, reconcile.CauseFutureCursor},
	} {
		if got := strongestCause(c.in); got != c.want {
			t.Errorf("strongestCause(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
