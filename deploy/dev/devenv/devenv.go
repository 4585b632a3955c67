// Package devenv gives tests the real parts moodsync runs against: the
// reference PDS (started once per test binary through deploy/dev/start.sh,
// shared by every test binary on the machine), an embedded NATS JetStream
// per test, and a fresh database on an embedded Mongo-wire server.
package devenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/embedded"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// PDS is the running dev PDS.
type PDS struct {
	URL           string
	PLCURL        string
	AdminPassword string
	// JWTSecret signs the PDS's session tokens (dev only), so tests can
	// mint an expired access token.
	JWTSecret string
}

var (
	pdsOnce sync.Once
	pds     *PDS
	pdsErr  error
)

func scriptDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// StartPDS starts (or reuses) the dev PDS. The first call may install it.
func StartPDS() (*PDS, error) {
	pdsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(scriptDir(), "start.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			pdsErr = fmt.Errorf("deploy/dev/start.sh: %w", err)
			return
		}
		var stateFile string
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "MOODSYNC_DEV_STATE="); ok {
				stateFile = v
			}
		}
		env, err := readEnvFile(stateFile)
		if err != nil {
			pdsErr = err
			return
		}
		pds = &PDS{URL: env["MOODSYNC_DEV_PDS_URL"], PLCURL: env["MOODSYNC_DEV_PLC_URL"],
			AdminPassword: env["MOODSYNC_DEV_ADMIN_PASSWORD"], JWTSecret: env["MOODSYNC_DEV_JWT_SECRET"]}
	})
	return pds, pdsErr
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dev PDS state: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// NeedPDS returns the dev PDS or fails the test. Under `go test -short`
// it skips the test instead: the fast loop runs without Node and the PDS
// (tests that call it live in *_pds_test.go files).
func NeedPDS(t testing.TB) *PDS {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the dev PDS (Node): skipped under -short")
	}
	p, err := StartPDS()
	if err != nil {
		t.Fatalf("dev PDS: %v", err)
	}
	return p
}

// Account is a PDS account made for a test.
type Account struct {
	User     string // Auth0-style sub of its users row
	DID      string
	Handle   string
	Password string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateAccount creates a fresh PDS account with a random handle.
func (p *PDS) CreateAccount(ctx context.Context) (*Account, error) {
	name := "t" + randomHex(6)
	a := &Account{User: "auth0|" + name, Handle: name + ".test", Password: "pw-" + randomHex(8)}
	var out struct {
		DID string `json:"did"`
	}
	api := atclient.NewAPIClient(p.URL)
	var err error
	for attempt := 0; ; attempt++ {
		err = api.Post(ctx, syntax.NSID("com.atproto.server.createAccount"), map[string]any{
			"handle": a.Handle, "email": name + "@example.test", "password": a.Password,
		}, &out)
		// The dev PLC directory answers 502 now and then when many
		// accounts are made at once: try again.
		var ae *atclient.APIError
		if err == nil || attempt == 4 || !errors.As(err, &ae) || ae.StatusCode != http.StatusBadGateway {
			break
		}
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	if err != nil {
		return nil, fmt.Errorf("createAccount: %w", err)
	}
	a.DID = out.DID
	return a, nil
}

// CreateUser creates a PDS account and the matching `users` row.
func (p *PDS) CreateUser(t testing.TB, store *mongostore.Store) *Account {
	t.Helper()
	ctx := context.Background()
	a, err := p.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.DB.Collection(mongostore.UsersCollection).InsertOne(ctx, bson.D{
		{Key: "_id", Value: a.User},
		{Key: "atproto", Value: bson.D{{Key: "did", Value: a.DID}, {Key: "handle", Value: a.Handle}, {Key: "password", Value: a.Password}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Login returns a client logged in as the account, for writing straight to
// its repo the way a user (not moodsync) would.
func (p *PDS) Login(ctx context.Context, a *Account) (*atclient.APIClient, error) {
	return atclient.LoginWithPasswordHost(ctx, p.URL, a.Handle, a.Password, "", nil)
}

// Records lists the mood records of a repo (a public read, no session).
func (p *PDS) Records(ctx context.Context, did string) ([]model.Record, error) {
	return pdsclient.New(p.URL, nil, nil).ListRecords(ctx, did)
}

var (
	mongoOnce sync.Once
	mongoSrv  *embedded.Mongo
	mongoErr  error
	mongoDir  string
)

// MongoURI returns the URI of a Mongo-wire server shared by the tests of
// this binary: MOODSYNC_TEST_MONGO_URI when set (a real MongoDB), else an
// embedded FerretDB on a free loopback port.
func MongoURI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv("MOODSYNC_TEST_MONGO_URI"); uri != "" {
		return uri
	}
	mongoOnce.Do(func() {
		mongoDir, mongoErr = os.MkdirTemp("", "moodsync-test-mongo-")
		if mongoErr != nil {
			return
		}
		mongoSrv, mongoErr = embedded.StartMongo("127.0.0.1:0", mongoDir, nil)
	})
	if mongoErr != nil {
		t.Fatalf("embedded mongo: %v", mongoErr)
	}
	return mongoSrv.URI()
}

// NewStore returns a store on a fresh database, with indexes, dropped when
// the test ends.
func NewStore(t testing.TB) *mongostore.Store {
	t.Helper()
	uri := MongoURI(t)
	db := "t" + randomHex(6)
	s, err := mongostore.Connect(uri, db)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.DB.Drop(ctx)
		_ = s.Close(ctx)
	})
	return s
}

// NewNATS starts an embedded NATS JetStream on a free port for one test.
func NewNATS(t testing.TB) string {
	t.Helper()
	n, err := embedded.StartNATS("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n.URL()
}

// ConnectJetStream connects to NATS at url for one test (reconnecting
// for as long as the test runs) and returns the connection and JetStream.
func ConnectJetStream(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// InsertMood inserts a live mood and returns its id.
func InsertMood(t testing.TB, store *mongostore.Store, user, text string, when time.Time) string {
	t.Helper()
	id := bson.NewObjectID()
	_, err := store.DB.Collection(mongostore.MoodsCollection).InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: id}, {Key: "user", Value: user}, {Key: "mood", Value: text}, {Key: "when", Value: when},
	})
	if err != nil {
		t.Fatal(err)
	}
	return id.Hex()
}

// SoftDelete marks a mood deleted, as the app does.
func SoftDelete(t testing.TB, store *mongostore.Store, id string) {
	t.Helper()
	oid, _ := bson.ObjectIDFromHex(id)
	_, err := store.DB.Collection(mongostore.MoodsCollection).UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}}}})
	if err != nil {
		t.Fatal(err)
	}
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
