package reconcile_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// The anti-entropy benchmarks. Mongo is always the in-memory store behind
// the Store interface: FerretDB scans whole collections, so timing it
// would measure FerretDB. The PDS is the real reference PDS where it says
// so; its sessions and passwords sit in a FerretDB users collection, read
// once per account before the timer starts.
//
// Run: go test -run '^$' -bench 'Audit|Backfill' -benchtime 1x ./reconcile/
// (MOODSYNC_BENCH_AUDIT_USERS sets how many users the real-PDS audit has;
// default 20.)

const (
	auditUsers    = 1000 // full scale of the goal
	auditPerUser  = 50
	backfillUsers = 4
	backfillPer   = 250
)

// userIndex is the in-memory store with moods indexed by user, as Mongo's
// (user, atproto.rkey) index does: the plain fake scans every mood.
type userIndex struct {
	*reconciletest.Store
	byUser map[string][]*model.Mood
}

func (s *userIndex) UserMoods(_ context.Context, user string) ([]*model.Mood, error) {
	src := s.byUser[user]
	out := make([]*model.Mood, len(src))
	for i, m := range src {
		c := *m
		out[i] = &c
	}
	return out, nil
}

func (s *userIndex) put(m model.Mood) {
	s.PutMood(m)
	s.byUser[m.User] = append(s.byUser[m.User], &m)
}

func benchMoods(user string, n int, when time.Time) []model.Mood {
	out := make([]model.Mood, n)
	for i := range out {
		out[i] = model.Mood{ID: bson.NewObjectID().Hex(), User: user, Text: fmt.Sprintf("mood %d of %s", i, user), When: when.Add(time.Duration(i) * time.Second)}
	}
	return out
}

// auditAll compares every account, four at a time as the command does.
func auditAll(b *testing.B, e *reconcile.Engine, accts []model.Account) (records int) {
	var mu sync.Mutex
	reconcileEach(b, e, accts, reconcile.CauseOperator, reconcile.ReconcileOptions{DryRun: true}, func(out *reconcile.Outcome) {
		mu.Lock()
		records += out.Report.ATProto.Records
		mu.Unlock()
	})
	return records
}

// reconcileEach reconciles every account, four at a time (as the commands
// and the publisher's workers do), and hands each outcome to done.
func reconcileEach(b *testing.B, e *reconcile.Engine, accts []model.Account, cause reconcile.Cause, o reconcile.ReconcileOptions, done func(*reconcile.Outcome)) {
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, a := range accts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := e.ReconcileUser(context.Background(), a.User, cause, o)
			if err != nil {
				b.Error(err)
				return
			}
			done(out)
		}()
	}
	wg.Wait()
}

// syncedInMemory is users × perUser synced moods, both sides in memory.
func syncedInMemory(users, perUser int) (*userIndex, *reconciletest.PDS, []model.Account) {
	store := &userIndex{Store: reconciletest.NewStore(), byUser: map[string][]*model.Mood{}}
	pds := reconciletest.NewPDS()
	var accts []model.Account
	when := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := 0; u < users; u++ {
		a := model.Account{User: fmt.Sprintf("auth0|u%04d", u), DID: fmt.Sprintf("did:plc:u%04d", u)}
		store.PutAccount(a)
		accts = append(accts, a)
		for _, m := range benchMoods(a.User, perUser, when) {
			m.Rkey = model.Rkey(&m, 0)
			store.put(m)
			pds.Put(a.DID, model.Record{Rkey: m.Rkey, Value: model.NewRecordValue(&m)})
		}
	}
	return store, pds, accts
}

func BenchmarkAudit(b *testing.B) {
	// The compare itself at full scale: 1,000 users × 50 moods, both sides
	// in memory.
	b.Run(fmt.Sprintf("compare-memfakes-%dx%d", auditUsers, auditPerUser), func(b *testing.B) {
		store, pds, accts := syncedInMemory(auditUsers, auditPerUser)
		e := reconcile.NewEngine(store, pds, nil)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if n := auditAll(b, e, accts); n != auditUsers*auditPerUser {
				b.Fatalf("%d records compared", n)
			}
		}
		b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/audit")
	})

	// Parsing the repo export at full scale: a real 50-mood export from
	// the PDS, parsed 1,000 times.
	pds := devenv.NeedPDS(b)
	sessions := devenv.NewStore(b)
	b.Run(fmt.Sprintf("parse-export-%dx%d", auditUsers, auditPerUser), func(b *testing.B) {
		accts, _ := seedPDS(b, pds, sessions, 1, auditPerUser)
		car := getRepo(b, pds.URL, accts[0].DID)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			for u := 0; u < auditUsers; u++ {
				recs, err := pdsclient.RecordsFromCAR(context.Background(), car)
				if err != nil || len(recs) != auditPerUser {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		}
		b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/audit")
		b.ReportMetric(float64(len(car)), "bytes/export")
	})

	// The whole audit against the real PDS, at a smaller scale: getRepo,
	// parse and compare per user, four users at a time.
	pdsAuditUsers := 20
	if n, err := strconv.Atoi(os.Getenv("MOODSYNC_BENCH_AUDIT_USERS")); err == nil && n > 0 {
		pdsAuditUsers = n
	}
	b.Run(fmt.Sprintf("real-pds-%dx%d", pdsAuditUsers, auditPerUser), func(b *testing.B) {
		accts, store := seedPDS(b, pds, sessions, pdsAuditUsers, auditPerUser)
		e := reconcile.NewEngine(store, pdsclient.New(pds.URL, sessions, nil), nil)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if n := auditAll(b, e, accts); n != pdsAuditUsers*auditPerUser {
				b.Fatalf("%d records compared", n)
			}
		}
		perUser := time.Since(start) / time.Duration(b.N*pdsAuditUsers)
		b.ReportMetric(float64(perUser.Microseconds())/1000, "ms/user")
		b.ReportMetric((perUser * auditUsers).Seconds(), "s/1000-users-extrapolated")
	})
}

// seedPDS makes users accounts on the real PDS with perUser synced moods
// each (written by the engine in applyWrites batches), in an in-memory
// store; sessions and passwords live in sessions.
func seedPDS(b *testing.B, pds *devenv.PDS, sessions *mongostore.Store, users, perUser int) ([]model.Account, *userIndex) {
	b.Helper()
	store := &userIndex{Store: reconciletest.NewStore(), byUser: map[string][]*model.Mood{}}
	e := reconcile.NewEngine(store, pdsclient.New(pds.URL, sessions, nil), nil)
	var accts []model.Account
	when := time.Now().UTC().Truncate(time.Millisecond).Add(-24 * time.Hour)
	for u := 0; u < users; u++ {
		a := pds.CreateUser(b, sessions)
		acct := model.Account{User: a.User, DID: a.DID, Handle: a.Handle}
		store.PutAccount(acct)
		accts = append(accts, acct)
		var ids []string
		for _, m := range benchMoods(a.User, perUser, when) {
			store.put(m)
			ids = append(ids, m.ID)
		}
		for id, err := range e.SyncMoods(context.Background(), a.User, ids) {
			if err != nil {
				b.Fatalf("seed %s: %v", id, err)
			}
		}
	}
	// The index holds copies made before the sync: refresh them.
	for _, a := range accts {
		moods, _ := store.Store.UserMoods(context.Background(), a.User)
		store.byUser[a.User] = moods
	}
	return accts, store
}

func getRepo(b *testing.B, host, did string) []byte {
	b.Helper()
	resp, err := http.Get(host + "/xrpc/com.atproto.sync.getRepo?did=" + url.QueryEscape(did))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	car, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("getRepo: %d %v", resp.StatusCode, err)
	}
	return car
}

// BenchmarkBackfill writes the same number of moods (backfillUsers ×
// backfillPer, fresh accounts each run) to the real PDS two ways, in the
// same run: backfill's path (Engine.ReconcileUser with the backfill scope:
// applyWrites batches of 200, four users at a time) and the seed script's
// way (one createRecord per mood, one after another).
func BenchmarkBackfill(b *testing.B) {
	pds := devenv.NeedPDS(b)
	sessions := devenv.NewStore(b)
	ctx := context.Background()
	fixture := func(b *testing.B) ([]model.Account, *userIndex, *pdsclient.Client) {
		b.StopTimer()
		defer b.StartTimer()
		store := &userIndex{Store: reconciletest.NewStore(), byUser: map[string][]*model.Mood{}}
		client := pdsclient.New(pds.URL, sessions, nil)
		var accts []model.Account
		when := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
		for u := 0; u < backfillUsers; u++ {
			a := pds.CreateUser(b, sessions)
			acct := model.Account{User: a.User, DID: a.DID}
			store.PutAccount(acct)
			accts = append(accts, acct)
			for _, m := range benchMoods(a.User, backfillPer, when) {
				store.put(m)
			}
			// Log in outside the timer: a deleteRecord of nothing is an
			// authenticated no-op.
			if err := client.DeleteRecord(ctx, a.DID, "2222222222222", ""); err != nil {
				b.Fatal(err)
			}
		}
		return accts, store, client
	}
	rate := func(b *testing.B, d time.Duration) {
		b.ReportMetric(float64(b.N*backfillUsers*backfillPer)/d.Seconds(), "moods/s")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("backfill-applyWrites", func(b *testing.B) {
		var took time.Duration
		for i := 0; i < b.N; i++ {
			accts, store, client := fixture(b)
			e := reconcile.NewEngine(store, client, nil)
			start := time.Now()
			var wg sync.WaitGroup
			for _, a := range accts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := e.ReconcileUser(ctx, a.User, reconcile.CauseOperator, reconcile.ReconcileOptions{Scope: reconcile.ScopeBackfill}); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			took += time.Since(start)
			for _, a := range accts {
				for _, m := range store.byUser[a.User] {
					if store.Mood(m.ID).Rkey == "" {
						b.Fatalf("mood %s not synced", m.ID)
					}
				}
			}
		}
		rate(b, took)
	})
	b.Run("one-createRecord-per-mood", func(b *testing.B) {
		var took time.Duration
		for i := 0; i < b.N; i++ {
			accts, store, client := fixture(b)
			start := time.Now()
			for _, a := range accts {
				for _, m := range store.byUser[a.User] {
					if err := client.CreateRecord(ctx, a.DID, model.Rkey(m, 0), model.NewRecordValue(m)); err != nil {
						b.Fatal(err)
					}
				}
			}
			took += time.Since(start)
		}
		rate(b, took)
	})
}
