package consumer

// BenchmarkFirehose measures events per second over a loopback websocket
// serving generated, signed commit frames (one op each, 10% of them mood
// records of known users, the rest posts), with the store and the PDS in
// memory. Beside the consumer, verified and not, it runs indigo's own
// decode path (HandleRepoStream + the sequential scheduler, doing nothing
// with the events) on the same frames, as the floor to compare with.
//
//	go test -run XXX -bench BenchmarkFirehose -cpu 1 -benchtime 3x ./consumer/

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/events"
	"github.com/bluesky-social/indigo/events/schedulers/sequential"
	"github.com/gorilla/websocket"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

const (
	benchRepos         = 500
	benchCommitsPer    = 20
	benchMoodEveryNth  = 10
	benchFrames        = benchRepos * benchCommitsPer
	benchMoodIDPattern = "507f1f77bcf8%04d%08d"
)

type benchData struct {
	dir      *identity.MockDirectory
	frames   [][]byte
	accounts []model.Account
	moods    []model.Mood
	bytes    int
}

var benchSet *benchData

func benchFramesOnce(b testing.TB) *benchData {
	if benchSet != nil {
		return benchSet
	}
	d := &benchData{dir: identity.NewMockDirectory()}
	repos := make([]*genRepo, benchRepos)
	for i := range repos {
		acct := model.Account{User: fmt.Sprintf("auth0|bench%d", i), DID: fmt.Sprintf("did:plc:bench%d", i)}
		d.accounts = append(d.accounts, acct)
		repos[i] = newGenRepo(b, acct.DID, d.dir)
	}
	seq := int64(0)
	for round := 0; round < benchCommitsPer; round++ {
		for i, g := range repos {
			seq++
			op := g.postOp()
			if (round+i)%benchMoodEveryNth == 0 {
				id := fmt.Sprintf(benchMoodIDPattern, i, round)
				d.moods = append(d.moods, model.Mood{ID: id, User: d.accounts[i].User, Text: "sunny"})
				op = moodOp(fmt.Sprintf("3kh5dye2q%04d", round), id)
			}
			fr := commitFrame(b, g.commit(b, seq, op))
			d.bytes += len(fr)
			d.frames = append(d.frames, fr)
		}
	}
	benchSet = d
	return d
}

func BenchmarkFirehose(b *testing.B) {
	d := benchFramesOnce(b)
	fh := newFirehose(b)
	fh.add(d.frames...)
	b.Logf("%d frames, %d with a mood op, %d bytes on average", len(d.frames), len(d.moods), d.bytes/len(d.frames))

	// Wall time counts whatever else the machine runs; CPU time of this
	// process (consumer, server goroutine and GC together) does not, so
	// events per CPU-second is the figure to compare across runs.
	var cpuStart time.Duration
	report := func(b *testing.B, elapsed time.Duration) {
		n := float64(len(d.frames) * b.N)
		b.ReportMetric(n/elapsed.Seconds(), "events/s")
		b.ReportMetric(n/(cpuTime()-cpuStart).Seconds(), "events/cpu-s")
		b.ReportMetric(0, "ns/op")
	}
	begin := func() { cpuStart = cpuTime() }

	b.Run("indigo-decode", func(b *testing.B) {
		begin()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			con, _, err := websocket.DefaultDialer.Dial(fh.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			con.SetReadLimit(MaxFrameBytes)
			var n atomic.Int64
			sched := sequential.NewScheduler("bench", func(_ context.Context, xev *events.XRPCStreamEvent) error {
				if n.Add(1) == int64(len(d.frames)) {
					cancel()
				}
				return nil
			})
			_ = events.HandleRepoStream(ctx, con, sched, slog.New(slog.DiscardHandler))
			elapsed += time.Since(start)
			cancel()
			if n.Load() != int64(len(d.frames)) {
				b.Fatalf("decoded %d of %d", n.Load(), len(d.frames))
			}
		}
		report(b, elapsed)
	})

	for _, verify := range []bool{false, true} {
		name := "consumer-unverified"
		if verify {
			name = "consumer-verified"
		}
		b.Run(name, func(b *testing.B) {
			begin()
			var elapsed time.Duration
			var last Stats
			for i := 0; i < b.N; i++ {
				took, stats := catchUp(b, Config{FirehoseURL: fh.URL, Directory: d.dir, SkipVerify: !verify}, d.accounts, d.moods, len(d.frames))
				elapsed += took
				last = stats
			}
			report(b, elapsed)
			if last.Verdicts[reconcile.ClassUnlinked] != int64(len(d.moods)) || last.BadCommits != 0 || last.ChainBreaks != 0 {
				b.Fatalf("the consumer did not do the work: %+v", last)
			}
		})
	}
}

// catchUp runs a consumer with cfg, its stores in memory holding accounts
// and moods, from a stored cursor of 0 until it has handled n events; it
// returns the wall time that took and the consumer's stats.
func catchUp(b *testing.B, cfg Config, accounts []model.Account, moods []model.Mood, n int) (time.Duration, Stats) {
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	for _, a := range accounts {
		store.PutAccount(a)
	}
	for _, m := range moods {
		store.PutMood(m)
	}
	store.SaveCursor(context.Background(), cfg.FirehoseURL, 0)
	c, err := New(cfg, reconcile.NewEngine(store, pds, nil), store, discardQueue{}, &reconcile.Sweep{Users: store, Queue: discardQueue{}, State: store})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); c.Run(ctx) }()
	for c.handled.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	return elapsed, c.Stats()
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
