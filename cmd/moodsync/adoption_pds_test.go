package main

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// TestAdoptionGuide walks README's "Adopting moodsync on a live app" on
// legacy data an app left on the real PDS before moodsync: moods a script
// synced (records with `mongoId` only, `atproto.rkey` set), a mood it
// wrote twice, records Mongo never linked (one of them twice), moods never
// synced, a soft-deleted mood still pointing at its record, records of a
// soft-deleted and of a missing mood. In the guide's order: audit reports
// exactly that; cleanup --dry-run changes nothing; cleanup leaves only
// the not-synced moods; backfill --dry-run (at the guide's rate) changes
// nothing; backfill writes them; audit --fail-on-drift exits 0. Then the
// daemon is deployed with anti-entropy off and its first start finds
// nothing to change; the switched app's create intent reaches the PDS;
// with anti-entropy on, a mood created between the backfill and the
// switch is written; audit --fail-on-drift still exits 0.
func TestAdoptionGuide(t *testing.T) {
	w := newAEWorld(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ana, ben := w.user(), w.user()
	asAna, asBen := w.as(ana), w.as(ben)
	n := 0
	mood := func(a string, text string) (string, time.Time) {
		n++
		when := now.Add(-time.Duration(n) * time.Minute)
		return devenv.InsertMood(t, w.store, a, text, when), when
	}
	// legacy writes the record an old script wrote: `mongoId` only.
	legacy := func(u *as, id, text string, when time.Time) string {
		return u.put(map[string]any{"mood": text, "when": when.Format(model.WhenLayout), "mongoId": id})
	}
	setRkey := func(id, rkey string) {
		oid, _ := bson.ObjectIDFromHex(id)
		_, err := w.store.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "atproto", Value: bson.D{{Key: "rkey", Value: rkey}}}}}})
		if err != nil {
			t.Fatal(err)
		}
	}

	// ana's legacy.
	aSynced, when := mood(ana.User, "synced by a script")
	setRkey(aSynced, legacy(asAna, aSynced, "synced by a script", when))
	aDup, when := mood(ana.User, "written twice")
	aDupKept := legacy(asAna, aDup, "written twice", when)
	setRkey(aDup, aDupKept)
	aDupSecond := legacy(asAna, aDup, "written twice", when)
	aUnlinked, when := mood(ana.User, "never linked")
	aUnlinkedRkey := legacy(asAna, aUnlinked, "never linked", when)
	aTwice, when := mood(ana.User, "never linked, twice")
	aTwiceFirst := legacy(asAna, aTwice, "never linked, twice", when)
	aTwiceSecond := legacy(asAna, aTwice, "never linked, twice", when)
	aNotSynced1, _ := mood(ana.User, "never synced")
	aNotSynced2, _ := mood(ana.User, "never synced either")
	aDeleted, when := mood(ana.User, "deleted in the app")
	aDeletedRkey := legacy(asAna, aDeleted, "deleted in the app", when)
	setRkey(aDeleted, aDeletedRkey)
	devenv.SoftDelete(t, w.store, aDeleted)
	gone := newID()
	aGoneRkey := legacy(asAna, gone, "its mood is gone", now)
	// ben's.
	bNotSynced, _ := mood(ben.User, "ben never synced")
	bUnlinked, when := mood(ben.User, "ben never linked")
	bUnlinkedRkey := legacy(asBen, bUnlinked, "ben never linked", when)
	bDeleted, when := mood(ben.User, "ben deleted")
	bDeletedRkey := legacy(asBen, bDeleted, "ben deleted", when)
	devenv.SoftDelete(t, w.store, bDeleted)

	// 2. audit, text and JSON.
	if code, out := w.cli(ctx, "audit"); code != 0 || !strings.Contains(out, "Mood Sync Audit for user: "+ana.User) {
		t.Fatalf("audit exited %d:\n%s", code, out)
	}
	facts := func(lines ...string) []string {
		for i := range lines {
			lines[i] = strings.Join(strings.Fields(lines[i]), " ")
		}
		sort.Strings(lines)
		return lines
	}
	notSynced := facts(
		ana.User+" not-synced "+aNotSynced1,
		ana.User+" not-synced "+aNotSynced2,
		ben.User+" not-synced "+bNotSynced,
	)
	// 3. What the report says is what was seeded.
	want := facts(append(slices.Clone(notSynced),
		ana.User+" duplicate "+aDup+" "+aDupSecond+" "+aDupKept,
		ana.User+" unlinked "+aUnlinked+" "+aUnlinkedRkey,
		ana.User+" unlinked "+aTwice+" "+aTwiceFirst,
		ana.User+" duplicate "+aTwice+" "+aTwiceSecond+" "+aTwiceFirst,
		ana.User+" orphan "+aDeleted+" "+aDeletedRkey,
		ana.User+" lost "+gone+" "+aGoneRkey,
		ben.User+" unlinked "+bUnlinked+" "+bUnlinkedRkey,
		ben.User+" orphan "+bDeleted+" "+bDeletedRkey,
	)...)
	if got := w.auditFacts(ctx); !slices.Equal(got, want) {
		t.Fatalf("audit --json found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// 4. cleanup --dry-run changes nothing.
	before := w.snapshot()
	if code, out := w.cli(ctx, "cleanup", "--dry-run"); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("cleanup --dry-run exited %d:\n%s", code, out)
	}
	if w.snapshot() != before {
		t.Fatal("cleanup --dry-run changed something")
	}
	// 5. cleanup leaves the not-synced moods, backfill's, and the lost mood:
	// its document was deleted by hand long ago, which the operator knows,
	// so its record goes on their word.
	if code, out := w.cli(ctx, "cleanup"); code != 0 {
		t.Fatalf("cleanup exited %d:\n%s", code, out)
	}
	if got := w.auditFacts(ctx); !slices.Equal(got, facts(append(slices.Clone(notSynced), ana.User+" lost "+gone+" "+aGoneRkey)...)) {
		t.Fatalf("after cleanup, audit found\n%s", strings.Join(got, "\n"))
	}
	if code, out := w.cli(ctx, "cleanup", "--user", ana.User, "--delete-lost"); code != 0 {
		t.Fatalf("cleanup --delete-lost exited %d:\n%s", code, out)
	}
	if got := w.auditFacts(ctx); !slices.Equal(got, notSynced) {
		t.Fatalf("after cleanup, audit found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(notSynced, "\n"))
	}
	// 6. backfill --dry-run at the guide's rate changes nothing.
	const rate = "27/m"
	before = w.snapshot()
	code, out := w.cli(ctx, "backfill", "--dry-run", "--rate", rate)
	if code != 0 || strings.Count(out, "create "+model.URI(ana.DID, "")) != 2 || strings.Count(out, "create "+model.URI(ben.DID, "")) != 1 {
		t.Fatalf("backfill --dry-run exited %d:\n%s", code, out)
	}
	if w.snapshot() != before {
		t.Fatal("backfill --dry-run changed something")
	}
	// 7. backfill.
	if code, out := w.cli(ctx, "backfill", "--rate", rate); code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	// 8. No drift left.
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != 0 {
		t.Fatalf("audit --fail-on-drift exited %d after cleanup and backfill", code)
	}
	// Every live mood has one record, the one it points at; the records
	// that were there are the ones kept.
	live := map[string][]string{
		ana.DID: {aSynced, aDup, aUnlinked, aTwice, aNotSynced1, aNotSynced2},
		ben.DID: {bNotSynced, bUnlinked},
	}
	kept := map[string]string{aDup: aDupKept, aUnlinked: aUnlinkedRkey, aTwice: aTwiceFirst, bUnlinked: bUnlinkedRkey}
	oneRecordEach := func(when string) {
		t.Helper()
		for did, ids := range live {
			recs := w.records(did)
			if len(recs) != len(ids) {
				t.Fatalf("%s: %s holds %d records for %d live moods", when, did, len(recs), len(ids))
			}
			for _, id := range ids {
				m := w.mood(id)
				if m.Rkey == "" || (kept[id] != "" && m.Rkey != kept[id]) ||
					!slices.ContainsFunc(recs, func(r model.Record) bool { return r.Rkey == m.Rkey && r.Value.MoodID() == id }) {
					t.Fatalf("%s: mood %s points at %q, records %v", when, id, m.Rkey, recs)
				}
			}
		}
	}
	oneRecordEach("after backfill")
	for _, id := range []string{aDeleted, bDeleted} {
		if m := w.mood(id); !m.Deleted || m.Rkey != "" {
			t.Errorf("soft-deleted mood %s: %+v", id, m)
		}
	}

	// 9. Deploy with anti-entropy off: the first start reconciles every
	// user and finds nothing to change.
	natsURL := devenv.NewNATS(t)
	httpAddr := freeAddr(t)
	env := []string{
		"MOODSYNC_PDS_URL=" + w.pds.URL,
		"MOODSYNC_PLC_URL=" + w.pds.PLCURL,
		"MOODSYNC_MONGO_URI=" + devenv.MongoURI(t),
		"MOODSYNC_MONGO_DB=" + w.store.DB.Name(),
		"MOODSYNC_NATS_URL=" + natsURL,
		"MOODSYNC_HTTP_ADDR=" + httpAddr,
		"MOODSYNC_LOG_FORMAT=text",
	}
	before = w.snapshot()
	d := &daemon{t: t, env: append(slices.Clone(env), "MOODSYNC_ANTI_ENTROPY_EVERY=0")}
	d.start()
	devenv.Eventually(t, 60*time.Second, "first start queued and carried out a reconcile of every user", func() bool {
		code, _ := get(httpAddr, "/readyz")
		m := scrape(t, httpAddr)
		// Ready: every user queued; and every queued reconcile carried out.
		return code == http.StatusOK && strings.Contains(d.logs.String(), "every user queued for a reconcile") &&
			sum(m, "moodsync_intents_pending") == 0 && sum(m, "moodsync_intents_total", `op="reconcile"`, `outcome="applied"`) >= 1
	})
	if after := w.snapshot(); after != before {
		t.Fatalf("the first start changed something after the guide's steps:\nbefore\n%s\nafter\n%s", before, after)
	}

	// A mood the app writes after the first start, before it is switched:
	// no intent is ever published for it.
	between, _ := mood(ana.User, "written before the switch")

	// 10. The switched app publishes a create intent after its insert.
	switched, _ := mood(ana.User, "written after the switch")
	var pubOut bytes.Buffer
	if code := Main(ctx, []string{"publish", "create", "--user", ana.User, "--mood", switched, "--nats-url", natsURL}, &pubOut, &pubOut); code != 0 {
		t.Fatalf("publish exited %d: %s", code, pubOut.String())
	}
	devenv.Eventually(t, 60*time.Second, "the switched app's mood on the PDS", func() bool { return w.mood(switched).Rkey != "" })
	if w.mood(between).Rkey != "" {
		t.Fatal("the mood written before the switch was synced with anti-entropy off")
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("run exited %d:\n%s", code, d.logs.String())
	}

	// 11. Anti-entropy on: its next pass — a period after the first
	// start's sweep (a short one here) — writes the mood no intent named.
	d = &daemon{t: t, env: append(slices.Clone(env), "MOODSYNC_ANTI_ENTROPY_EVERY=3s")}
	d.start()
	devenv.Eventually(t, 60*time.Second, "the periodic pass wrote the mood", func() bool {
		return w.mood(between).Rkey != "" && strings.Contains(d.logs.String(), "cause=periodic")
	})
	if code := d.stop(); code != 0 {
		t.Fatalf("run exited %d:\n%s", code, d.logs.String())
	}
	live[ana.DID] = append(live[ana.DID], between, switched)
	oneRecordEach("at the end")
	if code, _ := w.cli(ctx, "audit", "--fail-on-drift"); code != 0 {
		t.Fatalf("audit --fail-on-drift exited %d at the end", code)
	}
	for _, a := range w.users {
		if strings.Contains(d.logs.String(), a.Password) {
			t.Error("a PDS password reached the daemon's logs")
		}
	}
}
