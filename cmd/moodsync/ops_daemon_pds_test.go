package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// scrape reads /metrics into series → value; a series is written as the
// exposition prints it: name{label="value",…}, labels sorted by name.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds every series of a metric whose labels include all of want
// (each `label="value"`).
func sum(series map[string]float64, name string, want ...string) float64 {
	total := 0.0
	for s, v := range series {
		n, labels, _ := strings.Cut(s, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// get fetches a path of the daemon's HTTP server.
func get(addr, path string) (int, string) { return getWith(addr, path, "") }

// getWith fetches a path with an Authorization header (none when empty).
func getWith(addr, path, authorization string) (int, string) {
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testDB is a fresh database name on the shared test Mongo.
func testDB(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "t" + hex.EncodeToString(b)
	t.Cleanup(func() {
		s, err := mongostore.Connect(devenv.MongoURI(t), db)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.DB.Drop(ctx)
			_ = s.Close(ctx)
		}
	})
	return db
}

// testDaemon is a daemon (not started) on the PDS at pdsURL, a fresh
// database reached at mongoURI (the store returned reads it directly), an
// embedded NATS of its own and a free HTTP port, with anti-entropy off
// and the admin routes on (adminTestToken).
func testDaemon(t *testing.T, pdsURL, plcURL, mongoURI string) (d *daemon, store *mongostore.Store, natsURL, httpAddr string) {
	natsURL, db, httpAddr := devenv.NewNATS(t), testDB(t), freeAddr(t)
	d = &daemon{t: t, env: []string{
		"MOODSYNC_PDS_URL=" + pdsURL,
		"MOODSYNC_PLC_URL=" + plcURL,
		"MOODSYNC_MONGO_URI=" + mongoURI,
		"MOODSYNC_MONGO_DB=" + db,
		"MOODSYNC_NATS_URL=" + natsURL,
		"MOODSYNC_HTTP_ADDR=" + httpAddr,
		"MOODSYNC_LOG_FORMAT=text",
		"MOODSYNC_ANTI_ENTROPY_EVERY=0",
		"MOODSYNC_ADMIN_TOKEN=" + adminTestToken,
	}}
	store, err := mongostore.Connect(devenv.MongoURI(t), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	return d, store, natsURL, httpAddr
}

// TestMetricsMatchAScriptedRunAndReadyzFollowsMongo runs the daemon on
// real parts — the dev PDS behind a counting proxy, an embedded NATS, the
// Mongo-wire server behind a TCP forwarder — scripts intents, then checks
// that /metrics says what happened, and that /readyz fails while Mongo is
// unreachable and recovers.
func TestMetricsMatchAScriptedRunAndReadyzFollowsMongo(t *testing.T) {
	clearEnv(t)
	pds := devenv.NeedPDS(t)
	proxy := devenv.NewProxy(t, pds.URL)
	mongoAddr := strings.TrimSuffix(strings.TrimPrefix(devenv.MongoURI(t), "mongodb://"), "/")
	fwd := devenv.NewForwarder(t, mongoAddr)
	d, store, natsURL, httpAddr := testDaemon(t, proxy.URL, pds.PLCURL, "mongodb://"+fwd.Addr+"/")
	// The users exist before the daemon starts, so the follower knows them
	// from its first event on.
	alice := pds.CreateUser(t, store)
	bob := pds.CreateUser(t, store)
	d.start()
	defer func() {
		if code := d.stop(); code != 0 {
			t.Errorf("run exited %d", code)
		}
	}()
	_, js := devenv.ConnectJetStream(t, natsURL)
	ctx := context.Background()
	devenv.Eventually(t, 60*time.Second, "leading and ready", func() bool {
		code, _ := get(httpAddr, "/readyz")
		return code == http.StatusOK && sum(scrape(t, httpAddr), "moodsync_firehose_leader") == 1
	})

	// Script: three creates, one delete, one intent naming another user's
	// mood, one that is not JSON.
	var ids []string
	for i := range 3 {
		id := devenv.InsertMood(t, store, alice.User, "scripted "+strconv.Itoa(i), time.Now().Add(time.Duration(i)*time.Second))
		ids = append(ids, id)
		if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: id, User: alice.User}); err != nil {
			t.Fatal(err)
		}
	}
	rkeys := func() int {
		moods, err := store.Moods(ctx, ids)
		if err != nil {
			return -1
		}
		n := 0
		for _, m := range moods {
			if m.Rkey != "" {
				n++
			}
		}
		return n
	}
	devenv.Eventually(t, 60*time.Second, "three moods on the PDS", func() bool { return rkeys() == 3 })
	// Their creates seen on the firehose too, or a create handled after the
	// soft delete below would (rightly) be an orphan.
	devenv.Eventually(t, 60*time.Second, "the creates followed", func() bool {
		return sum(scrape(t, httpAddr), "moodsync_firehose_mood_ops_total") == 3
	})
	devenv.SoftDelete(t, store, ids[0])
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpDelete, MongoID: ids[0], User: alice.User}); err != nil {
		t.Fatal(err)
	}
	devenv.Eventually(t, 60*time.Second, "deleted mood's record gone", func() bool { return rkeys() == 2 })
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: ids[1], User: bob.User}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, intent.SubjectPrefix+intent.OpCreate, []byte("{not json")); err != nil {
		t.Fatal(err)
	}

	// And a change on the PDS side: alice deletes a record herself.
	moods, err := store.Moods(ctx, ids[2:])
	if err != nil {
		t.Fatal(err)
	}
	api, err := pds.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	err = api.Post(ctx, syntax.NSID("com.atproto.repo.deleteRecord"),
		map[string]any{"repo": alice.DID, "collection": model.Collection, "rkey": moods[ids[2]].Rkey}, nil)
	if err != nil {
		t.Fatal(err)
	}

	var m map[string]float64
	devenv.Eventually(t, 60*time.Second, "every intent settled, every op followed, all counted", func() bool {
		m = scrape(t, httpAddr)
		_, pending := m["moodsync_intents_pending"]
		// The app's 4; and the first start's reconcile of each user, and
		// one per gap the follower queued (the PDS's #sync of a new account
		// may reach the firehose after the start).
		gaps := float64(strings.Count(d.logs.String(), `msg="queueing a reconcile of the user"`))
		return sum(m, "moodsync_intents_total", `op="create"`, `outcome="applied"`)+sum(m, "moodsync_intents_total", `op="delete"`, `outcome="applied"`) == 4 &&
			sum(m, "moodsync_intents_total", `op="reconcile"`, `outcome="applied"`) == 2+gaps &&
			sum(m, "moodsync_intents_total", `outcome="dead"`) == 2 &&
			pending && sum(m, "moodsync_intents_pending") == 0 &&
			// 3 creates and 1 delete by moodsync, 1 delete by alice
			sum(m, "moodsync_firehose_mood_ops_total") == 5 &&
			sum(m, "moodsync_firehose_ops_total", `decision="pds-delete"`) == 1 &&
			// caught up with the live head
			sum(m, "moodsync_firehose_head_seq") > 0 && sum(m, "moodsync_firehose_lag_events") == 0
	})

	expect := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	expect("creates applied", sum(m, "moodsync_intents_total", `op="create"`, `outcome="applied"`), 3)
	expect("deletes applied", sum(m, "moodsync_intents_total", `op="delete"`, `outcome="applied"`), 1)
	expect("other user's mood dead-lettered", sum(m, "moodsync_intents_total", `op="create"`, `outcome="dead"`), 1)
	expect("bad JSON dead-lettered", sum(m, "moodsync_intents_total", `op="invalid"`, `outcome="dead"`), 1)
	expect("dead letters stored", sum(m, "moodsync_dead_letters"), 2)
	// Retries are whatever the run needed: as many as the log says.
	expect("retries", sum(m, "moodsync_intents_total", `outcome="retry"`),
		float64(strings.Count(d.logs.String(), `msg="intent failed; will retry"`)))
	// Logins, refreshes and writes: as many as reached the PDS.
	expect("logins", sum(m, "moodsync_pds_logins_total"), float64(proxy.Count("com.atproto.server.createSession")))
	expect("refreshes", sum(m, "moodsync_pds_refreshes_total"), float64(proxy.Count("com.atproto.server.refreshSession")))
	if sum(m, "moodsync_pds_logins_total") != 1 {
		t.Errorf("%v logins for one user, want 1", sum(m, "moodsync_pds_logins_total"))
	}
	for _, method := range []string{"applyWrites", "createRecord", "deleteRecord", "putRecord"} {
		expect(method+" timed", sum(m, "moodsync_pds_write_seconds_count", `method="`+method+`"`),
			float64(proxy.Count("com.atproto.repo."+method)))
	}
	expect("records written or adopted", sum(m, "moodsync_engine_actions_total", `action="pds_create"`)+
		sum(m, "moodsync_engine_actions_total", `action="pds_adopt"`), 3)
	expect("records deleted", sum(m, "moodsync_engine_actions_total", `action="pds_delete"`), 1)
	expect("build info", sum(m, "moodsync_build_info"), 1)
	// One replica: it leads, once.
	expect("leader", sum(m, "moodsync_firehose_leader"), 1)
	expect("leaderships acquired", sum(m, "moodsync_leader_changes_total", `reason="acquired"`), 1)
	expect("leaderships lost", sum(m, "moodsync_leader_changes_total", `reason="lost"`), 0)
	expect("follower ready", sum(m, "moodsync_firehose_ready"), 1)
	// Caught up, the lag in time is how old the last event was when it
	// was handled (the PDS's own emission delay included): reported, and
	// no events behind.
	if _, ok := m["moodsync_firehose_lag_seconds"]; !ok {
		t.Error("no moodsync_firehose_lag_seconds while following")
	}
	expect("lag events when caught up", sum(m, "moodsync_firehose_lag_events"), 0)
	if m["moodsync_firehose_seq"] != m["moodsync_firehose_head_seq"] {
		t.Errorf("caught up, yet seq %v != head %v", m["moodsync_firehose_seq"], m["moodsync_firehose_head_seq"])
	}
	for _, dec := range []string{"duplicate", "spoof", "orphan", "invalid"} {
		expect(dec+" verdicts", sum(m, "moodsync_firehose_ops_total", `decision="`+dec+`"`), 0)
	}
	gone, err := store.Moods(ctx, ids[2:])
	if err != nil {
		t.Fatal(err)
	}
	if !gone[ids[2]].Deleted {
		t.Error("the mood whose record alice deleted is not soft-deleted")
	}

	// Readiness follows Mongo; liveness does not.
	if code, body := get(httpAddr, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the outage:\n%s", code, body)
	}
	fwd.Down()
	var body string
	devenv.Eventually(t, 60*time.Second, "/readyz fails while Mongo is unreachable", func() bool {
		var code int
		code, body = get(httpAddr, "/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "mongo: not ready") {
		t.Errorf("/readyz body does not name Mongo:\n%s", body)
	}
	if code, _ := get(httpAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d during a Mongo outage, want 200", code)
	}
	fwd.Up(t)
	devenv.Eventually(t, 60*time.Second, "/readyz recovers with Mongo", func() bool {
		code, _ := get(httpAddr, "/readyz")
		return code == http.StatusOK
	})
	for _, secret := range []string{alice.Password, bob.Password} {
		if strings.Contains(d.logs.String(), secret) {
			t.Error("a PDS password reached the logs")
		}
	}
}
