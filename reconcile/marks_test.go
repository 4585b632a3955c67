package reconcile_test

import (
	"context"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestReconcileIsRecordedOnTheBinding: a reconcile that may change things
// leaves its time, cause, drift and fixes on the user's binding, a failed
// one its error; a dry run (audit, status) leaves nothing.
func TestReconcileIsRecordedOnTheBinding(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, alice, "")
	last := func() *model.ReconcileMark {
		t.Helper()
		b, err := p.store.Binding(ctx, alice)
		if err != nil || b == nil {
			t.Fatalf("binding %v, %v", b, err)
		}
		return b.LastReconcile
	}

	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CausePeriodic, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	m := last()
	if m == nil || m.At.IsZero() || m.Cause != string(reconcile.CausePeriodic) || m.Drift != 1 || m.Fixed != 1 || m.Error != "" {
		t.Fatalf("after a reconcile that wrote one record: %+v", m)
	}

	p.live(mood2, alice, "")
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseOperator, reconcile.ReconcileOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if got := last(); *got != *m {
		t.Fatalf("a dry run was recorded: %+v, before %+v", got, m)
	}

	p.pds.SetStatus(aDID, model.StatusDeactivated)
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err == nil {
		t.Fatal("reconcile of a deactivated repo succeeded")
	}
	got := last()
	if got.Cause != string(reconcile.CauseIntent) || got.Error == "" || got.At.Before(m.At) {
		t.Fatalf("a failed reconcile recorded as %+v", got)
	}
}
