package publisher_test

import (
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// TestOneIntentIsOnePDSWrite: a lone create intent costs one createRecord
// and no read (the key is read only when the PDS refuses it), and a lone
// delete intent one read (of the CID it deletes) and one deleteRecord;
// neither goes through a refused applyWrites first. Counted at a proxy in
// front of the real PDS.
func TestOneIntentIsOnePDSWrite(t *testing.T) {
	h := newHarness(t)
	alice := h.pds.CreateUser(t, h.store)
	id := devenv.InsertMood(t, h.store, alice.User, "one at a time", when)
	h.start()

	h.publish(create(alice.User, id))
	h.drained(15 * time.Second)
	if h.mood(id).Rkey == "" {
		t.Fatal("rkey not stored")
	}
	counts := func() (creates, applies, deletes, reads int) {
		return h.proxy.Count("com.atproto.repo.createRecord"), h.proxy.Count("com.atproto.repo.applyWrites"),
			h.proxy.Count("com.atproto.repo.deleteRecord"), h.proxy.Count("com.atproto.repo.getRecord")
	}
	if c, a, d, r := counts(); c != 1 || a != 0 || d != 0 || r != 0 {
		t.Fatalf("create intent: createRecord %d, applyWrites %d, deleteRecord %d, getRecord %d; want 1, 0, 0, 0", c, a, d, r)
	}

	devenv.SoftDelete(t, h.store, id)
	h.publish(intent.Intent{Op: intent.OpDelete, User: alice.User, MongoID: id})
	h.drained(15 * time.Second)
	if m := h.mood(id); m.Rkey != "" || len(h.records(alice.DID)) != 0 {
		t.Fatalf("after the delete intent: mood %+v, records %d", m, len(h.records(alice.DID)))
	}
	if c, a, d, r := counts(); c != 1 || a != 0 || d != 1 || r != 1 {
		t.Fatalf("delete intent: createRecord %d, applyWrites %d, deleteRecord %d, getRecord %d in all; want 1, 0, 1, 1", c, a, d, r)
	}
}
