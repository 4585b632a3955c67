package consumer

// These tests run the consumer against the reference PDS: records are
// written straight to the PDS as the user, over XRPC, and Mongo is watched
// until it agrees.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// within is how long the firehose may take to bring a PDS-side change into
// Mongo (the PDS itself may hold a write up to a second).
const within = 3 * time.Second

// setup is how long setting a scene may take (logins, full reconciles).
const setup = 30 * time.Second

type env struct {
	pds    *devenv.PDS
	store  *mongostore.Store
	engine *reconcile.Engine
	queue  publisher.Queue
	sweep  *reconcile.Sweep
	js     jetstream.JetStream
	cons   *running // the last consumer started
}

// newEnv is the daemon's PDS → Mongo half on real parts: the dev PDS, a
// Mongo-wire store, and NATS JetStream with a publisher working through
// the reconciles the consumer queues.
func newEnv(t *testing.T) *env {
	pds := devenv.NeedPDS(t)
	store := devenv.NewStore(t)
	client := pdsclient.New(pds.URL, store, testLog(t))
	e := &env{pds: pds, store: store, engine: reconcile.NewEngine(store, client, testLog(t))}
	_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
	e.js = js
	e.queue = publisher.Queue{JS: js}
	e.sweep = &reconcile.Sweep{Users: store, Queue: e.queue, State: store, Log: testLog(t)}
	pub := publisher.New(js, e.engine, publisher.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// testLog logs to the test's output; MOODSYNC_TEST_LOG=debug shows more.
func testLog(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("MOODSYNC_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// running is a consumer started by a test.
type running struct {
	*Consumer
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the consumer as a shutdown would (final cursor save).
func (r *running) stop() {
	r.cancel()
	<-r.done
}

// kill ends the consumer as SIGKILL would: no final save.
func (r *running) kill() {
	r.skipFinalSave = true
	r.cancel()
	<-r.done
}

func (e *env) start(t *testing.T) *running {
	t.Helper()
	fh, err := FirehoseURL(e.pds.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, Config{FirehoseURL: fh, PLCURL: e.pds.PLCURL, Log: testLog(t), AccountsRefresh: time.Second}, e.engine, e.store, e.queue, e.sweep)
	devenv.Eventually(t, setup, "consumer connected with every user queued", r.Ready)
	e.drained(t)
	e.cons = r
	return r
}

// drained waits until the publisher has carried out every intent queued
// (the first start's reconciles), so they do not race the test's own.
func (e *env) drained(t *testing.T) {
	t.Helper()
	devenv.Eventually(t, setup, "queued reconciles carried out", func() bool {
		s, err := e.js.Stream(context.Background(), intent.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

// run starts a consumer until the test ends.
func run(t *testing.T, cfg Config, engine Engine, store Store, queue reconcile.Queue, sweep Sweeper) *running {
	t.Helper()
	c, err := New(cfg, engine, store, queue, sweep)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Consumer: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// writer writes to one user's repo as that user.
type writer struct {
	t    *testing.T
	acct *devenv.Account
	api  *atclient.APIClient
}

var (
	loginMu sync.Mutex
)

func (e *env) writer(t *testing.T, a *devenv.Account) *writer {
	t.Helper()
	loginMu.Lock()
	defer loginMu.Unlock()
	api, err := e.pds.Login(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, acct: a, api: api}
	if e.cons != nil {
		e.fence(t, w)
	}
	return w
}

// fence writes a record of another collection as the user and waits until
// the consumer has handled it, then until every reconcile it queued is
// carried out: the account's own events from before (its creation's
// #sync, which queues a reconcile) no longer race the test.
func (e *env) fence(t *testing.T, w *writer) {
	t.Helper()
	before := e.cons.Stats().Commits
	err := w.api.Post(context.Background(), syntax.NSID("com.atproto.repo.createRecord"), map[string]any{
		"repo": w.acct.DID, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": "fence", "createdAt": time.Now().UTC().Format(time.RFC3339)},
	}, nil)
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	devenv.Eventually(t, setup, "the consumer handled the fence", func() bool { return e.cons.Stats().Commits > before })
	e.drained(t)
}

// create writes a record (any JSON body) and returns its rkey.
func (w *writer) create(record map[string]any) string {
	w.t.Helper()
	record["$type"] = model.Collection
	var out struct {
		URI string `json:"uri"`
	}
	err := w.api.Post(context.Background(), syntax.NSID("com.atproto.repo.createRecord"),
		map[string]any{"repo": w.acct.DID, "collection": model.Collection, "record": record}, &out)
	if err != nil {
		w.t.Fatalf("createRecord: %v", err)
	}
	return out.URI[strings.LastIndexByte(out.URI, '/')+1:]
}

func (w *writer) delete(rkey string) {
	w.t.Helper()
	err := w.api.Post(context.Background(), syntax.NSID("com.atproto.repo.deleteRecord"),
		map[string]any{"repo": w.acct.DID, "collection": model.Collection, "rkey": rkey}, nil)
	if err != nil {
		w.t.Fatalf("deleteRecord: %v", err)
	}
}

func moodRecord(id string) map[string]any {
	return map[string]any{"mood": "sunny", "when": "2025-10-14T19:30:00.000Z", "ref": id, "mongoId": id}
}

func (e *env) mood(t *testing.T, id string) *model.Mood {
	t.Helper()
	m, err := e.store.Moods(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	return m[id]
}

func (e *env) hasRecord(t *testing.T, did, rkey string) bool {
	t.Helper()
	var out map[string]any
	err := atclient.NewAPIClient(e.pds.URL).Get(context.Background(), syntax.NSID("com.atproto.repo.getRecord"),
		map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey}, &out)
	if err == nil {
		return true
	}
	if strings.Contains(err.Error(), "RecordNotFound") || strings.Contains(err.Error(), "Could not locate record") {
		return false
	}
	t.Fatalf("getRecord: %v", err)
	return false
}

var when = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

// aliceOnly sets up one user and a consumer following the firehose.
func aliceOnly(t *testing.T) (*env, *devenv.Account, *running, *writer) {
	e := newEnv(t)
	alice := e.pds.CreateUser(t, e.store)
	c := e.start(t)
	return e, alice, c, e.writer(t, alice)
}

// repairedMood inserts a mood, writes its record as the user and waits
// for the consumer to store the record's rkey.
func (e *env) repairedMood(t *testing.T, w *writer, text string) (id, rkey string) {
	t.Helper()
	id = devenv.InsertMood(t, e.store, w.acct.User, text, when)
	rkey = w.create(moodRecord(id))
	devenv.Eventually(t, within, "mood has its record's rkey", func() bool { return e.mood(t, id).Rkey == rkey })
	return id, rkey
}

func TestFirehoseRepairsRkeyFromRefAndLegacyMongoID(t *testing.T) {
	e, alice, c, w := aliceOnly(t)
	e.repairedMood(t, w, "sunny")

	legacy := devenv.InsertMood(t, e.store, alice.User, "old", when)
	rkey2 := w.create(map[string]any{"mood": "old", "when": "2025-10-14T19:30:00.000Z", "mongoId": legacy})
	devenv.Eventually(t, within, "legacy mood has the record's rkey", func() bool { return e.mood(t, legacy).Rkey == rkey2 })

	if n := c.Stats().Verdicts[reconcile.ClassUnlinked]; n != 2 {
		t.Fatalf("repairs counted: %d, want 2", n)
	}
}

func TestFirehoseDeleteOnPDSSoftDeletesMood(t *testing.T) {
	e, _, c, w := aliceOnly(t)
	id, rkey := e.repairedMood(t, w, "sunny")
	w.delete(rkey)
	devenv.Eventually(t, within, "mood soft-deleted with atproto unset", func() bool {
		m := e.mood(t, id)
		return m.Deleted && m.Rkey == ""
	})
	if n := c.Stats().Verdicts[reconcile.ClassDeletedOnPDS]; n != 1 {
		t.Fatalf("pds-delete counted: %d", n)
	}
}

func TestFirehoseDuplicateRecordIsDeleted(t *testing.T) {
	e, alice, c, w := aliceOnly(t)
	id, first := e.repairedMood(t, w, "sunny")
	second := w.create(moodRecord(id))
	devenv.Eventually(t, within, "duplicate deleted from the PDS", func() bool { return !e.hasRecord(t, alice.DID, second) })
	if got := e.mood(t, id).Rkey; got != first {
		t.Fatalf("mood rkey %q, want %q kept", got, first)
	}
	if !e.hasRecord(t, alice.DID, first) {
		t.Fatal("the stored record was deleted")
	}
	if n := c.Stats().Verdicts[reconcile.ClassDuplicate]; n != 1 {
		t.Fatalf("duplicates counted: %d", n)
	}
}

func TestFirehoseSpoofLeavesMoodAlone(t *testing.T) {
	e := newEnv(t)
	alice := e.pds.CreateUser(t, e.store)
	bob := e.pds.CreateUser(t, e.store)
	c := e.start(t)
	w := e.writer(t, bob)

	id := devenv.InsertMood(t, e.store, alice.User, "sunny", when)
	w.create(moodRecord(id))
	devenv.Eventually(t, within, "spoof counted", func() bool { return c.Stats().Verdicts[reconcile.ClassSpoof] == 1 })
	if m := e.mood(t, id); m.Rkey != "" || m.Deleted {
		t.Fatalf("alice's mood changed: %+v", m)
	}
}

func TestFirehoseInvalidRecordsAreSkipped(t *testing.T) {
	e, alice, c, w := aliceOnly(t)
	id := devenv.InsertMood(t, e.store, alice.User, "sunny", when)

	bad := []map[string]any{
		{"mood": "no ref", "when": "2025-10-14T19:30:00.000Z"},
		{"mood": "bad hex", "when": "2025-10-14T19:30:00.000Z", "ref": "zz7f1f77bcf86cd799439011"},
		{"mood": strings.Repeat("a", model.MaxLen+1), "when": "2025-10-14T19:30:00.000Z", "ref": id},
		{"mood": 42, "when": "2025-10-14T19:30:00.000Z", "ref": id},
		{"mood": "ref is a number", "when": "2025-10-14T19:30:00.000Z", "ref": 507},
	}
	for _, r := range bad {
		w.create(r)
	}
	devenv.Eventually(t, within, "invalid records counted", func() bool {
		return c.Stats().Verdicts[reconcile.ClassInvalid] == int64(len(bad))
	})
	if m := e.mood(t, id); m.Rkey != "" {
		t.Fatalf("an invalid record set the rkey: %+v", m)
	}
	// Still following.
	rkey := w.create(moodRecord(id))
	devenv.Eventually(t, within, "a valid record after the bad ones is applied", func() bool { return e.mood(t, id).Rkey == rkey })
}

func TestFirehoseAccountDeletedByAdminUnsetsAtproto(t *testing.T) {
	e, alice, _, w := aliceOnly(t)
	one, _ := e.repairedMood(t, w, "one")
	two, _ := e.repairedMood(t, w, "two")
	ids := []string{one, two}

	admin := atclient.NewAdminClient(e.pds.URL, e.pds.AdminPassword)
	if err := admin.Post(context.Background(), syntax.NSID("com.atproto.admin.deleteAccount"), map[string]any{"did": alice.DID}, nil); err != nil {
		t.Fatalf("admin deleteAccount: %v", err)
	}
	devenv.Eventually(t, within, "moods of the deleted account have atproto unset", func() bool {
		for _, id := range ids {
			if m := e.mood(t, id); m.Rkey != "" || m.Deleted {
				return false
			}
		}
		return true
	})
}

// TestFirehoseResumesFromStoredCursorAfterKill kills the consumer without a
// final save, makes 20 changes on the PDS, and checks that a new consumer
// resumes from the stored cursor and applies them all; then that replaying
// the same events from that cursor changes nothing.
func TestFirehoseResumesFromStoredCursorAfterKill(t *testing.T) {
	e := newEnv(t)
	alice := e.pds.CreateUser(t, e.store)
	first := e.start(t)
	w := e.writer(t, alice)
	ctx := context.Background()

	var withRecord, without []string
	rkeys := map[string]string{}
	for i := 0; i < 10; i++ {
		id := devenv.InsertMood(t, e.store, alice.User, fmt.Sprint("kept ", i), when)
		rkeys[id] = w.create(moodRecord(id))
		withRecord = append(withRecord, id)
		without = append(without, devenv.InsertMood(t, e.store, alice.User, fmt.Sprint("new ", i), when))
	}
	devenv.Eventually(t, setup, "first consumer repaired every mood", func() bool {
		for _, id := range withRecord {
			if e.mood(t, id).Rkey != rkeys[id] {
				return false
			}
		}
		return true
	})
	devenv.Eventually(t, setup, "cursor stored up to the last handled event", func() bool {
		s := first.Stats()
		return s.SavedCursor == s.Cursor
	})
	first.kill()
	stored, ok, err := e.store.LoadCursor(ctx, first.stream)
	if err != nil || !ok || stored <= 0 {
		t.Fatalf("stored cursor %d ok=%v err=%v", stored, ok, err)
	}

	// 20 changes while no consumer runs.
	for _, id := range withRecord {
		w.delete(rkeys[id])
	}
	for _, id := range without {
		rkeys[id] = w.create(moodRecord(id))
	}

	second := e.start(t)
	devenv.Eventually(t, setup, "all 20 changes reflected", func() bool {
		for _, id := range withRecord {
			if m := e.mood(t, id); !m.Deleted || m.Rkey != "" {
				return false
			}
		}
		for _, id := range without {
			if e.mood(t, id).Rkey != rkeys[id] {
				return false
			}
		}
		return true
	})
	s := second.Stats()
	if s.FirstSeq <= stored {
		t.Fatalf("resumed at seq %d, not after the stored cursor %d", s.FirstSeq, stored)
	}
	if s.FullReconciles != 0 || s.UserReconciles != 0 {
		t.Fatalf("resume reconciled instead of following the stream: %+v", s)
	}
	if s.Verdicts[reconcile.ClassDeletedOnPDS] != 10 || s.Verdicts[reconcile.ClassUnlinked] != 10 {
		t.Fatalf("verdicts %v, want 10 pds-delete and 10 repair from the stream", s.Verdicts)
	}
	devenv.Eventually(t, setup, "cursor stored", func() bool { s := second.Stats(); return s.SavedCursor == s.Cursor })
	end := second.Stats().Cursor
	second.stop()

	// Replay the same 20 events.
	before, err := e.store.UserMoods(ctx, alice.User)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SaveCursor(ctx, second.stream, stored); err != nil {
		t.Fatal(err)
	}
	third := e.start(t)
	devenv.Eventually(t, setup, "replay reached the end of the first run", func() bool { return third.Stats().Cursor >= end })
	for v, n := range third.Stats().Verdicts {
		if v != reconcile.ClassSynced && v != reconcile.ClassIgnored {
			t.Errorf("replay reached verdict %s %d times", v, n)
		}
	}
	after, err := e.store.UserMoods(ctx, alice.User)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(values(before), values(after)) {
		t.Fatalf("replay changed moods:\nbefore %v\nafter  %v", before, after)
	}
}

// TestFirehoseURL derives the stream from PDS URLs.
func TestFirehoseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:2583":    "ws://localhost:2583/xrpc/com.atproto.sync.subscribeRepos",
		"https://pds.example.com/": "wss://pds.example.com/xrpc/com.atproto.sync.subscribeRepos",
	} {
		got, err := FirehoseURL(in)
		if err != nil || got != want {
			t.Errorf("FirehoseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := FirehoseURL("ftp://x"); err == nil {
		t.Error("ftp:// accepted")
	}
}

func values(ms []*model.Mood) map[string]model.Mood {
	out := make(map[string]model.Mood, len(ms))
	for _, m := range ms {
		out[m.ID] = *m
	}
	return out
}
