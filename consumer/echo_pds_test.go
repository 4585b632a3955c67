package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
)

// The publisher's writes come back on the firehose. Both sides act on the
// same moods through one engine and must agree: every echo is a confirm
// (or, when it overtakes the publisher's own compare-and-set, a repair to
// the very same rkey), never a duplicate, an orphan or a PDS-side delete.
func TestPublisherWritesAndTheirFirehoseEchoesNeverFight(t *testing.T) {
	e := newEnv(t)
	users := []*devenv.Account{e.pds.CreateUser(t, e.store), e.pds.CreateUser(t, e.store)}
	c := e.start(t)
	reconcilesAtStart := c.Stats().UserReconciles

	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	pub := publisher.New(js, e.engine, publisher.Config{}, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pub.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const n = 100
	var ids []string
	for i := 0; i < n; i++ {
		u := users[i%2]
		id := devenv.InsertMood(t, e.store, u.User, "echo", when.Add(time.Duration(i)*time.Second))
		ids = append(ids, id)
		if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: id, User: u.User}); err != nil {
			t.Fatal(err)
		}
	}
	devenv.Eventually(t, 60*time.Second, "every mood has its rkey", func() bool {
		moods, err := e.store.Moods(ctx, ids)
		if err != nil || len(moods) != n {
			return false
		}
		for _, m := range moods {
			if m.Rkey == "" {
				return false
			}
		}
		return true
	})
	echoes := func() int64 {
		v := c.Stats().Verdicts
		return v[reconcile.ClassSynced] + v[reconcile.ClassUnlinked]
	}
	// Every echo reaches the consumer: as a confirm or repair, or — when an
	// op ran past its bound on a loaded machine — as part of a user handed
	// to the reconcile queue (trouble.go), whose reconcile confirms instead.
	devenv.Eventually(t, 30*time.Second, "every echo seen", func() bool { return c.Stats().MoodOps >= n })

	st := c.Stats()
	v := st.Verdicts
	t.Logf("echo verdicts: %v; %d hand-offs", v, st.HandOffs)
	// A whole-user reconcile meanwhile (the consumer runs one when a repo's
	// chain is new to it, or hands a user off) confirms records too;
	// without one, the echoes are exactly the confirms and repairs.
	if extra := st.UserReconciles - reconcilesAtStart + st.HandOffs; echoes() != n && extra == 0 {
		t.Fatalf("want %d confirms+repairs, got %d (%v; %d user reconciles and hand-offs since start)", n, echoes(), v, extra)
	}
	for _, bad := range []reconcile.Class{reconcile.ClassDuplicate, reconcile.ClassOrphan, reconcile.ClassDeletedOnPDS, reconcile.ClassInvalid, reconcile.ClassSpoof} {
		if v[bad] != 0 {
			t.Errorf("%d %s verdicts from the publisher's own writes", v[bad], bad)
		}
	}
	moods, err := e.store.Moods(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		recs, err := e.pds.Records(ctx, u.DID)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != n/2 {
			t.Fatalf("%s has %d records, want %d", u.User, len(recs), n/2)
		}
		for _, r := range recs {
			m := moods[r.Value.MoodID()]
			if m == nil || m.Rkey != r.Rkey || m.Deleted {
				t.Fatalf("record %s does not match its mood %+v", r.Rkey, m)
			}
		}
	}
}
