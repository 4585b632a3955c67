package consumer

// Verification only where it matters (verifyskip.go): commits without a
// mood op are not verified, commits with one always are.

import (
	"testing"

	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// forge makes g sign with a key its DID document does not name.
func forge(t *testing.T, g *genRepo) {
	g.Key = newGenRepo(t, "did:plc:forger", identity.NewMockDirectory()).Key
}

// TestMoodCommitWithBadSignatureIsNeverApplied: a user's chain is followed
// through commits that are not verified (no mood op); the next commit
// carries a mood op and a bad signature: it is verified, refused, and its
// op is never applied, though it follows the chain.
func TestMoodCommitWithBadSignatureIsNeverApplied(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	r.fh.add(
		commitFrame(t, g.commit(t, 1, g.postOp())), // no since: verified
		commitFrame(t, g.commit(t, 2, g.postOp())),
		commitFrame(t, g.commit(t, 3, g.postOp())),
	)
	forge(t, g)
	r.fh.add(commitFrame(t, g.commit(t, 4, g.postOp(), moodOp("3kh5dye2qpc2a", id))))
	c := r.start(t, nil)
	r.handledAll(t, c)
	s := c.Stats()
	if s.Unverified != 2 || s.BadCommits != 1 || s.MoodOps != 0 || s.ChainBreaks != 0 || s.UserReconciles != 1 {
		t.Fatalf("stats %+v", s)
	}
	if rkey := r.store.Mood(id).Rkey; rkey == "3kh5dye2qpc2a" {
		t.Fatal("a mood op of a commit with a bad signature was applied")
	}
}

// TestSkippedCommitNeverAppliesMoodOp: commits signed with the wrong key
// whose ops are not mood ops — other collections, near misses of the mood
// collection's path — are not verified and change nothing; every commit
// with a mood op among them is verified and refused. No op reaches the
// engine, and no mood changes.
func TestSkippedCommitNeverAppliesMoodOp(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	r.fh.add(commitFrame(t, g.commit(t, 1, g.postOp())))
	forge(t, g)
	rec := moodOp("3kh5dye2qpc2a", id).record
	nearMisses := []string{
		"computer.aesthetic.moodx/3kh5dye2qpc2a",
		"Computer.aesthetic.mood/3kh5dye2qpc2a",
		"computer.aesthetic.mood.x/3kh5dye2qpc2a",
		"computer.aesthetic/3kh5dye2qpc2a",
		"app.bsky.feed.post/3kh5dye2qpc2a",
	}
	seq := int64(1)
	for _, path := range nearMisses {
		seq++
		r.fh.add(commitFrame(t, g.commit(t, seq, genOp{path: path, record: rec})))
	}
	withMood := [][]genOp{
		{moodOp("3kh5dye2qpc2a", id)},
		{g.postOp(), moodOp("3kh5dye2qpc2b", id)},
		{{path: "computer.aesthetic.mood/3kh5dye2qpc2a", delete: true}},
	}
	for _, ops := range withMood {
		seq++
		r.fh.add(commitFrame(t, g.commit(t, seq, ops...)))
	}
	c := r.start(t, nil)
	r.handledAll(t, c)
	s := c.Stats()
	if s.MoodOps != 0 || len(s.Verdicts) != 0 {
		t.Fatalf("a forged commit reached the engine: stats %+v", s)
	}
	if s.Unverified != int64(len(nearMisses)) || s.BadCommits != int64(len(withMood)) {
		t.Fatalf("unverified %d (want %d), bad %d (want %d): stats %+v", s.Unverified, len(nearMisses), s.BadCommits, len(withMood), s)
	}
	// The reconciles the refused commits queued may write the mood's
	// record (at its deterministic key); no forged op may link or delete it.
	if m := r.store.Mood(id); m.Rkey == "3kh5dye2qpc2a" || m.Rkey == "3kh5dye2qpc2b" || m.Deleted {
		t.Fatalf("mood changed by a forged op: %+v", m)
	}
}

// TestForgedSkippedCommitCannotHideMoodCommit: a commit without a mood op
// with a bad signature and a rev far ahead is not verified and becomes the
// repo's place in the chain; the user's next real mood commit, behind that
// rev, is not taken for a replay: it is verified and counts as a broken
// chain (the user is reconciled from the repo).
func TestForgedSkippedCommitCannotHideMoodCommit(t *testing.T) {
	r := newRig(t)
	g, alice := r.user(t, "alice")
	id := r.mood(alice, 1)
	first := g.commit(t, 1, g.postOp())
	forged := newGenRepo(t, alice.DID, identity.NewMockDirectory()) // its own key, not alice's
	f := forged.commit(t, 2, forged.postOp())
	f.Rev, f.Since, f.PrevData = "zzzzzzzzzzzzz", &first.Rev, nil
	real := g.commit(t, 3, moodOp("3kh5dye2qpc2a", id))
	r.pds.Put(alice.DID, model.Record{Rkey: "3kh5dye2qpc2a", Value: model.RecordValue{
		Type: model.Collection, Mood: "sunny", When: "2025-10-14T19:30:00.000Z", Ref: id,
	}})
	r.fh.add(commitFrame(t, first), commitFrame(t, f), commitFrame(t, real))
	c := r.start(t, nil)
	r.handledAll(t, c)
	s := c.Stats()
	if s.Replayed != 0 || s.Unverified != 1 || s.ChainBreaks != 1 || s.UserReconciles != 1 || s.BadCommits != 0 {
		t.Fatalf("stats %+v", s)
	}
}
