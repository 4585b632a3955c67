package reconcile_test

// BenchmarkPeriodicPass: a periodic anti-entropy pass over users of whom
// nothing changed since their last clean pass, next to a full pass of the
// same users, alternating in one run (after one untimed full pass that
// records every user clean). Each pass reconciles every user, four at a
// time as the publisher's workers do; Mongo is the in-memory store.
//
//   - memfakes-1000x50: 1,000 users × 50 moods, the PDS in memory too;
//   - real-pds-Nx50: N users × 50 synced moods on the reference PDS behind
//     a proxy that counts getRepo (N = MOODSYNC_BENCH_AUDIT_USERS, default
//     100; seeding 1,000 takes about 8 minutes).
//
//	go test -run '^$' -bench BenchmarkPeriodicPass -benchtime 3x -timeout 60m ./reconcile/

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// passAll reconciles every account with cause, four at a time, and returns
// how many were found unchanged.
func passAll(b *testing.B, e *reconcile.Engine, accts []model.Account, cause reconcile.Cause) (unchanged int) {
	var mu sync.Mutex
	reconcileEach(b, e, accts, cause, reconcile.ReconcileOptions{}, func(out *reconcile.Outcome) {
		if len(out.Results) != 0 {
			b.Errorf("%d fixes in a pass over users that did not change", len(out.Results))
		}
		if out.Unchanged {
			mu.Lock()
			unchanged++
			mu.Unlock()
		}
	})
	return unchanged
}

// comparePasses times periodic and full passes alternately; exports says
// how many repos were read so far.
func comparePasses(b *testing.B, e *reconcile.Engine, accts []model.Account, exports func() int) {
	if n := passAll(b, e, accts, reconcile.CauseFull); n != 0 {
		b.Fatalf("%d users skipped by a full pass", n)
	}
	var tPeriodic, tFull time.Duration
	readPeriodic, readFull := 0, 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := exports()
		start := time.Now()
		if n := passAll(b, e, accts, reconcile.CausePeriodic); n != len(accts) {
			b.Fatalf("periodic pass: %d of %d users unchanged", n, len(accts))
		}
		tPeriodic += time.Since(start)
		readPeriodic += exports() - before

		before = exports()
		start = time.Now()
		passAll(b, e, accts, reconcile.CauseFull)
		tFull += time.Since(start)
		readFull += exports() - before
	}
	b.ReportMetric(tPeriodic.Seconds()/float64(b.N), "s/periodic-pass")
	b.ReportMetric(tFull.Seconds()/float64(b.N), "s/full-pass")
	b.ReportMetric(tPeriodic.Seconds()/tFull.Seconds(), "periodic/full")
	b.ReportMetric(float64(readPeriodic)/float64(b.N), "getRepo/periodic-pass")
	b.ReportMetric(float64(readFull)/float64(b.N), "getRepo/full-pass")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkPeriodicPass(b *testing.B) {
	b.Run(fmt.Sprintf("memfakes-%dx%d", auditUsers, auditPerUser), func(b *testing.B) {
		store, pds, accts := syncedInMemory(auditUsers, auditPerUser)
		comparePasses(b, reconcile.NewEngine(store, pds, nil), accts, func() int { return pds.Exports })
	})

	users := 100
	if n, err := strconv.Atoi(os.Getenv("MOODSYNC_BENCH_AUDIT_USERS")); err == nil && n > 0 {
		users = n
	}
	b.Run(fmt.Sprintf("real-pds-%dx%d", users, auditPerUser), func(b *testing.B) {
		pds := devenv.NeedPDS(b)
		sessions := devenv.NewStore(b)
		accts, store := seedPDS(b, pds, sessions, users, auditPerUser)
		proxy := devenv.NewProxy(b, pds.URL)
		e := reconcile.NewEngine(store, pdsclient.New(proxy.URL, sessions, nil), nil)
		comparePasses(b, e, accts, func() int { return proxy.Count("com.atproto.sync.getRepo") })
	})
}
