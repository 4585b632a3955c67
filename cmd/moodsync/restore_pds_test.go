package main

// Recovery on the real parts: Mongo restored from a backup (lost moods
// kept, reported and brought back by restore), and the PDS restored from a
// copy of its data directory (lost records written again, never taken as
// deletes).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// dumpDB is a backup of every collection of the store's database.
func dumpDB(t *testing.T, s *mongostore.Store) map[string][]bson.Raw {
	t.Helper()
	ctx := context.Background()
	names, err := s.DB.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]bson.Raw{}
	for _, n := range names {
		cur, err := s.DB.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		out[n] = docs
	}
	return out
}

// restoreDB puts a backup back: every collection holds what it held then.
func restoreDB(t *testing.T, s *mongostore.Store, backup map[string][]bson.Raw) {
	t.Helper()
	ctx := context.Background()
	names, err := s.DB.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := s.DB.Collection(n).DeleteMany(ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
	}
	for n, docs := range backup {
		for _, d := range docs {
			if _, err := s.DB.Collection(n).InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// withEnv returns env with the variable of kv set to kv's value.
func withEnv(env []string, kvs ...string) []string {
	out := slices.Clone(env)
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		out = slices.DeleteFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		out = append(out, kv)
	}
	return out
}

// lostFindings runs audit --json for a user and returns its exit code and
// the ids of the lost moods it reports.
func (w *aeWorld) lostFindings(ctx context.Context, user string) (int, []string) {
	w.t.Helper()
	code, out := w.cli(ctx, "audit", "--user", user, "--json", "--fail-on-drift")
	var rep struct {
		Users []struct {
			Findings []struct {
				Class string `json:"class"`
				Mood  string `json:"mood"`
			} `json:"findings"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		w.t.Fatalf("audit --json: %v\n%s", err, out)
	}
	var lost []string
	for _, u := range rep.Users {
		for _, f := range u.Findings {
			if f.Class == "lost" {
				lost = append(lost, f.Mood)
			}
		}
	}
	slices.Sort(lost)
	return code, lost
}

// TestMongoRestoredFromABackupOnTheRealPDS: a user has 25 synced moods;
// Mongo is restored to a backup taken after the first 10 (two of which the
// user then deleted on the PDS), and moodsync restarted with the restored
// cursor, a reconcile intent and two periodic passes. The 15 records whose
// documents the backup lacks are kept; the two deleted moods end
// soft-deleted; audit reports the 15 as lost; restore --dry-run changes
// nothing; restore brings all 15 back as they were, a second restore adds
// nothing, and audit is clean. A user erased by a purge before the backup
// has no record left and nothing restored.
func TestMongoRestoredFromABackupOnTheRealPDS(t *testing.T) {
	ctx := context.Background()
	w := newLifeWorld(t)
	w.d.env = withEnv(w.d.env, "MOODSYNC_ANTI_ENTROPY_EVERY=3s", "MOODSYNC_ANTI_ENTROPY_FULL_EVERY=0")
	alice, bob := w.user(), w.user()
	w.start()

	ids := make([]string, 25)
	for i := range 10 {
		ids[i] = w.create(alice, fmt.Sprintf("mood %02d", i))
	}
	var bobs []string
	for i := range 3 {
		bobs = append(bobs, w.create(bob, fmt.Sprintf("bob's %d", i)))
	}
	for _, id := range ids[:10] {
		w.synced(id, alice.DID, "the first ten synced")
	}
	for _, id := range bobs {
		w.synced(id, bob.DID, "bob's moods synced")
	}
	w.publish(intent.Intent{Op: intent.OpPurge, User: bob.User, DID: bob.DID})
	devenv.Eventually(t, 60*time.Second, "bob erased", func() bool {
		return w.mood(bobs[0]) == nil && len(w.records(bob.DID)) == 0
	})

	backup := dumpDB(t, w.store)

	for i := 10; i < 25; i++ {
		ids[i] = w.create(alice, fmt.Sprintf("mood %02d", i))
	}
	for _, id := range ids[10:] {
		w.synced(id, alice.DID, "the last fifteen synced")
	}
	want := map[string]model.Mood{}
	for _, id := range ids[10:] {
		want[id] = *w.mood(id)
	}
	u := w.as(alice)
	for _, id := range ids[:2] {
		u.del(w.mood(id).Rkey)
	}
	devenv.Eventually(t, 60*time.Second, "the user's two deletes applied", func() bool {
		return w.mood(ids[0]).Deleted && w.mood(ids[1]).Deleted
	})
	w.stop()

	// The operator restores Mongo (moodsync's own collections too: the
	// cursor goes back, the firehose is replayed) and starts moodsync.
	restoreDB(t, w.store, backup)
	passes := strings.Count(w.d.logs.String(), "queued a reconcile of every user")
	w.start()
	w.publish(intent.Intent{Op: intent.OpReconcile, User: alice.User})
	devenv.Eventually(t, 90*time.Second, "two periodic passes queued and worked", func() bool {
		return strings.Count(w.d.logs.String(), "queued a reconcile of every user") >= passes+2
	})
	// Let the passes' reconciles finish: the intents stream is a work
	// queue, so it is empty once each is acknowledged.
	devenv.Eventually(t, 60*time.Second, "every intent acknowledged", func() bool {
		s, err := w.js.Stream(ctx, intent.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})

	names := map[string]bool{}
	for _, r := range w.records(alice.DID) {
		names[r.Value.MoodID()] = true
	}
	for _, id := range ids[10:] {
		if !names[id] {
			t.Fatalf("the record of lost mood %s was deleted", id)
		}
	}
	for _, id := range ids[:2] {
		if m := w.mood(id); !m.Deleted {
			t.Fatalf("mood %s the user deleted: %+v", id, m)
		}
	}
	wantLost := slices.Sorted(func(yield func(string) bool) {
		for _, id := range ids[10:] {
			if !yield(id) {
				return
			}
		}
	})
	code, lost := w.lostFindings(ctx, alice.User)
	if code != driftExitCode || !slices.Equal(lost, wantLost) {
		t.Fatalf("audit exited %d reporting lost %v, want %d and the 15", code, lost, driftExitCode)
	}

	before := w.snapshot()
	if code, out := w.cli(ctx, "restore", "--user", alice.User, "--dry-run"); code != 0 || !strings.Contains(out, "would restore 15") {
		t.Fatalf("restore --dry-run exited %d:\n%s", code, out)
	}
	if after := w.snapshot(); after != before {
		t.Fatal("restore --dry-run changed something")
	}
	if code, out := w.cli(ctx, "restore", "--user", alice.User); code != 0 || !strings.Contains(out, "restored 15") {
		t.Fatalf("restore exited %d:\n%s", code, out)
	}
	for id, m := range want {
		got := w.mood(id)
		if got == nil || got.User != m.User || got.Text != m.Text || !got.When.Equal(m.When) || got.Rkey != m.Rkey || got.Deleted {
			t.Fatalf("restored %s: %+v, want %+v", id, got, m)
		}
	}
	if code, out := w.cli(ctx, "restore", "--all"); code != 0 || !strings.Contains(out, "restored 0") && !strings.Contains(out, "0 lost moods") {
		t.Fatalf("a second restore exited %d:\n%s", code, out)
	}
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != 0 {
		t.Fatalf("audit --fail-on-drift exited %d after restore", code)
	}
	if len(w.records(bob.DID)) != 0 || w.mood(bobs[0]) != nil {
		t.Fatal("the erased user has records or moods again")
	}
}

// TestPDSRestoredWhileReconcileIntentsArrive: five users have three synced
// moods each when the PDS's data directory is copied; each then writes two
// more. The PDS is restored from the copy while moodsync runs, and a
// reconcile intent of every user is published at once — before the
// follower can see the restored PDS's FutureCursor. No mood is
// soft-deleted, every lost record is written again, none doubled.
func TestPDSRestoredWhileReconcileIntentsArrive(t *testing.T) {
	ctx := context.Background()
	rp := devenv.NewRestorablePDS(t)
	w := newLifeWorldOn(newAEWorldOn(t, rp.PDS))
	var users []*devenv.Account
	for range 5 {
		users = append(users, w.user())
	}
	w.start()
	moods := map[*devenv.Account][]string{}
	write := func(n int) {
		for _, u := range users {
			for i := range n {
				moods[u] = append(moods[u], w.create(u, fmt.Sprintf("%s %d", u.Handle, len(moods[u])+i)))
			}
		}
		for _, u := range users {
			for _, id := range moods[u] {
				w.synced(id, u.DID, "moods synced")
			}
		}
	}
	write(3)
	rp.Snapshot(t)
	write(2)

	rp.Restore(t)
	for _, u := range users {
		w.publish(intent.Intent{Op: intent.OpReconcile, User: u.User})
	}
	devenv.Eventually(t, 120*time.Second, "every mood live with its one record", func() bool {
		for _, u := range users {
			recs, err := w.client.ExportRecords(ctx, u.DID)
			if err != nil {
				return false
			}
			named := map[string]int{}
			for _, r := range recs {
				named[r.Value.MoodID()]++
			}
			for _, id := range moods[u] {
				m := w.mood(id)
				if m == nil || m.Deleted || m.Rkey == "" || named[id] != 1 {
					return false
				}
			}
		}
		return true
	})
	for _, u := range users {
		for _, id := range moods[u] {
			if m := w.mood(id); m.Deleted {
				t.Fatalf("mood %s soft-deleted", id)
			}
		}
		recs := w.records(u.DID)
		if len(recs) != len(moods[u]) {
			t.Fatalf("%s: %d records for %d moods", u.User, len(recs), len(moods[u]))
		}
	}
}
