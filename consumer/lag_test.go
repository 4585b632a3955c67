package consumer

import (
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/whistlegraph/moodsync/consumer/wire/wiretest"
)

// TestLagFromEventTimes: the follower's lag is read from the events it
// handles: catching up on events an hour old, it is an hour behind; on a
// live event, it is not. The head is the last seq read.
func TestLagFromEventTimes(t *testing.T) {
	r := newRig(t)
	g, _ := r.user(t, "alice")
	stranger := newGenRepo(t, "did:plc:stranger", r.dir)
	old := time.Now().Add(-time.Hour).UTC().Format(syntax.AtprotoDatetimeLayout)
	c1 := g.commit(t, 1, g.postOp())
	c1.Time = old
	c2 := stranger.commit(t, 2, stranger.postOp()) // not a user's: the skip path
	c2.Time = old
	r.fh.add(commitFrame(t, c1), commitFrame(t, c2))
	c := r.start(t, nil)
	r.handledAll(t, c)
	head, behind, secs, known := c.Lag(time.Now())
	if !known || head != 2 || behind != 0 || secs < time.Hour.Seconds() {
		t.Fatalf("after an hour-old event: head %d, behind %d, %.0fs, known %v; want head 2, 0 behind, an hour", head, behind, secs, known)
	}

	r.fh.add(frame(t, "#identity", &comatproto.SyncSubscribeRepos_Identity{Did: "did:plc:nobody", Seq: 3, Time: time.Now().UTC().Format(syntax.AtprotoDatetimeLayout)}))
	r.handledAll(t, c)
	head, behind, secs, _ = c.Lag(time.Now())
	if head != 3 || behind != 0 || secs >= time.Hour.Seconds() {
		t.Fatalf("after a live event: head %d, behind %d, %.0fs; want head 3, 0 behind, less than the hour", head, behind, secs)
	}

	// A head learned while behind counts events not handled yet.
	c.lag.head.Store(10)
	if head, behind, _, _ := c.Lag(time.Now()); head != 10 || behind != 7 {
		t.Fatalf("head %d, behind %d; want 10, 7", head, behind)
	}
}

// TestLagOfAnEventInHand: an event being handled counts from its own time,
// so a follower stuck on one shows it.
func TestLagOfAnEventInHand(t *testing.T) {
	var l lagTracker
	if _, known := l.behind(time.Now()); known {
		t.Fatal("known before any event")
	}
	t0 := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	l.begin(5, t0.Format(syntax.AtprotoDatetimeLayout))
	if secs, known := l.behind(t0.Add(90 * time.Second)); !known || secs != 90 {
		t.Fatalf("in hand: %vs, known %v; want 90s", secs, known)
	}
	if secs, _ := l.behind(t0.Add(-time.Minute)); secs != 0 {
		t.Fatalf("an event from the future: %vs, want 0", secs)
	}
	l.begin(6, "not a time")
	l.end()
	if _, known := l.behind(time.Now()); known {
		t.Fatal("a time that does not parse is not a lag")
	}
}

// TestFrameSeq: the head check reads the seq of any event that has one.
func TestFrameSeq(t *testing.T) {
	for i, fr := range wiretest.SeedFrames(t, identity.NewMockDirectory()) {
		seq, ok := frameSeq(fr)
		switch {
		case i < 7 && (!ok || seq != int64(i+1)):
			t.Errorf("frame %d: seq %d, %v; want %d", i, seq, ok, i+1)
		case i >= 7 && ok:
			t.Errorf("frame %d (#info or error): seq %d", i, seq)
		}
	}
}
