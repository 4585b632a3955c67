package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// replica is `moodsync run` in a child process.
type replica struct {
	name string
	http string
	cmd  *exec.Cmd
	logs syncWriter
	done chan error
}

func startReplica(t *testing.T, name string, env []string) *replica {
	t.Helper()
	r := &replica{name: name, http: freeAddr(t), done: make(chan error, 1)}
	r.cmd = exec.Command(os.Args[0], "run")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOODSYNC_") {
			r.cmd.Env = append(r.cmd.Env, kv)
		}
	}
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Env = append(r.cmd.Env, runAsMoodsync+"=1", "MOODSYNC_HTTP_ADDR="+r.http, "MOODSYNC_LOG_FORMAT=text")
	r.cmd.Stdout, r.cmd.Stderr = &r.logs, &r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("--- logs of %s ---\n%s", r.name, r.logs.String())
		}
	})
	devenv.Eventually(t, 120*time.Second, name+" serves HTTP", func() bool {
		code, _ := get(r.http, "/healthz")
		return code == http.StatusOK
	})
	return r
}

// stop ends the replica with SIGTERM and returns its exit error.
func (r *replica) stop(t *testing.T) error {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop within 60s", r.name)
		return nil
	}
}

// kill ends the replica as a crash would.
func (r *replica) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

func (r *replica) metric(t *testing.T, name string, labels ...string) float64 {
	return sum(scrape(t, r.http), name, labels...)
}

func (r *replica) leads(t *testing.T) bool { return r.metric(t, "moodsync_firehose_leader") == 1 }

// TestTwoReplicasShareIntentsOneFollowsAndAStandbyTakesOver runs two
// `moodsync run` processes on one embedded NATS and Mongo-wire server and
// the real PDS: both apply intents, exactly one follows the firehose; the
// leader is killed, the other takes over from the stored cursor, and what
// changed on the PDS meanwhile reaches Mongo; in the end every mood has
// exactly its one record and no record is left without its mood.
func TestTwoReplicasShareIntentsOneFollowsAndAStandbyTakesOver(t *testing.T) {
	clearEnv(t)
	pds := devenv.NeedPDS(t)
	natsURL := devenv.NewNATS(t)
	db := testDB(t)
	store, err := mongostore.Connect(devenv.MongoURI(t), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	ctx := context.Background()
	alice := pds.CreateUser(t, store)
	bob := pds.CreateUser(t, store)
	env := []string{
		"MOODSYNC_PDS_URL=" + pds.URL,
		"MOODSYNC_PLC_URL=" + pds.PLCURL,
		"MOODSYNC_MONGO_URI=" + devenv.MongoURI(t),
		"MOODSYNC_MONGO_DB=" + db,
		"MOODSYNC_NATS_URL=" + natsURL,
		"MOODSYNC_ANTI_ENTROPY_EVERY=0",
	}
	a := startReplica(t, "replica-a", env)
	b := startReplica(t, "replica-b", env)
	replicas := []*replica{a, b}

	var lead, standby *replica
	devenv.Eventually(t, 120*time.Second, "exactly one replica leads, its follower ready", func() bool {
		la, lb := a.leads(t), b.leads(t)
		switch {
		case la && !lb:
			lead, standby = a, b
		case lb && !la:
			lead, standby = b, a
		default:
			return false
		}
		code, _ := get(lead.http, "/readyz")
		return code == http.StatusOK
	})
	if code, body := get(standby.http, "/readyz"); code != http.StatusOK {
		t.Errorf("standby /readyz = %d:\n%s", code, body)
	}
	t.Logf("%s leads, %s stands by", lead.name, standby.name)

	_, js := devenv.ConnectJetStream(t, natsURL)
	users := []*devenv.Account{alice, bob}
	var ids []string
	publishMood := func(i int) string {
		u := users[i%2]
		id := devenv.InsertMood(t, store, u.User, "ha mood "+strconv.Itoa(i), time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC))
		if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: id, User: u.User}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		return id
	}
	synced := func(id string) func() bool {
		return func() bool {
			m, err := store.Moods(ctx, []string{id})
			return err == nil && m[id] != nil && m[id].Rkey != ""
		}
	}
	// The app's create intents (the first start's reconcile intents count
	// under op="reconcile").
	applied := func(r *replica) float64 {
		return r.metric(t, "moodsync_intents_total", `op="create"`, `outcome="applied"`)
	}

	// Intents one at a time (at least six) until both replicas have applied
	// some: each takes the next from the one durable consumer when it asks.
	for i := 0; i < 6 || applied(a) == 0 || applied(b) == 0; i++ {
		if i == 100 {
			t.Fatalf("after 100 intents: %s applied %v, %s applied %v", a.name, applied(a), b.name, applied(b))
		}
		devenv.Eventually(t, 60*time.Second, "intent applied", synced(publishMood(i)))
	}
	n := len(ids)
	devenv.Eventually(t, 60*time.Second, "every intent counted once", func() bool {
		return applied(a)+applied(b) == float64(n) && a.metric(t, "moodsync_intents_pending") == 0
	})
	t.Logf("%d intents: %s applied %v, %s applied %v", n, a.name, applied(a), b.name, applied(b))
	// Only the leader follows the firehose; it saw every create.
	devenv.Eventually(t, 60*time.Second, "the leader followed every create", func() bool {
		return lead.metric(t, "moodsync_firehose_mood_ops_total") == float64(n)
	})
	if got := standby.metric(t, "moodsync_firehose_events_total"); got != 0 {
		t.Errorf("standby handled %v firehose events", got)
	}
	if _, ok := scrape(t, standby.http)["moodsync_firehose_seq"]; ok {
		t.Error("standby reports a firehose position")
	}
	devenv.Eventually(t, 60*time.Second, "the leader stored its cursor", func() bool {
		m := scrape(t, lead.http)
		return m["moodsync_firehose_saved_seq"] > 0 && m["moodsync_firehose_saved_seq"] == m["moodsync_firehose_seq"]
	})

	// The leader dies: no shutdown, no lease release.
	killed := time.Now()
	lead.kill()

	// Meanwhile, on the PDS: alice deletes one of her records, and writes
	// a record for a mood that has none yet; an intent is published too.
	w, err := pds.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	moods, err := store.Moods(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	deleted := ids[0] // alice's (even index)
	err = w.Post(ctx, syntax.NSID("com.atproto.repo.deleteRecord"),
		map[string]any{"repo": alice.DID, "collection": model.Collection, "rkey": moods[deleted].Rkey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2025, 2, 2, 2, 2, 2, 0, time.UTC)
	unlinked := devenv.InsertMood(t, store, alice.User, "written on the PDS", when)
	ids = append(ids, unlinked)
	err = w.Post(ctx, syntax.NSID("com.atproto.repo.createRecord"), map[string]any{
		"repo": alice.DID, "collection": model.Collection,
		"record": map[string]any{"$type": model.Collection, "mood": "written on the PDS",
			"when": when.Format("2006-01-02T15:04:05.000Z"), "ref": unlinked, "mongoId": unlinked},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := publishMood(len(ids))

	devenv.Eventually(t, 120*time.Second, standby.name+" takes over", func() bool { return standby.leads(t) })
	t.Logf("takeover %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	devenv.Eventually(t, 120*time.Second, "PDS-side changes reach Mongo, the late intent is applied", func() bool {
		m, err := store.Moods(ctx, []string{deleted, unlinked, late})
		return err == nil && m[deleted].Deleted && m[deleted].Rkey == "" && m[unlinked].Rkey != "" && m[late].Rkey != ""
	})
	logs := standby.logs.String()
	if !strings.Contains(logs, "standing by: another replica follows the firehose") ||
		!strings.Contains(logs, "firehose leadership acquired") || !strings.Contains(logs, "resuming firehose") {
		t.Errorf("%s's logs do not show standing by, taking over and resuming from the stored cursor", standby.name)
	}
	if strings.Count(logs, "first start on this firehose") > 0 {
		t.Errorf("%s started the firehose afresh instead of resuming", standby.name)
	}
	if got := standby.metric(t, "moodsync_leader_changes_total", `reason="acquired"`); got != 1 {
		t.Errorf("%s acquired the lease %v times, want 1", standby.name, got)
	}

	// Nothing lost, nothing doubled: every live mood has exactly its one
	// record and points at it; the deleted one has none; no record without
	// its mood.
	checkConverged(t, pds, store, ids, users)

	if err := standby.stop(t); err != nil {
		t.Errorf("%s: %v", standby.name, err)
	}
	for _, r := range replicas {
		for _, u := range users {
			if strings.Contains(r.logs.String(), u.Password) {
				t.Errorf("%s logged a PDS password", r.name)
			}
		}
	}
}

// checkConverged compares Mongo with the repos of users.
func checkConverged(t *testing.T, pds *devenv.PDS, store *mongostore.Store, ids []string, users []*devenv.Account) {
	t.Helper()
	ctx := context.Background()
	moods, err := store.Moods(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string][]string{} // mood id → rkeys of records naming it
	total := 0
	for _, u := range users {
		recs, err := pds.Records(ctx, u.DID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			total++
			byRef[r.Value.MoodID()] = append(byRef[r.Value.MoodID()], r.Rkey)
			if m := moods[r.Value.MoodID()]; m == nil || m.Deleted {
				t.Errorf("record %s of %s names mood %s, which is not live", r.Rkey, u.DID, r.Value.MoodID())
			}
		}
	}
	live := 0
	for _, id := range ids {
		m := moods[id]
		if m == nil {
			t.Errorf("mood %s gone from Mongo", id)
			continue
		}
		if m.Deleted {
			if len(byRef[id]) != 0 || m.Rkey != "" {
				t.Errorf("deleted mood %s: records %v, rkey %q", id, byRef[id], m.Rkey)
			}
			continue
		}
		live++
		if len(byRef[id]) != 1 || byRef[id][0] != m.Rkey {
			t.Errorf("live mood %s: records %v, rkey %q; want exactly its one", id, byRef[id], m.Rkey)
		}
	}
	if total != live {
		t.Errorf("%d records for %d live moods", total, live)
	}
}
