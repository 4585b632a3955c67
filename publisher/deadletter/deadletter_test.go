package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// refusing is an engine for which every mood of a refused user fails
// permanently, the way a refused PDS login does; everything else applies.
type refusing struct {
	mu      sync.Mutex
	refused map[string]bool
}

func (e *refusing) SyncMoods(_ context.Context, user string, ids []string) map[string]error {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]error{}
	for _, id := range ids {
		if e.refused[user] {
			out[id] = model.Permanent("PDS login refused for did:plc:%s", user)
		} else {
			out[id] = nil
		}
	}
	return out
}

func (e *refusing) ReconcileUser(context.Context, string, reconcile.Cause, reconcile.ReconcileOptions) (*reconcile.Outcome, error) {
	return &reconcile.Outcome{}, nil
}
func (e *refusing) Purge(context.Context, string, string, time.Time) error { return nil }

// world is an embedded NATS with the real publisher on it.
type world struct {
	t  *testing.T
	js jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	return &world{t: t, js: js}
}

// runPublisher runs the real publisher on engine until stop (or the end of
// the test).
func (w *world) runPublisher(engine publisher.Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- publisher.New(w.js, engine, publisher.Config{}, nil).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Error(err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *world) publishRaw(subject, data string) {
	w.t.Helper()
	if _, err := w.js.Publish(context.Background(), subject, []byte(data)); err != nil {
		w.t.Fatal(err)
	}
}

// streamMsgs is how many messages a stream holds (0 when it is missing).
func (w *world) streamMsgs(name string) uint64 {
	s, err := w.js.Stream(context.Background(), name)
	if err != nil {
		return 0
	}
	info, err := s.Info(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return info.State.Msgs
}

func (w *world) box() *Box {
	w.t.Helper()
	b, err := Open(context.Background(), w.js)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) list(f Filter) []Letter {
	w.t.Helper()
	l, err := w.box().List(context.Background(), f)
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

// TestListReadsWhatThePublisherDeadLetters: malformed intents go through
// the real publisher; List reads each back with its subject, reason,
// deliveries and payload fields, and the filters select on them.
func TestListReadsWhatThePublisherDeadLetters(t *testing.T) {
	w := newWorld(t)
	w.runPublisher(&refusing{refused: map[string]bool{"auth0|bob": true}})
	if got := w.list(Filter{}); len(got) != 0 {
		t.Fatalf("a fresh NATS lists %d dead letters", len(got))
	}
	id := "507f1f77bcf86cd799439011"
	w.publishRaw("moods.intent.create", `{"op":"create",`)
	w.publishRaw("moods.intent.zap", `{"op":"zap","user":"auth0|alice"}`)
	w.publishRaw("moods.intent.create", `{"op":"create","user":"auth0|alice","mongoId":"nothex"}`)
	w.publishRaw("moods.intent.delete", `{"op":"create","user":"auth0|alice","mongoId":"`+id+`"}`)
	w.publishRaw("moods.intent.create", `{"op":"create","user":7,"mongoId":"`+id+`"}`)
	w.publishRaw("moods.intent.create", `{"op":"create","user":"auth0|bob","mongoId":"`+id+`"}`)
	devenv.Eventually(t, 30*time.Second, "six dead letters", func() bool { return w.streamMsgs(intent.DeadStream) == 6 })

	type row struct{ subject, dead, reason, user, mongoID string }
	var got []row
	for _, l := range w.list(Filter{}) {
		if l.Deliveries != 1 || l.Time.IsZero() || l.Truncated {
			t.Errorf("letter %d: deliveries %d, time %v, truncated %v", l.Seq, l.Deliveries, l.Time, l.Truncated)
		}
		got = append(got, row{l.Subject, l.DeadSubject, l.Reason, l.User, l.MongoID})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].reason < got[j].reason })
	want := []row{
		{"moods.intent.create", "moods.dead.create", "PDS login refused for did:plc:auth0|bob", "auth0|bob", id},
		{"moods.intent.create", "moods.dead.create", "bad JSON: json: cannot unmarshal number into Go struct field Intent.user of type string", "", id},
		{"moods.intent.create", "moods.dead.invalid", "bad JSON: unexpected end of JSON input", "", ""},
		{"moods.intent.create", "moods.dead.create", `bad mongoId "nothex": want 24 hex digits`, "auth0|alice", "nothex"},
		{"moods.intent.delete", "moods.dead.create", `op "create" does not match subject "moods.intent.delete"`, "auth0|alice", id},
		{"moods.intent.zap", "moods.dead.invalid", `unknown op "zap"`, "auth0|alice", ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed\n%v\nwant\n%v", got, want)
	}

	count := func(f Filter) int { return len(w.list(f)) }
	if n := count(Filter{User: "auth0|alice"}); n != 3 {
		t.Errorf("--user auth0|alice selects %d, want 3", n)
	}
	if n := count(Filter{Reason: "BAD json"}); n != 2 {
		t.Errorf("--reason 'BAD json' selects %d, want 2", n)
	}
	if n := count(Filter{Since: time.Now().Add(time.Hour)}); n != 0 {
		t.Errorf("--since an hour ahead selects %d", n)
	}
	if n := count(Filter{Since: time.Now().Add(-time.Hour), User: "auth0|bob", Reason: "login"}); n != 1 {
		t.Errorf("all three filters select %d, want 1", n)
	}

	// Only the refused login is worth replaying; the rest are malformed.
	var replayable []string
	for _, l := range w.list(Filter{}) {
		if err := Replayable(l); err == nil {
			replayable = append(replayable, l.User)
		} else if !errors.Is(err, ErrNotReplayable) {
			t.Errorf("letter %d: %v", l.Seq, err)
		}
	}
	if !slices.Equal(replayable, []string{"auth0|bob"}) {
		t.Errorf("replayable: %v", replayable)
	}
	for _, l := range w.list(Filter{Reason: "bad json"}) {
		if err := w.box().Replay(context.Background(), l); !errors.Is(err, ErrNotReplayable) {
			t.Errorf("replaying %q: %v", l.Reason, err)
		}
	}
	if n := w.streamMsgs(intent.DeadStream); n != 6 {
		t.Fatalf("refused replays changed the stream: %d letters", n)
	}
}

// TestTruncatedLetterIsNeverReplayed: a letter marked as cut is refused,
// even when what is left of it parses.
func TestTruncatedLetterIsNeverReplayed(t *testing.T) {
	w := newWorld(t)
	if err := publisher.EnsureStreams(context.Background(), w.js); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(intent.DeadPrefix + "create")
	msg.Data = []byte(`{"op":"create","user":"auth0|alice","mongoId":"507f1f77bcf86cd799439011"}`)
	msg.Header.Set(publisher.HeaderReason, "intent over 65536 bytes")
	msg.Header.Set(publisher.HeaderSubject, "moods.intent.create")
	msg.Header.Set(HeaderTruncated, "true")
	if _, err := w.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	letters := w.list(Filter{})
	if len(letters) != 1 || !letters[0].Truncated {
		t.Fatalf("listed %+v", letters)
	}
	if err := w.box().Replay(context.Background(), letters[0]); !errors.Is(err, ErrNotReplayable) {
		t.Fatalf("replaying a truncated letter: %v", err)
	}
	if w.streamMsgs(intent.Stream) != 0 || w.streamMsgs(intent.DeadStream) != 1 {
		t.Fatal("a truncated letter was replayed")
	}
}

// TestReplayInterruptedLosesNothing dead-letters ten intents, then replays
// them twice with a failure: once between the publish of the fifth and the
// deletion of its letter, once by a cancelled context. After each, every
// intent is a dead letter or stored in the intents stream (the fifth is
// both, which is harmless). Replaying the rest finishes: ten intents, the
// fifth stored once (JetStream dropped its second replay as a duplicate),
// no dead letters. The publisher is stopped meanwhile, so what was
// replayed stays in the stream to be counted.
func TestReplayInterruptedLosesNothing(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	js := w.js
	stop := w.runPublisher(&refusing{refused: map[string]bool{"auth0|bob": true}})
	var want []string
	for i := range 10 {
		in := intent.Intent{Op: intent.OpCreate, User: "auth0|bob", MongoID: fmt.Sprintf("507f1f77bcf86cd7994390%02d", i)}
		if err := intent.Publish(ctx, js, in); err != nil {
			t.Fatal(err)
		}
		want = append(want, in.MongoID)
	}
	devenv.Eventually(t, 30*time.Second, "ten dead letters", func() bool { return w.streamMsgs(intent.DeadStream) == 10 })
	stop()
	// The durable consumer would take the replays; without a publisher
	// running they must stay where a count can see them.
	if w.streamMsgs(intent.Stream) != 0 {
		t.Fatal("intents left over")
	}

	// ids in the intents stream, and in the dead letters.
	stored := func() (intents, dead []string) {
		for _, raw := range devenv.StreamMsgs(t, js, intent.Stream, intent.Subjects) {
			in, err := intent.Parse(raw.Subject, raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			intents = append(intents, in.MongoID)
		}
		for _, l := range w.list(Filter{}) {
			dead = append(dead, l.MongoID)
		}
		return intents, dead
	}
	nothingLost := func(when string) {
		t.Helper()
		intents, dead := stored()
		for _, id := range want {
			if !slices.Contains(intents, id) && !slices.Contains(dead, id) {
				t.Fatalf("%s: intent %s is neither replayed nor dead-lettered (intents %v, dead %v)", when, id, intents, dead)
			}
		}
	}
	replayAll := func(b *Box, ctx context.Context) (int, error) {
		n := 0
		for _, l := range w.list(Filter{}) {
			if err := b.Replay(ctx, l); err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}

	// 1. A failure after the fifth replay was stored, before its letter
	// was deleted (a crash, a lost connection).
	b := w.box()
	failAt := w.list(Filter{})[4]
	interrupted := errors.New("interrupted")
	b.afterPublish = func(l Letter) error {
		if l.Seq == failAt.Seq {
			return interrupted
		}
		return nil
	}
	if n, err := replayAll(b, ctx); n != 4 || !errors.Is(err, interrupted) {
		t.Fatalf("first replay: %d replayed, %v", n, err)
	}
	nothingLost("after a failure between publish and delete")
	if intents, dead := stored(); len(intents) != 5 || len(dead) != 6 || !slices.Contains(dead, failAt.MongoID) {
		t.Fatalf("after the failure: %d intents, %d dead letters", len(intents), len(dead))
	}

	// 2. The context is cancelled while a replay is under way (SIGINT): the
	// deletion of that letter fails, and nothing after it runs.
	cctx, cancel := context.WithCancel(ctx)
	b = w.box()
	b.afterPublish = func(l Letter) error {
		if l.Seq != failAt.Seq {
			cancel()
		}
		return nil
	}
	if _, err := replayAll(b, cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled replay: %v", err)
	}
	nothingLost("after a cancelled replay")

	// 3. Run again to the end.
	if _, err := replayAll(w.box(), ctx); err != nil {
		t.Fatal(err)
	}
	intents, dead := stored()
	sort.Strings(intents)
	if !slices.Equal(intents, want) || len(dead) != 0 {
		t.Fatalf("after the last replay: intents %v (want each once: %v), dead %v", intents, want, dead)
	}
}

// purging is an engine whose purges are refused until allowed, and which
// records the time each purge it applied was asked.
type purging struct {
	mu      sync.Mutex
	allowed bool
	asked   []time.Time
}

func (e *purging) SyncMoods(_ context.Context, _ string, ids []string) map[string]error {
	return map[string]error{}
}
func (e *purging) ReconcileUser(context.Context, string, reconcile.Cause, reconcile.ReconcileOptions) (*reconcile.Outcome, error) {
	return &reconcile.Outcome{}, nil
}
func (e *purging) Purge(_ context.Context, _, _ string, asOf time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.allowed {
		return model.Permanent("purge names did:plc:x, but user auth0|p is bound to did:plc:y: nothing deleted")
	}
	e.asked = append(e.asked, asOf)
	return nil
}

// TestReplayedPurgeKeepsTheTimeItWasAsked: a purge dead-lettered and
// replayed later is applied as of the time it was first published, so it
// erases nothing the user created since.
func TestReplayedPurgeKeepsTheTimeItWasAsked(t *testing.T) {
	w := newWorld(t)
	e := &purging{}
	stop := w.runPublisher(e)
	before := time.Now()
	w.publishRaw(intent.SubjectPrefix+intent.OpPurge, `{"op":"purge","user":"auth0|p","did":"did:plc:x"}`)
	devenv.Eventually(t, 10*time.Second, "the purge dead-lettered", func() bool { return len(w.list(Filter{})) == 1 })
	stop()
	letter := w.list(Filter{})[0]
	if letter.AskedAt.Before(before.Add(-time.Second)) || letter.AskedAt.After(time.Now()) {
		t.Fatalf("the dead letter says the purge was asked at %v", letter.AskedAt)
	}
	e.mu.Lock()
	e.allowed = true
	e.mu.Unlock()
	if err := w.box().Replay(context.Background(), letter); err != nil {
		t.Fatal(err)
	}
	w.runPublisher(e)
	devenv.Eventually(t, 10*time.Second, "the replayed purge applied", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.asked) == 1
	})
	e.mu.Lock()
	got := e.asked[0]
	e.mu.Unlock()
	if !got.Equal(letter.AskedAt) {
		t.Fatalf("the replayed purge was applied as of %v, want the first publish's %v", got, letter.AskedAt)
	}
}
