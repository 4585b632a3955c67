package reconcile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

const (
	alice = "auth0|alice"
	bob   = "auth0|bob"
	aDID  = "did:plc:alice"
	bDID  = "did:plc:bob"
	mood1 = "507f1f77bcf86cd799439011"
	mood2 = "507f1f77bcf86cd799439012"
)

type parts struct {
	store    *reconciletest.Store
	pds      *reconciletest.PDS
	engine   *reconcile.Engine
	observed map[string]int
	mu       sync.Mutex
}

func newParts() *parts {
	p := &parts{store: reconciletest.NewStore(), pds: reconciletest.NewPDS(), observed: map[string]int{}}
	p.engine = reconcile.NewEngine(p.store, p.pds, nil)
	p.engine.Observe = func(action string, n int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.observed[action] += n
	}
	p.store.PutAccount(model.Account{User: alice, DID: aDID})
	p.store.PutAccount(model.Account{User: bob, DID: bDID})
	return p
}

var (
	aliceAcct = model.Account{User: alice, DID: aDID}
	bobAcct   = model.Account{User: bob, DID: bDID}
)

func value(ref string) model.RecordValue {
	return model.RecordValue{Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: ref, MongoID: ref}
}

// write puts a record on the fake PDS and returns the op the firehose
// would carry for it.
func (p *parts) write(did, rkey, ref string) reconcile.Upsert {
	v := value(ref)
	p.pds.Put(did, model.Record{Rkey: rkey, Value: v})
	return reconcile.Upsert{Rkey: rkey, Value: &v}
}

func (p *parts) upsert(t *testing.T, acct model.Account, op reconcile.Upsert, opts ...reconcile.Option) reconcile.Class {
	t.Helper()
	v, err := p.engine.ApplyUpsert(context.Background(), acct, op, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (p *parts) live(id, user, rkey string) {
	p.store.PutMood(model.Mood{ID: id, User: user, Text: "sunny", When: time.Unix(0, 0), Rkey: rkey})
}

func expect(t *testing.T, got, want reconcile.Class) {
	t.Helper()
	if got != want {
		t.Fatalf("verdict %s, want %s", got, want)
	}
}

func TestApplyUpsertRepairThenReplayConfirms(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "")
	op := p.write(aDID, "r1", mood1)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassUnlinked)
	if got := p.store.Mood(mood1).Rkey; got != "r1" {
		t.Fatalf("rkey %q", got)
	}
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassSynced)
	if p.observed["verdict_repair"] != 1 || p.observed["verdict_confirm"] != 1 {
		t.Fatalf("observed %v", p.observed)
	}
}

func TestApplyUpsertDuplicateDeletesNewRecord(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "r1")
	p.write(aDID, "r1", mood1)
	op := p.write(aDID, "r2", mood1)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassDuplicate)
	if p.pds.Has(aDID, "r2") || !p.pds.Has(aDID, "r1") {
		t.Fatal("the duplicate should be gone and the stored record kept")
	}
	if got := p.store.Mood(mood1).Rkey; got != "r1" {
		t.Fatalf("rkey %q", got)
	}
}

func TestApplyUpsertDuplicateOfStaleRkeySwaps(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "r1") // r1's record was deleted, the delete not seen yet
	op := p.write(aDID, "r2", mood1)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassDuplicate)
	if !p.pds.Has(aDID, "r2") {
		t.Fatal("the new record must be kept")
	}
	if got := p.store.Mood(mood1).Rkey; got != "r2" {
		t.Fatalf("rkey %q, want the swap to r2", got)
	}
	if p.observed["stale_rkey_swap"] != 1 {
		t.Fatalf("observed %v", p.observed)
	}
}

func TestApplyUpsertSpoofTouchesNothing(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "")
	op := p.write(bDID, "r1", mood1)
	expect(t, p.upsert(t, bobAcct, op), reconcile.ClassSpoof)
	if m := p.store.Mood(mood1); m.Rkey != "" || m.Deleted {
		t.Fatalf("alice's mood changed: %+v", m)
	}
	if !p.pds.Has(bDID, "r1") {
		t.Fatal("bob's record is not ours to delete")
	}
}

func TestApplyUpsertOrphanPolicy(t *testing.T) {
	p := newParts()
	p.store.PutMood(model.Mood{ID: mood1, User: alice, Deleted: true})
	op := p.write(aDID, "r1", mood1)
	expect(t, p.upsert(t, aliceAcct, op, reconcile.KeepOrphans()), reconcile.ClassOrphan)
	if !p.pds.Has(aDID, "r1") {
		t.Fatal("KeepOrphans must keep the record")
	}
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassOrphan)
	if p.pds.Has(aDID, "r1") {
		t.Fatal("orphan not deleted")
	}
	// No document at all: a lost mood, whose record is kept (it may be
	// the only copy left), orphan policy or not.
	op = p.write(aDID, "r2", mood2)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassLost)
	if !p.pds.Has(aDID, "r2") {
		t.Fatal("the record of a lost mood was deleted")
	}
}

// TestApplyUpsertLostOfAnErasedUser: after a purge, a record naming a mood
// the purge erased (a deactivated repo coming back) is deleted; one naming
// a mood created after the purge is kept.
func TestApplyUpsertLostOfAnErasedUser(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	erasedAt, _ := model.IDTime(mood2)
	if err := p.store.SetErased(ctx, alice, aDID, erasedAt); err != nil {
		t.Fatal(err)
	}
	op := p.write(aDID, "r2", mood2)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassLost)
	if p.pds.Has(aDID, "r2") {
		t.Fatal("the record of an erased mood was kept")
	}
	later := "7f0f1f77bcf86cd799439022" // an ObjectID made long after the purge
	op = p.write(aDID, "r3", later)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassLost)
	if !p.pds.Has(aDID, "r3") {
		t.Fatal("the record of a mood created after the purge was deleted")
	}
}

func TestApplyUpsertOrphanRewrittenIsNotDeleted(t *testing.T) {
	p := newParts()
	p.store.PutMood(model.Mood{ID: mood1, User: alice, Deleted: true})
	p.live(mood2, alice, "r1")
	op := p.write(aDID, "r1", mood1) // the event: r1 named mood1, now gone
	p.write(aDID, "r1", mood2)       // since rewritten for mood2
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassOrphan)
	if !p.pds.Has(aDID, "r1") {
		t.Fatal("a replayed orphan verdict deleted a record that now belongs to another mood")
	}
}

func TestApplyUpsertInvalid(t *testing.T) {
	p := newParts()
	p.live(mood1, alice, "")
	bad := value("not-hex")
	for _, op := range []reconcile.Upsert{
		{Rkey: "r1", Invalid: "not CBOR"},
		{Rkey: "r2", Value: &bad},
	} {
		expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassInvalid)
	}
	if p.observed["verdict_invalid"] != 2 {
		t.Fatalf("observed %v", p.observed)
	}
}

// lossyStore makes the first SetRkey lose its compare-and-set to a
// concurrent publisher that stores its own record.
type lossyStore struct {
	*reconciletest.Store
	pds  *reconciletest.PDS
	once sync.Once
}

func (s *lossyStore) SetRkey(ctx context.Context, id, rkey string) (bool, error) {
	lost := false
	s.once.Do(func() {
		s.pds.Put(aDID, model.Record{Rkey: "pub", Value: value(id)})
		s.Store.SetRkey(ctx, id, "pub")
		lost = true
	})
	if lost {
		return false, nil
	}
	return s.Store.SetRkey(ctx, id, rkey)
}

func TestApplyUpsertLostRaceDecidesAgain(t *testing.T) {
	p := newParts()
	p.engine.Store = &lossyStore{Store: p.store, pds: p.pds}
	p.live(mood1, alice, "")
	op := p.write(aDID, "r1", mood1)
	expect(t, p.upsert(t, aliceAcct, op), reconcile.ClassDuplicate)
	if got := p.store.Mood(mood1).Rkey; got != "pub" {
		t.Fatalf("rkey %q: the publisher's record must win", got)
	}
	if p.pds.Has(aDID, "r1") {
		t.Fatal("the losing record must be deleted")
	}
}

func TestApplyDelete(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, alice, "r1")
	p.store.PutMood(model.Mood{ID: mood2, User: alice, Deleted: true, Rkey: "r2"})

	// A replayed delete of a record that exists again changes nothing.
	p.write(aDID, "r1", mood1)
	v, err := p.engine.ApplyDelete(ctx, aliceAcct, "r1")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, v, reconcile.ClassIgnored)
	if m := p.store.Mood(mood1); m.Deleted || m.Rkey != "r1" {
		t.Fatalf("mood changed: %+v", m)
	}

	p.pds.Remove(aDID, "r1")
	v, _ = p.engine.ApplyDelete(ctx, aliceAcct, "r1")
	expect(t, v, reconcile.ClassDeletedOnPDS)
	if m := p.store.Mood(mood1); !m.Deleted || m.Rkey != "" {
		t.Fatalf("want soft-deleted with atproto unset: %+v", m)
	}
	v, _ = p.engine.ApplyDelete(ctx, aliceAcct, "r2")
	expect(t, v, reconcile.ClassCleared)
	if m := p.store.Mood(mood2); m.Rkey != "" {
		t.Fatalf("want atproto unset: %+v", m)
	}
	// Replays find nothing to do.
	for _, rk := range []string{"r1", "r2"} {
		v, _ = p.engine.ApplyDelete(ctx, aliceAcct, rk)
		expect(t, v, reconcile.ClassIgnored)
	}
	// Bob deleting a record with the same rkey does not touch Alice.
	p.live(mood1, alice, "r1")
	v, _ = p.engine.ApplyDelete(ctx, bobAcct, "r1")
	expect(t, v, reconcile.ClassIgnored)
}

// TestApplyDeleteInOrder: a delete op from a commit that follows the
// repo's last one is no replay: the live mood is soft-deleted without
// reading the record again (here the in-memory repo still shows it, as a
// repo a replay would meet; only an op out of order is checked).
func TestApplyDeleteInOrder(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	p.live(mood1, alice, "r1")
	p.write(aDID, "r1", mood1)
	v, _ := p.engine.ApplyDelete(ctx, aliceAcct, "r1")
	expect(t, v, reconcile.ClassIgnored)
	v, _ = p.engine.ApplyDelete(ctx, aliceAcct, "r1", reconcile.InOrder())
	expect(t, v, reconcile.ClassDeletedOnPDS)
	if m := p.store.Mood(mood1); !m.Deleted || m.Rkey != "" {
		t.Fatalf("want soft-deleted with atproto unset: %+v", m)
	}
}

// TestOpsOfTheOldRepoAfterADIDMove: the user's row moved to a new DID and
// the engine rebound them; the old repo keeps writing (the consumer's map
// may still name the user for it). Its deletes and creates touch nothing:
// a firehose op applies only to the user bound to its repo's DID.
func TestOpsOfTheOldRepoAfterADIDMove(t *testing.T) {
	p := newParts()
	ctx := context.Background()
	ids := p.synced(t, 2)
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err) // bound to the old DID
	}
	const newDID = "did:plc:alice-new"
	p.store.PutAccount(model.Account{User: alice, DID: newDID})
	if _, err := p.engine.ReconcileUser(ctx, alice, reconcile.CauseIntent, reconcile.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := p.store.Mood(ids[0])
	// The old repo deletes a record at the key the mood now has in the new
	// repo (deterministic keys are the same in both), and writes a record
	// naming the other mood.
	if _, err := p.engine.ApplyDelete(ctx, aliceAcct, moved.Rkey, reconcile.InOrder()); err != nil {
		t.Fatal(err)
	}
	if m := p.store.Mood(ids[0]); m.Deleted || m.Rkey != moved.Rkey {
		t.Fatalf("a delete in the old repo soft-deleted the mood: %+v", m)
	}
	v := value(ids[1])
	if c, err := p.engine.ApplyUpsert(ctx, aliceAcct, reconcile.Upsert{Rkey: "3zzzzzzzzzz22", Value: &v}); err != nil || c != reconcile.ClassIgnored {
		t.Fatalf("an upsert in the old repo: %s, %v", c, err)
	}
}
