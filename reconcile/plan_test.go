package reconcile

import (
	"fmt"
	"maps"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestPlanFixesByCause: a live mood whose record is missing is soft-deleted
// for most causes, rewritten after a restore or a DID change, and the
// mass-delete guard holds every soft delete of a user over its bound.
func TestPlanFixesByCause(t *testing.T) {
	var moods []*model.Mood
	for i := 1; i <= 12; i++ {
		moods = append(moods, cmpMood(i, fmt.Sprintf("3kaaaaaaaa%03d", i), false))
	}
	r := Compare(model.Account{User: owner, DID: "did:plc:alice"}, moods, nil, nil)
	kinds := func(fixes []Fix) map[FixKind]int {
		out := map[FixKind]int{}
		for _, f := range fixes {
			out[f.Kind]++
		}
		return out
	}
	cases := []struct {
		name      string
		policy    Policy
		want      map[FixKind]int
		wantHeld  int
		moodCount int
	}{
		{"gap over the guard: none soft-deleted", Policy{Cause: CauseGap, MassDeleteLimit: 10}, map[FixKind]int{}, 12, 12},
		{"operator allows it", Policy{Cause: CauseOperator, MassDeleteLimit: 10, AllowMassDelete: true}, map[FixKind]int{FixSoftDelete: 12}, 0, 12},
		{"within the guard", Policy{Cause: CausePeriodic, MassDeleteLimit: 12}, map[FixKind]int{FixSoftDelete: 12}, 0, 12},
		{"restored PDS: rewritten", Policy{Cause: CauseFutureCursor, MassDeleteLimit: 10}, map[FixKind]int{FixRewrite: 12}, 0, 12},
		{"changed DID: rewritten", Policy{Cause: CauseDIDChanged, MassDeleteLimit: 10}, map[FixKind]int{FixRewrite: 12}, 0, 12},
		{"cleanup writes nothing", Policy{Cause: CauseFutureCursor, MassDeleteLimit: 10, Scope: ScopeCleanup}, map[FixKind]int{}, 0, 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PlanFixes(r, c.policy)
			if got := kinds(p.Fixes); !maps.Equal(got, c.want) {
				t.Errorf("fixes %v, want %v", got, c.want)
			}
			if len(p.Held) != c.wantHeld {
				t.Errorf("held %d, want %d", len(p.Held), c.wantHeld)
			}
		})
	}
}
