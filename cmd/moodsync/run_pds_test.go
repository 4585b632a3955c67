package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

func TestRunRestartOnEmbeddedDefaultsKeepsOneRecord(t *testing.T) {
	clearEnv(t)
	pds := devenv.NeedPDS(t)
	d := &daemon{t: t, env: []string{
		"MOODSYNC_PDS_URL=" + pds.URL,
		"MOODSYNC_PLC_URL=" + pds.PLCURL,
		"MOODSYNC_EMBED_MONGO_ADDR=" + freeAddr(t),
		"MOODSYNC_EMBED_NATS_ADDR=" + freeAddr(t),
		"MOODSYNC_HTTP_ADDR=" + freeAddr(t),
		"MOODSYNC_DATA_DIR=" + t.TempDir(),
		"MOODSYNC_LOG_FORMAT=text",
	}}
	d.start()
	store, err := mongostore.Connect("mongodb://"+os.Getenv("MOODSYNC_EMBED_MONGO_ADDR")+"/", "aesthetic")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	alice := pds.CreateUser(t, store)
	id := devenv.InsertMood(t, store, alice.User, "restart-proof", time.Now())
	publish := func() {
		var out bytes.Buffer
		if code := Main(context.Background(), []string{"publish", "create", "--user", alice.User, "--mood", id}, &out, &out); code != 0 {
			t.Fatalf("publish: exit %d: %s", code, out.String())
		}
	}
	mood := func() *model.Mood {
		m, err := store.Moods(context.Background(), []string{id})
		if err != nil {
			return nil
		}
		return m[id]
	}

	publish()
	devenv.Eventually(t, 20*time.Second, "mood synced", func() bool { m := mood(); return m != nil && m.Rkey != "" })
	publish()
	if code := d.stop(); code != 0 {
		t.Fatalf("run exited %d after stop; logs:\n%s", code, d.logs.String())
	}
	// The embedded servers are down with the daemon; an intent published
	// now waits in JetStream's files for the next start.
	d.start()
	publish()
	rkey := mood().Rkey
	devenv.Eventually(t, 20*time.Second, "intents applied after restart", func() bool {
		recs, err := pds.Records(context.Background(), alice.DID)
		return err == nil && len(recs) == 1 && recs[0].Rkey == rkey && strings.Contains(d.logs.String(), "moodsync running")
	})
	if code := d.stop(); code != 0 {
		t.Fatalf("run exited %d", code)
	}
	for _, want := range []string{"started embedded NATS JetStream", "started embedded Mongo-wire server", "moodsync stopped"} {
		if !strings.Contains(d.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(d.logs.String(), alice.Password) {
		t.Error("a PDS password reached the logs")
	}
}
