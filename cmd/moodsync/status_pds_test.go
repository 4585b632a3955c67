package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

// TestStatusOfThreeUsersOnTheRealPDS runs the daemon on the dev PDS, an
// embedded NATS and the Mongo-wire server, and reads `moodsync status` of
// a healthy user, one with drift and one who deactivated their account:
// each says what happened to them, `--json` equals what GET /v1/users/{sub}
// answers, and no password is shown.
func TestStatusOfThreeUsersOnTheRealPDS(t *testing.T) {
	clearEnv(t)
	pds := devenv.NeedPDS(t)
	d, store, natsURL, httpAddr := testDaemon(t, pds.URL, pds.PLCURL, devenv.MongoURI(t))
	ctx := context.Background()
	healthy, drifty, sleepy := pds.CreateUser(t, store), pds.CreateUser(t, store), pds.CreateUser(t, store)
	users := []*devenv.Account{healthy, drifty, sleepy}
	var ids []string
	for i, u := range users {
		for j := range 2 {
			ids = append(ids, devenv.InsertMood(t, store, u.User, "before the start", time.Now().Add(time.Duration(i*2+j)*time.Second)))
		}
	}
	// The first start's sweep writes every mood and records a reconcile.
	d.start()
	defer func() {
		if code := d.stop(); code != 0 {
			t.Errorf("run exited %d", code)
		}
	}()
	_, js := devenv.ConnectJetStream(t, natsURL)
	devenv.Eventually(t, 60*time.Second, "every mood written, every user reconciled, no intent waiting", func() bool {
		moods, err := store.Moods(ctx, ids)
		if err != nil || len(moods) != len(ids) {
			return false
		}
		for _, m := range moods {
			if m.Rkey == "" {
				return false
			}
		}
		for _, u := range users {
			if b, err := store.Binding(ctx, u.User); err != nil || b == nil || b.LastReconcile == nil || b.LastEvent == nil {
				return false
			}
		}
		m := scrape(t, httpAddr)
		_, ok := m["moodsync_intents_pending"]
		return ok && m["moodsync_intents_pending"] == 0 && m["moodsync_firehose_lag_events"] == 0
	})

	// Drift behind moodsync's back: a mood inserted without an intent, and
	// one pointing at a record that was never written. And an intent naming
	// another user's mood, which is dead-lettered.
	devenv.InsertMood(t, store, drifty.User, "no intent was published", time.Now())
	// (An hour old: a mood newer than the repo's newest commit whose record
	// is missing is taken as lost by the repo, and written again.)
	stale := devenv.InsertMood(t, store, drifty.User, "its record never existed", time.Now().Add(-time.Hour))
	oid, _ := bson.ObjectIDFromHex(stale)
	if _, err := store.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "atproto", Value: bson.D{{Key: "rkey", Value: "3kzzzzzzzzz22"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: ids[0], User: drifty.User}); err != nil {
		t.Fatal(err)
	}

	// The sleepy user deactivates their account, then moodsync is asked to
	// write one of their moods: the intent is dead-lettered.
	api, err := pds.Login(ctx, sleepy)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Post(ctx, syntax.NSID("com.atproto.server.deactivateAccount"), map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	devenv.Eventually(t, 60*time.Second, "the deactivation seen on the firehose", func() bool {
		b, err := store.Binding(ctx, sleepy.User)
		return err == nil && b != nil && b.Status == model.StatusDeactivated && b.LastEvent != nil && b.LastEvent.Kind == model.EventAccount
	})
	parked := devenv.InsertMood(t, store, sleepy.User, "written while deactivated", time.Now())
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: parked, User: sleepy.User}); err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := Main(ctx, append([]string{"status"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("status %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	web := func(user string) (int, string) {
		return getWith(httpAddr, "/v1/users/"+url.PathEscape(user), "Bearer "+adminTestToken)
	}
	// The same JSON both ways, once what the daemon is doing has settled.
	read := func(u *devenv.Account, what string, settled func(s *status.User) bool) (*status.User, string) {
		t.Helper()
		var s status.User
		var out string
		devenv.Eventually(t, 60*time.Second, u.User+": "+what+", and the CLI's JSON the same as the HTTP port's", func() bool {
			code, body := web(u.User)
			out = cli("--user", u.User, "--json")
			s = status.User{}
			return code == http.StatusOK && body == out && json.Unmarshal([]byte(out), &s) == nil && settled(&s)
		})
		text := cli("--user", u.User)
		t.Logf("moodsync status --user %s\n%s", u.User, text)
		for _, o := range []string{out, text} {
			if strings.Contains(o, u.Password) {
				t.Fatalf("the password of %s is in its status:\n%s", u.User, o)
			}
		}
		return &s, text
	}
	expect := func(user, text string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(text, l) {
				t.Errorf("status of %s lacks %q:\n%s", user, l, text)
			}
		}
	}

	// Its last event is a commit of the sweep, or the PDS's #account of the
	// account's creation, which may reach the firehose after the start.
	s, text := read(healthy, "healthy", func(s *status.User) bool {
		return s.Drift.Summary != nil && s.Drift.Drift == 0
	})
	if s.UsersRow == nil || s.UsersRow.DID != healthy.DID || s.UsersRow.Handle != healthy.Handle || !s.UsersRow.HasPassword ||
		s.Binding == nil || s.Binding.DID != healthy.DID || s.PDS == nil || !s.PDS.Active ||
		s.Moods != (status.Moods{Total: 2, LiveSynced: 2}) || s.Drift.ATProto.Matched != 2 ||
		s.Intents.Pending == nil || s.Intents.Count != 0 || !s.Intents.Complete || s.DeadLetters.Count != 0 ||
		s.LastEvent == nil || s.LastReconcile == nil || s.LastReconcile.Error != "" {
		t.Errorf("status of the healthy user: %s", text)
	}
	expect(healthy.User, text, "users row: "+healthy.DID+", handle "+healthy.Handle+", password stored",
		"the PDS says: active", "Drift (fresh compare): 0 to repair; notices: 0", "Pending intents: 0", "Dead letters: 0",
		"Last firehose event: 20", "Last reconcile: 20")

	s, text = read(drifty, "drift and a dead letter", func(s *status.User) bool {
		return s.Drift.Summary != nil && s.Drift.Drift == 2 && s.DeadLetters.Count == 1
	})
	if s.Moods != (status.Moods{Total: 4, LiveSynced: 3, LiveNotSynced: 1}) || len(s.Drift.Plan) != 2 ||
		!strings.Contains(s.DeadLetters.Letters[0].Reason, "not owned") {
		t.Errorf("status of the user with drift: %s", text)
	}
	expect(drifty.User, text, "Drift (fresh compare): 2 to repair", "1 mood not synced to ATProto",
		"1 mood pointing at a missing record (stale rkey)", "Plan: soft-delete 1, create 1", "Dead letters: 1")

	s, text = read(sleepy, "deactivated, its intent dead-lettered", func(s *status.User) bool {
		return s.DeadLetters.Count == 1
	})
	if s.Binding == nil || s.Binding.Status != model.StatusDeactivated || s.PDS == nil || s.PDS.Active || s.PDS.Status != model.StatusDeactivated ||
		s.Drift.Summary != nil || !strings.Contains(s.Drift.Error, "deactivated") ||
		s.Moods != (status.Moods{Total: 3, LiveSynced: 2, LiveNotSynced: 1}) ||
		s.LastEvent == nil || s.LastEvent.Kind != model.EventAccount ||
		!strings.Contains(s.DeadLetters.Letters[0].Reason, "deactivated") {
		t.Errorf("status of the deactivated user: %s", text)
	}
	expect(sleepy.User, text, "Account status: ⛔ deactivated (last seen ", "the PDS says: deactivated",
		"Drift: ❗ not compared: ", "(account, seq ")

	// Without the token, or with another, nothing of a user: 401, no detail.
	before := sum(scrape(t, httpAddr), "moodsync_http_admin_denied_total", `reason="unauthorized"`)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + adminTestToken + "x"} {
		code, body := getWith(httpAddr, "/v1/users/"+url.PathEscape(healthy.User), auth)
		if code != http.StatusUnauthorized || body != "unauthorized\n" {
			t.Errorf("GET with %q: %d %s", auth, code, body)
		}
	}
	if n := sum(scrape(t, httpAddr), "moodsync_http_admin_denied_total", `reason="unauthorized"`) - before; n != 3 {
		t.Errorf("%v refusals counted, want 3", n)
	}

	// Nobody: 404 on the port, exit 1 from the command.
	if code, body := web("auth0|nobody"); code != http.StatusNotFound || !strings.Contains(body, "knows nothing of auth0|nobody") {
		t.Errorf("GET of an unknown user: %d %s", code, body)
	}
	var out bytes.Buffer
	if code := Main(ctx, []string{"status", "--user", "auth0|nobody"}, &out, &out); code != 1 {
		t.Errorf("status of an unknown user: exit %d\n%s", code, out.String())
	}
	if strings.Contains(d.logs.String(), sleepy.Password) {
		t.Error("a password reached the logs")
	}
}
