package pdsclient_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// sessionRig is the client against the real PDS behind a counting proxy,
// with its sessions kept in a fresh database on the embedded Mongo-wire
// server, as the daemon keeps them.
type sessionRig struct {
	pds   *devenv.PDS
	proxy *devenv.Proxy
	store *mongostore.Store
}

func newSessionRig(t *testing.T) *sessionRig {
	pds := devenv.NeedPDS(t)
	return &sessionRig{pds: pds, proxy: devenv.NewProxy(t, pds.URL), store: devenv.NewStore(t)}
}

// client is a new client, as a daemon (re)started has: nothing in memory.
func (r *sessionRig) client() *pdsclient.Client {
	return pdsclient.New(r.proxy.URL, r.store, nil)
}

var when = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

// write creates the record of a new mood of a in its repo (t.Error on
// failure: it runs in goroutines too).
func write(t *testing.T, c *pdsclient.Client, a *devenv.Account, i int) {
	t.Helper()
	m := &model.Mood{ID: bson.NewObjectID().Hex(), User: a.User, Text: "mood", When: when.Add(time.Duration(i) * time.Second)}
	if err := c.CreateRecord(context.Background(), a.DID, model.Rkey(m, 0), model.NewRecordValue(m)); err != nil {
		t.Errorf("create a record of %s: %v", a.User, err)
	}
}

func TestSessionsAreCachedAndSurviveRestart(t *testing.T) {
	r := newSessionRig(t)
	var users []*devenv.Account
	for i := 0; i < 4; i++ {
		users = append(users, r.pds.CreateUser(t, r.store))
	}
	// 200 writes over 4 users, several at once for each user.
	c := r.client()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 200; i += 8 {
				write(t, c, users[i%4], i)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := r.proxy.Count("com.atproto.server.createSession"); got > 4 {
		t.Fatalf("200 writes over 4 users made %d createSession calls, want at most 4", got)
	}
	for _, u := range users {
		recs, err := r.pds.Records(context.Background(), u.DID)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 50 {
			t.Fatalf("user %s has %d records, want 50", u.User, len(recs))
		}
	}

	// After a restart the cached sessions are resumed, not recreated.
	before := r.proxy.Count("com.atproto.server.createSession")
	c = r.client()
	for i, u := range users {
		write(t, c, u, 1000+i)
	}
	if got := r.proxy.Count("com.atproto.server.createSession"); got != before {
		t.Fatalf("restart made %d new createSession calls", got-before)
	}
}

func TestExpiredAccessTokenIsRefreshedNotReplacedByALogin(t *testing.T) {
	r := newSessionRig(t)
	alice := r.pds.CreateUser(t, r.store)
	write(t, r.client(), alice, 0)

	// Two hours later, as far as the PDS can tell: the cached access token
	// has expired; the refresh token is still good.
	ctx := context.Background()
	sess, err := r.store.LoadSession(ctx, alice.DID)
	if err != nil || sess == nil {
		t.Fatalf("no cached session: %v", err)
	}
	expired, err := r.pds.ExpireAccessToken(sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	oldRefresh := sess.RefreshToken
	sess.AccessToken = expired
	if err := r.store.SaveSession(ctx, *sess); err != nil {
		t.Fatal(err)
	}
	logins := r.proxy.Count("com.atproto.server.createSession")

	write(t, r.client(), alice, 1)

	if got := r.proxy.Count("com.atproto.server.refreshSession"); got != 1 {
		t.Fatalf("want 1 refreshSession, got %d", got)
	}
	if got := r.proxy.Count("com.atproto.server.createSession"); got != logins {
		t.Fatalf("an expired access token caused %d new logins", got-logins)
	}
	sess, err = r.store.LoadSession(ctx, alice.DID)
	if err != nil || sess == nil {
		t.Fatalf("session gone: %v", err)
	}
	if sess.AccessToken == expired || sess.RefreshToken == oldRefresh {
		t.Fatal("refreshed tokens were not written back to moodsync_sessions")
	}
}
