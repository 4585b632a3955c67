package consumer

// BenchmarkFirehoseOnePercent: the app's own PDS seen from one process — a
// stream of commits of known users, 1 % of them carrying a mood op —
// followed in verified mode, against a bare read of the same frames, side
// by side in each round (alternating which goes first), wall clock. Store
// and PDS are in memory (reconciletest), so the figure is the consumer's
// own cost; with -cpu 1 the frame server (writing 256 KiB at a time, so it
// keeps ahead) shares the one core with the reader, for both variants
// alike.
//
//	go test -run '^$' -bench BenchmarkFirehoseOnePercent -cpu 1 -benchtime 7x ./consumer/

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/gorilla/websocket"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

func BenchmarkFirehoseOnePercent(b *testing.B) {
	const repos, n, moodEvery = 500, 20_000, 100
	dir := identity.NewMockDirectory()
	gens := make([]*genRepo, repos)
	var accounts []model.Account
	for i := range gens {
		a := model.Account{User: fmt.Sprintf("auth0|one%d", i), DID: fmt.Sprintf("did:plc:one%04d", i)}
		accounts = append(accounts, a)
		gens[i] = newGenRepo(b, a.DID, dir)
	}
	var moods []model.Mood
	frames := make([][]byte, 0, n)
	for seq := 1; seq <= n; seq++ {
		i := (seq - 1) % repos
		g := gens[i]
		op := g.postOp()
		if seq%moodEvery == 0 {
			id := fmt.Sprintf("5f0000000000%012d", seq)
			moods = append(moods, model.Mood{ID: id, User: accounts[i].User, Text: "sunny"})
			op = moodOp(fmt.Sprintf("3kh5dye2q%04d", seq/moodEvery), id)
		}
		frames = append(frames, commitFrame(b, g.commit(b, int64(seq), op)))
	}
	fh := newFirehose(b)
	fh.timed = true // keeps ahead of the reader
	fh.add(frames...)

	bare := func() time.Duration {
		start := time.Now()
		con, _, err := websocket.DefaultDialer.Dial(fh.URL, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer con.Close()
		con.SetReadLimit(MaxFrameBytes)
		for i := 0; i < n; i++ {
			if _, _, err := con.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var last Stats
	verified := func() time.Duration {
		elapsed, stats := catchUp(b, Config{FirehoseURL: fh.URL, Directory: dir}, accounts, moods, n)
		last = stats
		return elapsed
	}
	var bareRates, verRates, ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var tb, tv time.Duration
		if i%2 == 0 {
			tb, tv = bare(), verified()
		} else {
			tv, tb = verified(), bare()
		}
		bareRates = append(bareRates, float64(n)/tb.Seconds())
		verRates = append(verRates, float64(n)/tv.Seconds())
		ratios = append(ratios, tb.Seconds()/tv.Seconds())
	}
	b.StopTimer()
	if last.Verdicts[reconcile.ClassUnlinked] != int64(len(moods)) || last.BadCommits != 0 || last.ChainBreaks != 0 || last.Unverified == 0 {
		b.Fatalf("the consumer did not do the work: %+v", last)
	}
	b.ReportMetric(median(bareRates), "bare-events/s")
	b.ReportMetric(median(verRates), "verified-events/s")
	b.ReportMetric(median(ratios), "verified/bare")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d frames, %d mood ops, %d commits verified; verified/bare per round %.2f (range %.2f–%.2f)",
		n, len(moods), last.Commits-last.Unverified, ratios, slices.Min(ratios), slices.Max(ratios))
}
