package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// aeWorld is the real parts the anti-entropy commands run against: the
// dev PDS, a fresh database on the embedded FerretDB, and the flags that
// point the commands at them.
type aeWorld struct {
	t      *testing.T
	pds    *devenv.PDS
	store  *mongostore.Store
	client *pdsclient.Client
	engine *reconcile.Engine
	flags  []string
	users  []*devenv.Account
}

func newAEWorld(t *testing.T) *aeWorld {
	clearEnv(t)
	return newAEWorldOn(t, devenv.NeedPDS(t))
}

// newAEWorldOn is an aeWorld on the given PDS.
func newAEWorldOn(t *testing.T, pds *devenv.PDS) *aeWorld {
	clearEnv(t)
	store := devenv.NewStore(t)
	client := pdsclient.New(pds.URL, store, nil)
	return &aeWorld{
		t: t, pds: pds, store: store, client: client,
		engine: reconcile.NewEngine(store, client, nil),
		flags:  []string{"--pds-url", pds.URL, "--mongo-uri", devenv.MongoURI(t), "--mongo-db", store.DB.Name(), "--log-format", "text"},
	}
}

// cli runs a moodsync command against the world; it returns the exit code
// and stdout, and fails the test if a password reached the output.
func (w *aeWorld) cli(ctx context.Context, args ...string) (int, string) {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, append(args, w.flags...), &stdout, &stderr)
	for _, u := range w.users {
		if strings.Contains(stdout.String()+stderr.String(), u.Password) {
			w.t.Fatalf("%s: a PDS password reached the output", args[0])
		}
	}
	if testing.Verbose() {
		w.t.Logf("moodsync %s → %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return code, stdout.String()
}

func (w *aeWorld) user() *devenv.Account {
	a := w.pds.CreateUser(w.t, w.store)
	w.users = append(w.users, a)
	return a
}

// as is a user writing straight to their own repo, not through moodsync.
type as struct {
	t   *testing.T
	api *atclient.APIClient
	did string
}

func (w *aeWorld) as(a *devenv.Account) *as {
	api, err := w.pds.Login(context.Background(), a)
	if err != nil {
		w.t.Fatal(err)
	}
	return &as{t: w.t, api: api, did: a.DID}
}

// put writes a record (any body) and returns its rkey.
func (u *as) put(body map[string]any) string {
	u.t.Helper()
	body["$type"] = model.Collection
	var out struct {
		URI string `json:"uri"`
	}
	err := u.api.Post(context.Background(), syntax.NSID("com.atproto.repo.createRecord"),
		map[string]any{"repo": u.did, "collection": model.Collection, "record": body, "validate": false}, &out)
	if err != nil {
		u.t.Fatal(err)
	}
	return out.URI[strings.LastIndexByte(out.URI, '/')+1:]
}

func (u *as) del(rkey string) {
	u.t.Helper()
	err := u.api.Post(context.Background(), syntax.NSID("com.atproto.repo.deleteRecord"),
		map[string]any{"repo": u.did, "collection": model.Collection, "rkey": rkey}, nil)
	if err != nil {
		u.t.Fatal(err)
	}
}

// sync publishes moods the way the daemon does.
func (w *aeWorld) sync(a *devenv.Account, ids ...string) {
	w.t.Helper()
	for id, err := range w.engine.SyncMoods(context.Background(), a.User, ids) {
		if err != nil {
			w.t.Fatalf("sync %s: %v", id, err)
		}
	}
}

func (w *aeWorld) mood(id string) *model.Mood {
	w.t.Helper()
	m, err := w.store.Moods(context.Background(), []string{id})
	if err != nil {
		w.t.Fatal(err)
	}
	return m[id]
}

func (w *aeWorld) records(did string) []model.Record {
	w.t.Helper()
	recs, err := w.client.ExportRecords(context.Background(), did)
	if err != nil {
		w.t.Fatal(err)
	}
	return recs
}

// snapshot is both sides of every user, to prove a dry run changed nothing.
func (w *aeWorld) snapshot() string {
	var b strings.Builder
	for _, u := range w.users {
		moods, err := w.store.UserMoods(context.Background(), u.User)
		if err != nil {
			w.t.Fatal(err)
		}
		sort.Slice(moods, func(i, j int) bool { return moods[i].ID < moods[j].ID })
		for _, m := range moods {
			fmt.Fprintf(&b, "mood %s %s %v %q\n", m.ID, m.Rkey, m.Deleted, m.Text)
		}
		for _, r := range w.records(u.DID) {
			fmt.Fprintf(&b, "record %s %s %s\n", u.DID, r.Rkey, r.CID)
		}
	}
	return b.String()
}

func newID() string { return bson.NewObjectID().Hex() }

// auditFacts runs audit --json and returns "user class mood rkey keep"
// lines of its findings, sorted.
func (w *aeWorld) auditFacts(ctx context.Context) []string {
	w.t.Helper()
	code, out := w.cli(ctx, "audit", "--json")
	if code != 0 {
		w.t.Fatalf("audit --json exited %d", code)
	}
	var rep auditOutput
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		w.t.Fatalf("audit --json: %v\n%s", err, out)
	}
	var facts []string
	for _, u := range rep.Users {
		if u.Error != "" {
			w.t.Fatalf("audit of %s: %s", u.User, u.Error)
		}
		for _, f := range u.Findings {
			facts = append(facts, strings.Join(strings.Fields(strings.Join([]string{u.User, string(f.Class), f.MoodID, f.Rkey, f.Keep}, " ")), " "))
		}
	}
	sort.Strings(facts)
	return facts
}

// TestAntiEntropyCommandsOnSeededDrift seeds every kind of drift across
// three users on the real PDS and FerretDB, then: audit --json reports
// exactly what was seeded; cleanup --dry-run changes nothing on either
// side; cleanup repairs all but the not-synced moods (backfill's job) and
// leaves spoofed, invalid and mismatched records alone; backfill writes
// the rest; audit --fail-on-drift then exits 0. Last, purge erases a user.
// driftSeed is every kind of drift seeded across three users by
// seedEveryDrift: the users, the ids and rkeys involved, and what an audit
// must find (want).
type driftSeed struct {
	alice, bob, carol                                                                      *devenv.Account
	want                                                                                   []string
	aSynced, aNotSynced, aDeleted, aHalf, aDup, aHalfRkey, aMissingRkey, aDupRkey, missing string
	bGone, bGoneDel, bMoved, bLegacy, bEdited, bGoneRkey, bGoneDelRkey, bMovedRkey         string
	bMovedTo, bLegacyRkey, cSynced, cSpoof, cBadRef, cNumber                               string
}

// seedEveryDrift seeds every kind of drift the audit reports across three
// users on the real PDS and the Mongo-wire store.
func seedEveryDrift(t *testing.T, w *aeWorld) *driftSeed {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	insert := func(a *devenv.Account, text string, n int) string {
		return devenv.InsertMood(t, w.store, a.User, text, now.Add(-time.Duration(n)*time.Minute))
	}
	alice, bob, carol := w.user(), w.user(), w.user()
	asAlice, asBob, asCarol := w.as(alice), w.as(bob), w.as(carol)
	// body is a record as a script would write it for mood n of insert.
	body := func(text, ref string, n int, legacy bool) map[string]any {
		when := now.Add(-time.Duration(n) * time.Minute).Format(model.WhenLayout)
		b := map[string]any{"mood": text, "when": when, "mongoId": ref}
		if !legacy {
			b["ref"] = ref
		}
		return b
	}

	// alice: synced, not synced, soft-deleted, an orphan whose soft-deleted
	// mood still points at it, a lost mood (a record naming a document
	// Mongo does not have), and a duplicate.
	aSynced, aNotSynced, aDeleted, aHalf, aDup := insert(alice, "synced", 1), insert(alice, "not synced", 2), insert(alice, "deleted", 3), insert(alice, "half-deleted", 4), insert(alice, "duplicated", 5)
	devenv.SoftDelete(t, w.store, aDeleted)
	w.sync(alice, aSynced, aHalf, aDup)
	devenv.SoftDelete(t, w.store, aHalf)
	aHalfRkey := w.mood(aHalf).Rkey
	missing := newID()
	aMissingRkey := asAlice.put(body("never in mongo", missing, 0, false))
	aDupRkey := asAlice.put(body("duplicated", aDup, 5, false))

	// bob: a record deleted on the PDS (live mood, then a soft-deleted
	// one), a mood whose record was replaced by another, a legacy
	// mongoId-only record Mongo never linked, and a text mismatch.
	bGone, bGoneDel, bMoved, bLegacy, bEdited := insert(bob, "gone", 1), insert(bob, "gone, deleted", 2), insert(bob, "moved", 3), insert(bob, "legacy", 4), insert(bob, "edited", 5)
	w.sync(bob, bGone, bGoneDel, bMoved, bEdited)
	bGoneRkey, bGoneDelRkey, bMovedRkey := w.mood(bGone).Rkey, w.mood(bGoneDel).Rkey, w.mood(bMoved).Rkey
	asBob.del(bGoneRkey)
	asBob.del(bGoneDelRkey)
	devenv.SoftDelete(t, w.store, bGoneDel)
	bMovedTo := asBob.put(body("moved", bMoved, 3, false))
	asBob.del(bMovedRkey)
	bLegacyRkey := asBob.put(body("legacy", bLegacy, 4, true))
	oid, _ := bson.ObjectIDFromHex(bEdited)
	if _, err := w.store.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "mood", Value: "edited in the app"}}}}); err != nil {
		t.Fatal(err)
	}

	// carol: a synced mood, a record naming alice's mood, a record with a
	// bad ref and one whose mood is a number.
	cSynced := insert(carol, "carol's", 1)
	w.sync(carol, cSynced)
	cSpoof := asCarol.put(body("not mine", aSynced, 1, false))
	cBadRef := asCarol.put(body("bad ref", "not-an-object-id", 0, false))
	cNumber := asCarol.put(map[string]any{"mood": 42, "when": now.Format(model.WhenLayout), "ref": newID()})

	want := []string{
		alice.User + " not-synced " + aNotSynced,
		alice.User + " orphan " + aHalf + " " + aHalfRkey,
		alice.User + " lost " + missing + " " + aMissingRkey,
		alice.User + " duplicate " + aDup + " " + aDupRkey + " " + w.mood(aDup).Rkey,
		bob.User + " stale-rkey " + bGone + " " + bGoneRkey,
		bob.User + " stale-rkey " + bGoneDel + " " + bGoneDelRkey,
		bob.User + " stale-rkey " + bMoved + " " + bMovedRkey + " " + bMovedTo,
		bob.User + " unlinked " + bLegacy + " " + bLegacyRkey,
		bob.User + " text-mismatch " + bEdited + " " + w.mood(bEdited).Rkey,
		carol.User + " spoof " + aSynced + " " + cSpoof,
		carol.User + " invalid  " + cBadRef,
		carol.User + " invalid  " + cNumber,
	}
	for i := range want {
		want[i] = strings.Join(strings.Fields(want[i]), " ")
	}
	sort.Strings(want)
	return &driftSeed{
		alice: alice, bob: bob, carol: carol, want: want,
		aSynced: aSynced, aNotSynced: aNotSynced, aDeleted: aDeleted, aHalf: aHalf, aDup: aDup, aHalfRkey: aHalfRkey, aMissingRkey: aMissingRkey, aDupRkey: aDupRkey, missing: missing,
		bGone: bGone, bGoneDel: bGoneDel, bMoved: bMoved, bLegacy: bLegacy, bEdited: bEdited, bGoneRkey: bGoneRkey, bGoneDelRkey: bGoneDelRkey, bMovedRkey: bMovedRkey, bMovedTo: bMovedTo, bLegacyRkey: bLegacyRkey,
		cSynced: cSynced, cSpoof: cSpoof, cBadRef: cBadRef, cNumber: cNumber,
	}
}

// notices are the findings a full repair leaves: the records moodsync
// never touches, and the lost mood it keeps for restore.
func (d *driftSeed) notices(w *aeWorld) []string {
	out := []string{
		d.alice.User + " lost " + d.missing + " " + d.aMissingRkey,
		d.bob.User + " text-mismatch " + d.bEdited + " " + w.mood(d.bEdited).Rkey,
		d.carol.User + " spoof " + d.aSynced + " " + d.cSpoof,
		d.carol.User + " invalid " + d.cBadRef,
		d.carol.User + " invalid " + d.cNumber,
	}
	sort.Strings(out)
	return out
}

// checkRepaired checks what each repair did, seen from both sides.
func (d *driftSeed) checkRepaired(t *testing.T, w *aeWorld) {
	t.Helper()
	for name, c := range map[string]struct {
		id      string
		rkey    string
		deleted bool
	}{
		"half-deleted": {d.aHalf, "", true}, "deleted on PDS": {d.bGone, "", true}, "deleted on both": {d.bGoneDel, "", true},
		"moved": {d.bMoved, d.bMovedTo, false}, "legacy": {d.bLegacy, d.bLegacyRkey, false}, "duplicated": {d.aDup, w.mood(d.aDup).Rkey, false},
	} {
		if m := w.mood(c.id); m.Rkey != c.rkey || m.Deleted != c.deleted {
			t.Errorf("%s mood: rkey %q deleted %v, d.want %q %v", name, m.Rkey, m.Deleted, c.rkey, c.deleted)
		}
	}
	rkeys := func(did string) map[string]bool {
		out := map[string]bool{}
		for _, r := range w.records(did) {
			out[r.Rkey] = true
		}
		return out
	}
	a, b, c := rkeys(d.alice.DID), rkeys(d.bob.DID), rkeys(d.carol.DID)
	if a[d.aHalfRkey] || !a[d.aMissingRkey] || a[d.aDupRkey] || !a[w.mood(d.aNotSynced).Rkey] {
		t.Errorf("alice's repo after repair: %v", a)
	}
	if len(b) != 3 || !b[d.bMovedTo] || !b[d.bLegacyRkey] {
		t.Errorf("bob's repo after repair: %v", b)
	}
	if !c[d.cSpoof] || !c[d.cBadRef] || !c[d.cNumber] {
		t.Errorf("carol's spoofed and invalid records were touched: %v", c)
	}

}

func TestAntiEntropyCommandsOnSeededDrift(t *testing.T) {
	w := newAEWorld(t)
	ctx := context.Background()
	d := seedEveryDrift(t, w)
	if got := w.auditFacts(ctx); !slices.Equal(got, d.want) {
		t.Fatalf("audit --json found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(d.want, "\n"))
	}
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != driftExitCode {
		t.Fatalf("audit --fail-on-drift exited %d with drift, d.want %d", code, driftExitCode)
	}

	before := w.snapshot()
	if code, out := w.cli(ctx, "cleanup", "--dry-run"); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("cleanup --dry-run exited %d:\n%s", code, out)
	}
	if after := w.snapshot(); after != before {
		t.Fatalf("cleanup --dry-run changed something:\nbefore\n%s\nafter\n%s", before, after)
	}
	if code, out := w.cli(ctx, "backfill", "--dry-run"); code != 0 || !strings.Contains(out, "create "+model.URI(d.alice.DID, "")) {
		t.Fatalf("backfill --dry-run exited %d:\n%s", code, out)
	}
	if after := w.snapshot(); after != before {
		t.Fatal("backfill --dry-run changed something")
	}

	if code, out := w.cli(ctx, "cleanup"); code != 0 {
		t.Fatalf("cleanup exited %d:\n%s", code, out)
	}
	left := []string{
		d.alice.User + " not-synced " + d.aNotSynced,
		d.alice.User + " lost " + d.missing + " " + d.aMissingRkey,
		d.bob.User + " text-mismatch " + d.bEdited + " " + w.mood(d.bEdited).Rkey,
		d.carol.User + " spoof " + d.aSynced + " " + d.cSpoof,
		d.carol.User + " invalid " + d.cBadRef,
		d.carol.User + " invalid " + d.cNumber,
	}
	sort.Strings(left)
	if got := w.auditFacts(ctx); !slices.Equal(got, left) {
		t.Fatalf("after cleanup, audit found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(left, "\n"))
	}
	if code, out := w.cli(ctx, "backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != driftExitCode {
		t.Fatalf("audit --fail-on-drift exited %d after cleanup and backfill, with a lost mood left", code)
	}
	if code, out := w.cli(ctx, "restore", "--all"); code != 0 || !strings.Contains(out, "restored 1") {
		t.Fatalf("restore exited %d:\n%s", code, out)
	}
	if m := w.mood(d.missing); m == nil || m.User != d.alice.User || m.Text != "never in mongo" || m.Rkey != d.aMissingRkey {
		t.Fatalf("the lost mood restored: %+v", m)
	}
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != 0 {
		t.Fatalf("audit --fail-on-drift exited %d after cleanup, backfill and restore", code)
	}

	d.checkRepaired(t, w)

	// Erase-and-forget-me: every record (invalid ones too) and every mood.
	if code, _ := w.cli(ctx, "purge", "--user", d.carol.User); code != 2 {
		t.Fatalf("purge without --yes exited %d, d.want 2", code)
	}
	if n := len(w.records(d.carol.DID)); n != 4 {
		t.Fatalf("purge without --yes touched the repo: %d records left", n)
	}
	if code, out := w.cli(ctx, "purge", "--user", d.carol.User, "--yes"); code != 0 {
		t.Fatalf("purge exited %d:\n%s", code, out)
	}
	moods, err := w.store.UserMoods(ctx, d.carol.User)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(w.records(d.carol.DID)); n != 0 || len(moods) != 0 {
		t.Fatalf("after purge: %d records, %d moods", n, len(moods))
	}
}

// TestBackfillInterruptedThenRerun backfills 1,000 moods over 10 users,
// cancels the first run part-way (as SIGINT does), runs it again, and
// checks every mood has exactly one record, the one Mongo points at.
func TestBackfillInterruptedThenRerun(t *testing.T) {
	w := newAEWorld(t)
	ctx := context.Background()
	const users, per = 10, 100
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	ids := map[string][]string{}
	for u := 0; u < users; u++ {
		a := w.user()
		docs := make([]any, per)
		for i := range docs {
			oid := bson.NewObjectID()
			ids[a.User] = append(ids[a.User], oid.Hex())
			docs[i] = bson.D{{Key: "_id", Value: oid}, {Key: "user", Value: a.User}, {Key: "mood", Value: fmt.Sprintf("mood %d of %d", i, u)}, {Key: "when", Value: base.Add(time.Duration(i) * time.Second)}}
		}
		if _, err := w.store.DB.Collection(mongostore.MoodsCollection).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}

	// First run: cancelled once 300 moods are written. With two users at
	// a time, at most one more user is under way then, and the rest never
	// start.
	runCtx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	written := 0
	cmd := &backfillCommand{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, written: func(n int) {
		mu.Lock()
		defer mu.Unlock()
		if written += n; written >= 300 {
			cancel()
		}
	}}
	err := cmd.Run(runCtx, append([]string{"--concurrency", "2"}, w.flags...))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted backfill returned %v", err)
	}
	synced := func() int {
		n := 0
		for _, list := range ids {
			moods, err := w.store.Moods(ctx, list)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range moods {
				if m.Rkey != "" {
					n++
				}
			}
		}
		return n
	}
	if n := synced(); n < 300 || n >= users*per {
		t.Fatalf("after the interrupted run %d moods are synced, want at least 300 and not all", n)
	}

	if code, out := w.cli(ctx, "backfill"); code != 0 {
		t.Fatalf("second backfill exited %d:\n%s", code, out)
	}
	if n := synced(); n != users*per {
		t.Fatalf("%d of %d moods synced after the rerun", n, users*per)
	}
	for _, a := range w.users {
		moods, err := w.store.Moods(ctx, ids[a.User])
		if err != nil {
			t.Fatal(err)
		}
		recs := w.records(a.DID)
		if len(recs) != per {
			t.Errorf("%s has %d records for %d moods", a.User, len(recs), per)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			id := r.Value.MoodID()
			m := moods[id]
			if seen[id] || m == nil || m.Rkey != r.Rkey {
				t.Errorf("record %s of %s: mood %s duplicated (%v) or not pointing at it", r.Rkey, a.User, id, seen[id])
			}
			seen[id] = true
		}
	}
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != 0 {
		t.Fatalf("audit --fail-on-drift exited %d after backfill", code)
	}
}

// TestRunFreshInstallReadsEachRepoOnce: on a fresh install with
// anti-entropy on, the first start queues a reconcile of every user, which
// writes a mood the app never published an intent for; the first periodic
// pass finds that sweep just made and queues nobody again, so each repo is
// exported exactly once (getRepo counted at a proxy in front of the PDS).
func TestRunFreshInstallReadsEachRepoOnce(t *testing.T) {
	w := newAEWorld(t)
	proxy := devenv.NewProxy(t, w.pds.URL)
	alice := w.user()
	others := []*devenv.Account{w.user(), w.user()}
	id := devenv.InsertMood(t, w.store, alice.User, "never published", time.Now())
	d := &daemon{t: t, env: []string{
		"MOODSYNC_PDS_URL=" + proxy.URL,
		"MOODSYNC_PLC_URL=" + w.pds.PLCURL,
		"MOODSYNC_MONGO_URI=" + devenv.MongoURI(t),
		"MOODSYNC_MONGO_DB=" + w.store.DB.Name(),
		"MOODSYNC_EMBED_NATS_ADDR=" + freeAddr(t),
		"MOODSYNC_HTTP_ADDR=" + freeAddr(t),
		"MOODSYNC_DATA_DIR=" + t.TempDir(),
		"MOODSYNC_ANTI_ENTROPY_EVERY=1h",
		"MOODSYNC_LOG_FORMAT=text",
	}}
	d.start()
	devenv.Eventually(t, 60*time.Second, "the first start's reconcile wrote the record", func() bool {
		m := w.mood(id)
		return m != nil && m.Rkey != ""
	})
	devenv.Eventually(t, 30*time.Second, "the first periodic pass scheduled, not run", func() bool {
		return strings.Contains(d.logs.String(), "anti-entropy: next pass scheduled")
	})
	devenv.Eventually(t, 30*time.Second, "every user's reconcile done", func() bool {
		gaps := strings.Count(d.logs.String(), `msg="queueing a reconcile of the user"`)
		return proxy.Count("com.atproto.sync.getRepo") >= 1+len(others)+gaps
	})
	if code := d.stop(); code != 0 {
		t.Fatalf("run exited %d:\n%s", code, d.logs.String())
	}
	// One export per user; more only for a gap the follower queued (the
	// PDS's #sync of an account made just before the start can reach its
	// firehose after it), each logged.
	gaps := strings.Count(d.logs.String(), `msg="queueing a reconcile of the user"`)
	if n := proxy.Count("com.atproto.sync.getRepo"); n < 1+len(others) || n > 1+len(others)+gaps {
		t.Errorf("%d repo exports for %d users and %d gaps, want one each", n, 1+len(others), gaps)
	}
	if n := strings.Count(d.logs.String(), "queued a reconcile of every user"); n != 1 {
		t.Errorf("%d sweeps of every user, want 1", n)
	}
	recs := w.records(alice.DID)
	if len(recs) != 1 || recs[0].Rkey != w.mood(id).Rkey {
		t.Fatalf("repo after the pass: %+v", recs)
	}
	if strings.Contains(d.logs.String(), alice.Password) {
		t.Error("a PDS password reached the logs")
	}
}
