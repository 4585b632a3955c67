package reconcile_test

import (
	"context"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// An upper-case mongoId names the same mood as its lower-case form
// (DESIGN.md, "Bad input"): a record whose ref is written in upper case
// (other tools wrote some) is the mood's record, never an orphan.
func TestUpperCaseRefIsTheSameMood(t *testing.T) {
	upper := strings.ToUpper(mood1)

	t.Run("firehose create links it", func(t *testing.T) {
		p := newParts()
		p.live(mood1, alice, "")
		op := p.write(aDID, "r1", upper)
		expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassUnlinked)
		if got := p.store.Mood(mood1).Rkey; got != "r1" || !p.pds.Has(aDID, "r1") {
			t.Fatalf("rkey %q, record kept %v", got, p.pds.Has(aDID, "r1"))
		}
		expect(t, p.upsert(t, aliceAcct, p.write(aDID, "r1", mood1)), reconcile.ClassSynced)
	})

	t.Run("firehose create of a second record is a duplicate", func(t *testing.T) {
		p := newParts()
		p.live(mood1, alice, "r1")
		p.write(aDID, "r1", mood1)
		expect(t, p.upsert(t, aliceAcct, p.write(aDID, "r2", upper)), reconcile.ClassDuplicate)
		if !p.pds.Has(aDID, "r1") || p.store.Mood(mood1).Rkey != "r1" {
			t.Fatal("the mood's own record was not kept")
		}
	})

	t.Run("whole-user reconcile", func(t *testing.T) {
		p := newParts()
		p.live(mood1, alice, "r1")
		p.write(aDID, "r1", upper)
		p.live(mood2, alice, "")
		p.write(aDID, "r2", strings.ToUpper(mood2))
		out, err := p.engine.ReconcileUser(context.Background(), alice, reconcile.CauseGap, reconcile.ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(out.Report.Of(reconcile.ClassOrphan)) + len(out.Report.Of(reconcile.ClassStaleRkey)) + len(out.Report.Of(reconcile.ClassNotSynced)); n != 0 {
			t.Fatalf("%d upper-case refs taken for other moods' records: %+v", n, out.Report)
		}
		if len(out.Report.Of(reconcile.ClassUnlinked)) != 1 || p.store.Mood(mood2).Rkey != "r2" {
			t.Fatalf("mood2 not linked to its record: %+v", out.Report)
		}
		if !p.pds.Has(aDID, "r1") || !p.pds.Has(aDID, "r2") || p.store.Mood(mood1).Deleted {
			t.Fatal("a record or a mood was deleted")
		}
	})
}
