package publisher

import (
	"context"
	"testing"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// TestPendingOfReadsAUsersIntentsWithoutTakingThem: the intents naming a
// user are counted and listed, in flight or waiting, acknowledged ones are
// gone, a bounded scan says it is incomplete, and reading takes nothing
// from the work queue.
func TestPendingOfReadsAUsersIntentsWithoutTakingThem(t *testing.T) {
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	ctx := context.Background()
	const alice, bob = "auth0|alice", "auth0|bob"
	if p, err := PendingOf(ctx, js, alice, 100, 10); err != nil || p.Count != 0 || !p.Complete {
		t.Fatalf("no stream: %+v, %v", p, err)
	}
	cons, err := EnsureConsumer(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := "507f1f77bcf86cd799439011"
	raw := func(subject, data string) {
		if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(in intent.Intent) {
		if err := intent.Publish(ctx, js, in); err != nil {
			t.Fatal(err)
		}
	}
	publish(intent.Intent{Op: intent.OpCreate, MongoID: id, User: alice}) // 1: acknowledged below
	publish(intent.Intent{Op: intent.OpCreate, MongoID: id, User: alice}) // 2: in flight
	publish(intent.Intent{Op: intent.OpCreate, MongoID: id, User: bob})
	raw("moods.intent.create", `{"op":"create",`)
	publish(intent.Intent{Op: intent.OpReconcile, User: alice, Cause: "gap"})
	raw("moods.intent.delete", `{"op":"delete","user":"auth0|alice","mongoId":7}`)
	publish(intent.Intent{Op: intent.OpDelete, MongoID: id, User: alice})

	batch, err := cons.FetchNoWait(2)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n == 0 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n != 2 {
		t.Fatalf("fetched %d", n)
	}

	p, err := PendingOf(ctx, js, alice, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 4 || p.Waiting != 6 || p.Scanned != 6 || !p.Complete || len(p.Intents) != 2 {
		t.Fatalf("pending of alice: %+v", p)
	}
	if first := p.Intents[0]; first.Seq != 2 || first.Op != intent.OpCreate || first.MongoID != id || first.Subject != "moods.intent.create" || first.Time.IsZero() {
		t.Fatalf("first pending intent: %+v", first)
	}
	if second := p.Intents[1]; second.Seq != 5 || second.Op != intent.OpReconcile || second.Cause != "gap" {
		t.Fatalf("second pending intent: %+v", second)
	}
	if p, _ := PendingOf(ctx, js, alice, 3, 10); p.Complete || p.Scanned != 3 || p.Count != 1 {
		t.Fatalf("scan of 3: %+v", p)
	}

	// Nothing was taken: the publisher's consumer still has the five it
	// was not given, and the stream all six.
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 5 || info.NumAckPending != 1 {
		t.Fatalf("consumer after reading: %d pending, %d in flight", info.NumPending, info.NumAckPending)
	}
	if n, err := Unfinished(ctx, js); n != 6 || err != nil {
		t.Fatalf("Unfinished: %d, %v; want the 5 waiting and the 1 in flight", n, err)
	}
}
