package publisher

import (
	"context"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
)

// TestUpperCaseIDIsTheSameMood: intents naming one mood in upper and in
// lower case behave exactly alike: each is applied (no dead letter), and
// together they make the mood's one record.
func TestUpperCaseIDIsTheSameMood(t *testing.T) {
	r := newInputRig(t, devenv.NewNATS(t))
	id := r.mood()
	r.publishRaw("moods.intent.create", []byte(`{"op":"create","mongoId":"`+strings.ToUpper(id)+`","user":"auth0|alice"}`))
	r.publishRaw("moods.intent.create", []byte(`{"op":"create","mongoId":"`+id+`","user":"auth0|alice"}`))
	r.run()
	r.drained()

	recs, err := r.pds.ListRecords(context.Background(), r.acct.DID)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Value.MoodID() != id || r.store.Mood(id).Rkey != recs[0].Rkey {
		t.Fatalf("records %+v, mood %+v: want the mood's one record, linked", recs, r.store.Mood(id))
	}
	if dead := DeadLetters(t, r.js); len(dead) != 0 {
		t.Fatalf("%d dead letters: %s", len(dead), dead[0].Header.Get(HeaderReason))
	}

	// Deleting by the upper-case id deletes the record.
	m := *r.store.Mood(id)
	m.Deleted = true
	r.store.PutMood(m)
	r.publishRaw("moods.intent.delete", []byte(`{"op":"delete","mongoId":"`+strings.ToUpper(id)+`","user":"auth0|alice"}`))
	r.drained()
	if recs, _ := r.pds.ListRecords(context.Background(), r.acct.DID); len(recs) != 0 || r.store.Mood(id).Rkey != "" {
		t.Fatalf("after a delete by the upper-case id: %d records, mood %+v", len(recs), r.store.Mood(id))
	}
}
