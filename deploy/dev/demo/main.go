// Command demo shows moodsync end to end on embedded defaults: it starts
// the dev PDS and `moodsync run` (embedded NATS and Mongo-wire), creates two
// users and a few moods the way the app does (Mongo insert, then an
// intent), soft-deletes one, and prints the records read back from the PDS.
//
//	go run ./deploy/dev/demo
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	step("starting the dev PDS (installs it on first use: a few minutes)")
	pds, err := devenv.StartPDS()
	if err != nil {
		return err
	}
	fmt.Println("    PDS", pds.URL)

	tmp, err := os.MkdirTemp("", "moodsync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "moodsync")
	step("building moodsync")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/moodsync")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	// Free ports, so the demo runs beside a NATS or MongoDB already on this
	// machine; otherwise these are moodsync's embedded defaults.
	mongoAddr, natsAddr, httpAddr := freeAddr(), freeAddr(), freeAddr()
	step("starting moodsync run (embedded NATS on %s, embedded Mongo-wire on %s)", natsAddr, mongoAddr)
	daemon := exec.Command(bin, "run")
	daemon.Env = append(os.Environ(),
		"MOODSYNC_PDS_URL="+pds.URL,
		"MOODSYNC_PLC_URL="+pds.PLCURL,
		"MOODSYNC_EMBED_MONGO_ADDR="+mongoAddr,
		"MOODSYNC_EMBED_NATS_ADDR="+natsAddr,
		"MOODSYNC_HTTP_ADDR="+httpAddr,
		"MOODSYNC_DATA_DIR="+filepath.Join(tmp, "data"),
		"MOODSYNC_LOG_FORMAT=text",
	)
	logFile, err := os.Create(filepath.Join(tmp, "moodsync.log"))
	if err != nil {
		return err
	}
	daemon.Stdout, daemon.Stderr = logFile, logFile
	if err := daemon.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		if daemon.ProcessState == nil {
			_ = daemon.Process.Kill()
		}
	}()
	if err := waitReady(ctx, "http://"+httpAddr+"/readyz", exited); err != nil {
		dumpLog(logFile.Name())
		return err
	}

	store, err := mongostore.Connect("mongodb://"+mongoAddr+"/", "aesthetic")
	if err != nil {
		return err
	}
	defer store.Close(context.Background())
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	step("creating two users (PDS account + users row) and their moods")
	texts := map[string][]string{
		"ada":   {"drawing spirals", "tea and pixels", "sleepy"},
		"grace": {"debugging the sky", "found a moth"},
	}
	type made struct {
		acct *devenv.Account
		ids  []string
	}
	var users []made
	when := time.Now().UTC().Truncate(time.Millisecond)
	for _, name := range []string{"ada", "grace"} {
		a, err := pds.CreateAccount(ctx)
		if err != nil {
			return err
		}
		a.User = "auth0|demo-" + name + "-" + a.Handle[:7]
		_, err = store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{
			{Key: "_id", Value: a.User},
			{Key: "atproto", Value: bson.D{{Key: "did", Value: a.DID}, {Key: "handle", Value: a.Handle}, {Key: "password", Value: a.Password}}},
		})
		if err != nil {
			return err
		}
		u := made{acct: a}
		for i, text := range texts[name] {
			id := bson.NewObjectID()
			_, err := store.DB.Collection(mongostore.MoodsCollection).InsertOne(ctx, bson.D{
				{Key: "_id", Value: id}, {Key: "user", Value: a.User}, {Key: "mood", Value: text},
				{Key: "when", Value: when.Add(time.Duration(i) * time.Second)},
			})
			if err != nil {
				return err
			}
			// What the app adds after its insert: a create intent.
			if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpCreate, MongoID: id.Hex(), User: a.User}); err != nil {
				return err
			}
			u.ids = append(u.ids, id.Hex())
		}
		fmt.Printf("    %s  %s  %d moods\n", a.User, a.DID, len(u.ids))
		users = append(users, u)
	}

	step("waiting for moodsync to mirror every mood")
	for _, u := range users {
		if err := waitFor(ctx, func() bool {
			moods, err := store.Moods(ctx, u.ids)
			if err != nil {
				return false
			}
			for _, m := range moods {
				if m.Rkey == "" {
					return false
				}
			}
			return len(moods) == len(u.ids)
		}); err != nil {
			return fmt.Errorf("moods of %s not synced: %w", u.acct.User, err)
		}
	}

	gone := users[0].ids[2]
	step("soft-deleting mood %s and publishing a delete intent", gone)
	oid, _ := bson.ObjectIDFromHex(gone)
	if _, err := store.DB.Collection(mongostore.MoodsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}}}}); err != nil {
		return err
	}
	if err := intent.Publish(ctx, js, intent.Intent{Op: intent.OpDelete, MongoID: gone, User: users[0].acct.User}); err != nil {
		return err
	}
	if err := waitFor(ctx, func() bool {
		m, err := store.Moods(ctx, []string{gone})
		return err == nil && m[gone] != nil && m[gone].Rkey == ""
	}); err != nil {
		return fmt.Errorf("delete not mirrored: %w", err)
	}

	// The other direction: a user deletes a record straight on the PDS; the
	// firehose consumer notices and soft-deletes the mood in Mongo.
	grace := users[1]
	victim := grace.ids[0]
	vm, err := store.Moods(ctx, []string{victim})
	if err != nil {
		return err
	}
	step("grace deletes record %s straight on the PDS (not through the app)", vm[victim].Rkey)
	api, err := pds.Login(ctx, grace.acct)
	if err != nil {
		return err
	}
	if err := api.Post(ctx, "com.atproto.repo.deleteRecord", map[string]any{
		"repo": grace.acct.DID, "collection": model.Collection, "rkey": vm[victim].Rkey,
	}, nil); err != nil {
		return err
	}
	if err := waitFor(ctx, func() bool {
		m, err := store.Moods(ctx, []string{victim})
		return err == nil && m[victim] != nil && m[victim].Deleted && m[victim].Rkey == ""
	}); err != nil {
		return fmt.Errorf("PDS-side delete not reflected in Mongo: %w", err)
	}
	fmt.Printf("    mood %s is now soft-deleted in Mongo, atproto unset\n", victim)

	step("records read back from the PDS")
	for _, u := range users {
		recs, err := pds.Records(ctx, u.acct.DID)
		if err != nil {
			return err
		}
		fmt.Printf("    %s (%d records)\n", u.acct.Handle, len(recs))
		for _, r := range recs {
			fmt.Printf("      %s\n        mood=%q when=%s ref=%s\n", model.URI(u.acct.DID, r.Rkey), r.Value.Mood, r.Value.When, r.Value.MoodID())
		}
	}

	step("stopping moodsync (SIGTERM)")
	_ = daemon.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			dumpLog(logFile.Name())
			return fmt.Errorf("moodsync exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("moodsync did not stop within 30s")
	}
	fmt.Println("    moodsync exited cleanly; the dev PDS keeps running (deploy/dev/stop.sh stops it)")
	return nil
}

func waitReady(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("moodsync exited during start: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("moodsync not ready within 60s")
}

func waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timed out after 30s")
}

func dumpLog(path string) {
	b, _ := os.ReadFile(path)
	fmt.Fprintf(os.Stderr, "--- moodsync log ---\n%s\n", b)
}
