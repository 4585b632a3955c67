package publisher

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// oneLetter waits for the intent to settle and returns its one dead
// letter's reason; it fails unless there is exactly one.
func (r *inputRig) oneLetter() string {
	r.t.Helper()
	r.drained()
	letters := DeadLetters(r.t, r.js)
	if len(letters) != 1 {
		r.t.Fatalf("%d dead letters, want 1", len(letters))
	}
	return letters[0].Header.Get(HeaderReason)
}

// TestNoFreeRkeyIsOneDeadLetter: every deterministic key of a mood holds
// another mood's record, so no retry can ever write it: one dead letter
// whose reason says what to do, and no loop of PDS writes.
func TestNoFreeRkeyIsOneDeadLetter(t *testing.T) {
	r := newInputRig(t, devenv.NewNATS(t))
	id := r.mood()
	m := r.store.Mood(id)
	for i := range model.MaxRkeyProbes {
		r.pds.Put(r.acct.DID, model.Record{Rkey: model.Rkey(m, i), Value: model.RecordValue{
			Type: model.Collection, Mood: "someone else's", When: "2025-10-14T19:30:00.000Z", Ref: "507f1f77bcf86cd7994390ff"}})
	}
	r.run()
	r.publishRaw(intent.SubjectPrefix+intent.OpCreate, []byte(`{"op":"create","mongoId":"`+id+`","user":"`+r.acct.User+`"}`))
	reason := r.oneLetter()
	if !strings.Contains(reason, "no free rkey") || !strings.Contains(reason, "moodsync status --user "+r.acct.User) {
		t.Fatalf("reason %q: want the cause and what to do", reason)
	}
}

// refusingStore refuses every rkey update as a MongoDB validator does.
type refusingStore struct{ *reconciletest.Store }

func (refusingStore) SetRkey(context.Context, string, string) (bool, error) {
	return false, mongostore.ClassifyWrite(mongo.WriteException{WriteErrors: []mongo.WriteError{
		{Code: 121, Message: "Document failed validation"}}})
}

// TestRefusedMongoUpdateIsOneDeadLetter: MongoDB refuses the rkey update
// for the document itself (a validator): the same write would be refused
// on every retry, so the intent is one dead letter naming the refusal.
func TestRefusedMongoUpdateIsOneDeadLetter(t *testing.T) {
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	r := newRigOn(t, devenv.NewNATS(t), reconcile.NewEngine(refusingStore{store}, pds, nil))
	r.store, r.pds, r.acct = store, pds, model.Account{User: "auth0|alice", DID: "did:plc:alice"}
	r.store.PutAccount(r.acct)
	id := r.mood()
	r.run()
	r.publishRaw(intent.SubjectPrefix+intent.OpCreate, []byte(`{"op":"create","mongoId":"`+id+`","user":"`+r.acct.User+`"}`))
	reason := r.oneLetter()
	if !strings.Contains(reason, "MongoDB refused the write (code 121") || !strings.Contains(reason, "moodsync status --user") {
		t.Fatalf("reason %q: want the refusal and what to do", reason)
	}
}

// TestClassifyWrite: only MongoDB's answers about the document itself are
// permanent; a network failure is not.
func TestClassifyWrite(t *testing.T) {
	refused := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 121, Message: "Document failed validation"}}}
	if !model.IsPermanent(mongostore.ClassifyWrite(refused)) {
		t.Error("a validation failure is not permanent")
	}
	dup := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "duplicate key"}}}
	if model.IsPermanent(mongostore.ClassifyWrite(dup)) {
		t.Error("a duplicate key is classified permanent")
	}
	if model.IsPermanent(mongostore.ClassifyWrite(context.DeadlineExceeded)) {
		t.Error("a timeout is classified permanent")
	}
}
