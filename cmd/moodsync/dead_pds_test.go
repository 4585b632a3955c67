package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// deadWorld is a daemon (publisher and firehose follower) on the dev PDS,
// an embedded NATS and a fresh database, and the dead commands pointed at
// that NATS.
type deadWorld struct {
	t        *testing.T
	ctx      context.Context
	pds      *devenv.PDS
	store    *mongostore.Store
	natsURL  string
	js       jetstream.JetStream
	httpAddr string
	d        *daemon
	accounts []*devenv.Account
}

func newDeadWorld(t *testing.T) *deadWorld {
	clearEnv(t)
	w := &deadWorld{t: t, ctx: context.Background(), pds: devenv.NeedPDS(t), store: devenv.NewStore(t),
		natsURL: devenv.NewNATS(t), httpAddr: freeAddr(t)}
	_, w.js = devenv.ConnectJetStream(t, w.natsURL)
	w.d = &daemon{t: t, env: []string{
		"MOODSYNC_PDS_URL=" + w.pds.URL,
		"MOODSYNC_PLC_URL=" + w.pds.PLCURL,
		"MOODSYNC_MONGO_URI=" + devenv.MongoURI(t),
		"MOODSYNC_MONGO_DB=" + w.store.DB.Name(),
		"MOODSYNC_NATS_URL=" + w.natsURL,
		"MOODSYNC_HTTP_ADDR=" + w.httpAddr,
		"MOODSYNC_ANTI_ENTROPY_EVERY=0",
		"MOODSYNC_LOG_FORMAT=text",
	}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", w.d.logs.String())
		}
		for _, a := range w.accounts {
			if strings.Contains(w.d.logs.String(), a.Password) {
				t.Error("a PDS password reached the daemon's logs")
			}
		}
	})
	return w
}

func (w *deadWorld) user() *devenv.Account {
	a := w.pds.CreateUser(w.t, w.store)
	w.accounts = append(w.accounts, a)
	return a
}

// setUser sets fields of a users row (creating it when missing).
func (w *deadWorld) setUser(sub string, set bson.D) {
	w.t.Helper()
	_, err := w.store.DB.Collection(mongostore.UsersCollection).UpdateOne(w.ctx, bson.D{{Key: "_id", Value: sub}},
		bson.D{{Key: "$set", Value: set}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		w.t.Fatal(err)
	}
}

// cli runs a moodsync command on the world's NATS; it fails the test when
// a password reaches the output.
func (w *deadWorld) cli(ctx context.Context, cmd *deadCommand, args ...string) (int, string) {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	var code int
	args = append(args, "--nats-url", w.natsURL, "--log-level", "warn")
	if cmd == nil {
		code = Main(ctx, append([]string{"dead"}, args...), &stdout, &stderr)
	} else {
		cmd.stdout, cmd.stderr = &stdout, &stderr
		if err := cmd.Run(ctx, args); err != nil {
			code = 1
			stderr.WriteString(err.Error())
		}
	}
	for _, a := range w.accounts {
		if strings.Contains(stdout.String()+stderr.String(), a.Password) {
			w.t.Fatalf("dead %s: a PDS password reached the output", args[0])
		}
	}
	if testing.Verbose() {
		w.t.Logf("moodsync dead %s → %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return code, stdout.String()
}

// letters is `dead list --json` with the filter flags given.
// letters lists the dead letters of the app's intents: those of the
// reconcile intents moodsync queues itself (a user's gap reconcile, when
// its login is refused, ends as one too) are left out.
func (w *deadWorld) letters(flags ...string) []deadletter.Letter {
	all := w.allLetters(flags...)
	return slices.DeleteFunc(all, isOwn)
}

// own counts the dead letters of moodsync's own reconcile intents that
// flags select.
func (w *deadWorld) own(flags ...string) int {
	n := 0
	for _, l := range w.allLetters(flags...) {
		if isOwn(l) {
			n++
		}
	}
	return n
}

func isOwn(l deadletter.Letter) bool { return l.Subject == intent.SubjectPrefix+intent.OpReconcile }

func (w *deadWorld) allLetters(flags ...string) []deadletter.Letter {
	w.t.Helper()
	code, out := w.cli(w.ctx, nil, append([]string{"list", "--json"}, flags...)...)
	if code != 0 {
		w.t.Fatalf("dead list exited %d", code)
	}
	var l deadList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		w.t.Fatalf("dead list --json: %v\n%s", err, out)
	}
	return l.Letters
}

func (w *deadWorld) publishRaw(subject, data string) {
	w.t.Helper()
	if _, err := w.js.Publish(w.ctx, subject, []byte(data)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *deadWorld) publish(op, user, id string) {
	w.t.Helper()
	if err := intent.Publish(w.ctx, w.js, intent.Intent{Op: op, User: user, MongoID: id}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *deadWorld) mood(id string) *model.Mood {
	w.t.Helper()
	m, err := w.store.Moods(w.ctx, []string{id})
	if err != nil {
		w.t.Fatal(err)
	}
	return m[id]
}

// onPDS waits until the mood has an rkey and its repo that record.
func (w *deadWorld) onPDS(did, id string) {
	w.t.Helper()
	devenv.Eventually(w.t, 60*time.Second, "mood "+id+" on the PDS", func() bool {
		m := w.mood(id)
		if m == nil || m.Rkey == "" {
			return false
		}
		recs, err := w.pds.Records(w.ctx, did)
		return err == nil && slices.ContainsFunc(recs, func(r model.Record) bool { return r.Rkey == m.Rkey && r.Value.MoodID() == id })
	})
}

// TestDeadLettersOfEveryReason makes the running daemon dead-letter an
// intent for every reason its publisher gives — seven malformed intents,
// and four well-formed ones it cannot apply: another user's mood, a user
// with no users row, one with no password, a refused login — then lists
// them (text, JSON, each filter), replays the ones whose cause is fixed
// (the password corrected or set, the account and row made: each mood
// reaches the PDS), shows that another user's mood stays dead and that
// malformed letters are never replayed, and drops the rest.
//
// Inactive accounts' letters are shown by lifecycle_pds_test.go; the
// golden files show how such a letter is listed.
func TestDeadLettersOfEveryReason(t *testing.T) {
	w := newDeadWorld(t)
	ctx := w.ctx
	now := time.Now()
	alice, mallory, carol, dave := w.user(), w.user(), w.user(), w.user()
	// The daemon's first start reconciles every user before the scene is
	// set, so only the intents below end as dead letters.
	w.d.start()
	defer func() {
		if code := w.d.stop(); code != 0 {
			t.Errorf("run exited %d", code)
		}
	}()
	devenv.Eventually(t, 60*time.Second, "the first start's reconciles carried out", func() bool {
		m := scrape(t, w.httpAddr)
		return sum(m, "moodsync_intents_total", `op="reconcile"`, `outcome="applied"`) >= 4 && sum(m, "moodsync_intents_pending") == 0
	})
	aliceMood := devenv.InsertMood(t, w.store, alice.User, "alice's", now)
	carolMood := devenv.InsertMood(t, w.store, carol.User, "carol's", now)
	daveMood := devenv.InsertMood(t, w.store, dave.User, "dave's", now)
	const ghost = "auth0|ghost"
	ghostMood := devenv.InsertMood(t, w.store, ghost, "ghost's", now)
	w.setUser(carol.User, bson.D{{Key: "atproto.password", Value: "not-" + carol.Password}})
	w.setUser(dave.User, bson.D{{Key: "atproto.password", Value: ""}})

	// The malformed intents first; --since tells them from the rest.
	id := aliceMood
	w.publishRaw("moods.intent.create", `{"op":"create",`)
	w.publishRaw("moods.intent.create", `{"user":"`+alice.User+`","mongoId":"`+id+`"}`)
	w.publishRaw("moods.intent.zap", `{"op":"zap","user":"`+alice.User+`"}`)
	w.publishRaw("moods.intent.create", `{"op":"create","user":"`+alice.User+`","mongoId":"nothex"}`)
	w.publishRaw("moods.intent.purge", `{"op":"purge","user":"`+alice.User+`","did":"plc:alice"}`)
	w.publishRaw("moods.intent.create", `{"op":"create","mongoId":"`+id+`"}`)
	w.publishRaw("moods.intent.delete", `{"op":"create","user":"`+alice.User+`","mongoId":"`+id+`"}`)
	devenv.Eventually(t, 60*time.Second, "seven malformed intents dead-lettered", func() bool { return len(w.letters()) == 7 })
	mark := time.Now()
	w.publish(intent.OpCreate, mallory.User, aliceMood)
	w.publish(intent.OpCreate, ghost, ghostMood)
	w.publish(intent.OpCreate, dave.User, daveMood)
	w.publish(intent.OpCreate, carol.User, carolMood)
	devenv.Eventually(t, 60*time.Second, "eleven dead letters", func() bool { return len(w.letters()) == 11 })

	type row struct{ subject, reason, user, mood string }
	var got []row
	for _, l := range w.letters() {
		if l.Deliveries < 1 || l.Time.Before(now.Add(-time.Minute)) || l.Truncated {
			t.Errorf("letter %d: deliveries %d, time %v, truncated %v", l.Seq, l.Deliveries, l.Time, l.Truncated)
		}
		got = append(got, row{l.Subject, l.Reason, l.User, l.MongoID})
	}
	// Reasons are matched on what identifies them; the PDS words the rest.
	want := []row{
		{"moods.intent.create", "bad JSON: ", "", ""},
		{"moods.intent.create", "missing op", alice.User, id},
		{"moods.intent.zap", `unknown op "zap"`, alice.User, ""},
		{"moods.intent.create", `bad mongoId "nothex"`, alice.User, "nothex"},
		{"moods.intent.purge", `bad did "plc:alice"`, alice.User, ""},
		{"moods.intent.create", "missing user", "", id},
		{"moods.intent.delete", `op "create" does not match subject "moods.intent.delete"`, alice.User, id},
		{"moods.intent.create", "mood " + aliceMood + " is not owned by user " + mallory.User, mallory.User, aliceMood},
		{"moods.intent.create", "user " + ghost + " has no PDS account", ghost, ghostMood},
		{"moods.intent.create", "no PDS session or password for " + dave.DID, dave.User, daveMood},
		{"moods.intent.create", "PDS login refused for " + carol.DID, carol.User, carolMood},
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d letters, want %d: %v", len(got), len(want), got)
	}
	// Users are worked on concurrently: the order of the letters is the
	// order their intents failed in, so each wanted letter is looked for.
	for _, wl := range want {
		i := slices.IndexFunc(got, func(g row) bool {
			return g.subject == wl.subject && g.user == wl.user && g.mood == wl.mood && strings.Contains(g.reason, wl.reason)
		})
		if i < 0 {
			t.Errorf("no letter %+v among %+v", wl, got)
			continue
		}
		got = slices.Delete(got, i, i+1)
	}

	// The table says the same.
	code, text := w.cli(ctx, nil, "list")
	if code != 0 || !strings.HasPrefix(text, "TIME ") || !strings.Contains(text, fmt.Sprintf("%d dead letters in MOODSYNC_DEAD", 11+w.own())) ||
		!strings.Contains(text, "PDS login refused for "+carol.DID) {
		t.Fatalf("dead list exited %d:\n%s", code, text)
	}
	// Filters.
	count := func(flags ...string) int { return len(w.letters(flags...)) }
	for _, c := range []struct {
		flags []string
		want  int
	}{
		{[]string{"--user", carol.User}, 1},
		{[]string{"--user", alice.User}, 5},
		{[]string{"--reason", "BAD "}, 3},
		{[]string{"--reason", "login refused", "--user", carol.User}, 1},
		{[]string{"--since", mark.Format(time.RFC3339Nano)}, 4},
		{[]string{"--since", "1h"}, 11},
		{[]string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, 0},
	} {
		if n := count(c.flags...); n != c.want {
			t.Errorf("dead list %s selects %d, want %d", strings.Join(c.flags, " "), n, c.want)
		}
	}

	// A dry run, and a replay without --yes, change nothing.
	before := w.letters()
	code, out := w.cli(ctx, nil, "replay", "--dry-run")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("dry run: would replay %d dead letters; 7 cannot be replayed", 4+w.own())) {
		t.Fatalf("replay --dry-run exited %d:\n%s", code, out)
	}
	if code, _ := w.cli(ctx, nil, "replay"); code != 2 {
		t.Fatalf("replay without --yes exited %d, want 2", code)
	}
	if after := w.letters(); !slices.EqualFunc(before, after, func(a, b deadletter.Letter) bool { return a.Seq == b.Seq }) {
		t.Fatalf("a dry run or a refused replay changed the letters: %d → %d", len(before), len(after))
	}

	// Fix each cause, then replay: the mood reaches the PDS and the letter
	// is gone (not dead-lettered again).
	replay := func(flags ...string) {
		t.Helper()
		want := "replayed 1 dead letter"
		if n := w.own(flags...); n > 0 {
			want = fmt.Sprintf("replayed %d dead letters", 1+n)
		}
		code, out := w.cli(ctx, nil, append([]string{"replay", "--yes"}, flags...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("replay %s exited %d:\n%s", strings.Join(flags, " "), code, out)
		}
	}
	w.setUser(carol.User, bson.D{{Key: "atproto.password", Value: carol.Password}})
	replay("--reason", "login refused")
	w.onPDS(carol.DID, carolMood)

	w.setUser(dave.User, bson.D{{Key: "atproto.password", Value: dave.Password}})
	replay("--user", dave.User)
	w.onPDS(dave.DID, daveMood)

	acct, err := w.pds.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.accounts = append(w.accounts, acct)
	w.setUser(ghost, bson.D{{Key: "atproto", Value: bson.D{{Key: "did", Value: acct.DID}, {Key: "handle", Value: acct.Handle}, {Key: "password", Value: acct.Password}}}})
	replay("--user", ghost)
	w.onPDS(acct.DID, ghostMood)

	// Another user's mood stays another user's: replayed, it is
	// dead-lettered again, and alice's mood is untouched.
	replay("--user", mallory.User)
	devenv.Eventually(t, 60*time.Second, "mallory's intent dead-lettered again", func() bool {
		l := w.letters("--user", mallory.User)
		return len(l) == 1 && strings.Contains(l[0].Reason, "is not owned by user")
	})
	// (alice's own reconcile, queued for a gap, may write it: for alice.)
	if recs, _ := w.pds.Records(ctx, mallory.DID); slices.ContainsFunc(recs, func(r model.Record) bool { return r.Value.MoodID() == aliceMood }) {
		t.Fatal("alice's mood was written for mallory")
	}
	left := w.letters()
	if len(left) != 8 {
		t.Fatalf("%d letters left, want the 7 malformed and mallory's", len(left))
	}

	// Malformed letters are never replayed.
	code, out = w.cli(ctx, nil, "replay", "--yes", "--since", mark.Add(-time.Hour).Format(time.RFC3339), "--reason", "bad")
	if code != 0 || !strings.Contains(out, "replayed 0 dead letters; 3 cannot be replayed") {
		t.Fatalf("replaying malformed letters exited %d:\n%s", code, out)
	}

	// Drop: refused without --yes, then by filter, then the rest.
	if code, _ := w.cli(ctx, nil, "drop", "--user", mallory.User); code != 2 {
		t.Fatalf("drop without --yes exited %d, want 2", code)
	}
	wantDropped := func(n int, flags ...string) string {
		if n += w.own(flags...); n == 1 {
			return "dropped 1 dead letter"
		}
		return fmt.Sprintf("dropped %d dead letters", n)
	}
	wantOut := wantDropped(1, "--user", mallory.User)
	if code, out := w.cli(ctx, nil, "drop", "--yes", "--user", mallory.User); code != 0 || !strings.Contains(out, wantOut) {
		t.Fatalf("drop --user exited %d:\n%s", code, out)
	}
	// The rest: the 7 malformed, and any of moodsync's own reconciles
	// refused for a gap the follower queued meanwhile.
	wantOut = wantDropped(7)
	if code, out := w.cli(ctx, nil, "drop", "--yes"); code != 0 || !strings.Contains(out, wantOut) {
		t.Fatalf("drop exited %d:\n%s", code, out)
	}
	if code, out := w.cli(ctx, nil, "list"); code != 0 || out != "no dead letters\n" {
		t.Fatalf("after dropping everything, list exited %d:\n%s", code, out)
	}
	devenv.Eventually(t, 30*time.Second, "moodsync_dead_letters is 0", func() bool {
		return sum(scrape(t, w.httpAddr), "moodsync_dead_letters") == 0
	})
}

// TestDeadReplayInterruptedLosesNothing dead-letters twenty creates of a
// user whose login is refused, stops the daemon, corrects the password,
// and replays with a context cancelled after the seventh replay (as SIGINT
// does). Every intent is then either still a dead letter or stored in the
// intents stream; replaying again finishes, each intent stored once; the
// restarted daemon writes all twenty moods, one record each.
func TestDeadReplayInterruptedLosesNothing(t *testing.T) {
	w := newDeadWorld(t)
	ctx := w.ctx
	carol := w.user()
	w.setUser(carol.User, bson.D{{Key: "atproto.password", Value: "not-" + carol.Password}})
	var ids []string
	base := time.Now().Add(-time.Hour)
	for i := range 20 {
		ids = append(ids, devenv.InsertMood(t, w.store, carol.User, "mood "+string(rune('a'+i)), base.Add(time.Duration(i)*time.Second)))
	}
	sort.Strings(ids)
	w.d.start()
	for _, id := range ids {
		w.publish(intent.OpCreate, carol.User, id)
	}
	devenv.Eventually(t, 60*time.Second, "twenty dead letters", func() bool { return len(w.letters()) == 20 })
	if code := w.d.stop(); code != 0 {
		t.Fatalf("run exited %d", code)
	}
	w.setUser(carol.User, bson.D{{Key: "atproto.password", Value: carol.Password}})

	// What the intents stream holds (the daemon is stopped: replays wait
	// there) and what is still dead.
	stored := func() (intents, dead []string) {
		for _, raw := range devenv.StreamMsgs(t, w.js, intent.Stream, intent.Subjects) {
			in, err := intent.Parse(raw.Subject, raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			if in.Op != intent.OpReconcile {
				intents = append(intents, in.MongoID)
			}
		}
		for _, l := range w.letters() {
			dead = append(dead, l.MongoID)
		}
		sort.Strings(intents)
		return intents, dead
	}

	rctx, cancel := context.WithCancel(ctx)
	n := 0
	// The first start's reconcile of carol was refused too: its letter is
	// replayed with the rest, but only the app's intents are counted.
	cmd := &deadCommand{replayed: func(l deadletter.Letter) {
		if l.Subject == intent.SubjectPrefix+intent.OpReconcile {
			return
		}
		if n++; n == 7 {
			cancel()
		}
	}}
	code, out := w.cli(rctx, cmd, "replay", "--yes")
	cancel()
	if code == 0 || !regexp.MustCompile(`replayed [7-9] of 2[0-3] dead letters`).MatchString(out) {
		t.Fatalf("interrupted replay exited %d:\n%s", code, out)
	}
	intents, dead := stored()
	for _, id := range ids {
		if !slices.Contains(intents, id) && !slices.Contains(dead, id) {
			t.Fatalf("intent of %s lost: neither replayed nor dead-lettered", id)
		}
	}
	if len(intents) != 7 || len(dead) != 13 {
		t.Fatalf("after the interruption: %d replayed, %d dead, want 7 and 13", len(intents), len(dead))
	}

	if code, out := w.cli(ctx, nil, "replay", "--yes"); code != 0 || !regexp.MustCompile(`replayed 1[3-5] dead letters`).MatchString(out) {
		t.Fatalf("second replay exited %d:\n%s", code, out)
	}
	if intents, dead := stored(); !slices.Equal(intents, ids) || len(dead) != 0 {
		t.Fatalf("after the second replay: intents %v, %d dead; want each of the 20 once", intents, len(dead))
	}

	w.d.start()
	defer func() {
		if code := w.d.stop(); code != 0 {
			t.Errorf("run exited %d", code)
		}
	}()
	for _, id := range ids {
		w.onPDS(carol.DID, id)
	}
	if recs, err := w.pds.Records(ctx, carol.DID); err != nil || len(recs) != 20 {
		t.Fatalf("carol's repo: %d records (%v), want 20", len(recs), err)
	}
	if l := w.letters(); len(l) != 0 {
		t.Fatalf("%d dead letters after the replayed intents ran", len(l))
	}
}
