package consumer

// BenchmarkMemory measures the resident memory of real moodsync processes
// (the binary built from ./cmd/moodsync, or MOODSYNC_BENCH_BIN), sampled
// from /proc every 200 ms:
//
//   - follow: `moodsync run` with 10,000 users in `users`, following a
//     loopback firehose that sends 5,000 events a second for
//     MOODSYNC_BENCH_FOLLOW_SECONDS (default 60): commits of repos that are
//     not users, and one in a hundred of 100 users' repos (verified against
//     a directory served here). Steady RSS is the median of the samples
//     after the first 10 s; peak is the largest.
//   - audit: `moodsync audit` of N users × 50 synced moods on the reference
//     PDS (N = MOODSYNC_BENCH_AUDIT_USERS, default 100), Mongo on the
//     embedded Mongo-wire server.
//
//	go test -run '^$' -bench BenchmarkMemory -benchtime 1x -timeout 60m ./consumer/

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// rssKiB reads a process's resident set from /proc.
func rssKiB(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// rssSampler samples a process's RSS until stopped.
type rssSampler struct {
	mu      sync.Mutex
	samples []float64 // MiB
	at      []time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if kib, ok := rssKiB(pid); ok {
				s.mu.Lock()
				s.samples = append(s.samples, float64(kib)/1024)
				s.at = append(s.at, time.Since(start))
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the median after skip, and the peak.
func (s *rssSampler) finish(skip time.Duration) (steady, peak float64) {
	close(s.stop)
	<-s.done
	var after []float64
	for i, v := range s.samples {
		peak = max(peak, v)
		if s.at[i] >= skip {
			after = append(after, v)
		}
	}
	if len(after) == 0 {
		return 0, peak
	}
	return median(after), peak
}

// reseq re-encodes a commit frame with another seq (the commit itself and
// its signature are unchanged).
func reseq(tb testing.TB, fr []byte, seq int64) []byte {
	xev, err := decodeFrame(fr)
	if err != nil || xev.RepoCommit == nil {
		tb.Fatalf("reseq: %v", err)
	}
	c := *xev.RepoCommit
	c.Seq = seq
	return commitFrame(tb, &c)
}

func BenchmarkMemory(b *testing.B) {
	bin := moodsyncBin(b)
	b.Run("follow-10000-users-5000eps", func(b *testing.B) {
		seconds := envInt("MOODSYNC_BENCH_FOLLOW_SECONDS", 60)
		const rate, users, userRepos = 5000, 10_000, 100
		total := rate * seconds
		dir := identity.NewMockDirectory()
		// Distinct signed commits of strangers, sent again under new seqs;
		// users' commits are all distinct (their chains are checked).
		strangers := procFrames(b, 20_000, 2000, 0, "did:plc:stranger", dir)
		userFrames := procFrames(b, total/100+1, userRepos, 0, "did:plc:user", dir)
		frames := make([][]byte, 0, total)
		nu := 0
		for seq := int64(1); seq <= int64(total); seq++ {
			if seq%100 == 0 {
				frames = append(frames, reseq(b, userFrames[nu], seq))
				nu++
				continue
			}
			frames = append(frames, reseq(b, strangers[int(seq)%len(strangers)], seq))
		}
		var dids []string
		for i := 0; i < users; i++ {
			dids = append(dids, fmt.Sprintf("did:plc:user%04d", i))
		}
		for i := 0; i < b.N; i++ {
			fh := newFirehose(b)
			e := procEnv{url: fh.URL, plc: plcServer(b, dir), n: total, users: dids}
			var run procRun
			var steady, peak float64
			// Send at the rate, 50 frames every 10 ms, once moodsync runs.
			started := make(chan int, 1)
			go func() {
				pid := <-started
				s := sampleRSS(pid)
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				for sent := 0; sent < total; sent += rate / 100 {
					<-t.C
					fh.add(frames[sent:min(sent+rate/100, total)]...)
				}
				steady, peak = s.finish(10 * time.Second)
				started <- 0
			}()
			run = runMoodsyncWith(b, bin, e, func(pid int) { started <- pid })
			<-started
			b.ReportMetric(steady, "steady-rss-MiB")
			b.ReportMetric(peak, "peak-rss-MiB")
			b.ReportMetric(float64(total)/run.cpu.Seconds(), "events/cpu-s")
			b.Logf("%d events at %d/s: steady RSS %.1f MiB, peak %.1f MiB, CPU %.1f s", total, rate, steady, peak, run.cpu.Seconds())
		}
		b.ReportMetric(0, "ns/op")
	})

	b.Run("audit", func(b *testing.B) {
		n := envInt("MOODSYNC_BENCH_AUDIT_USERS", 100)
		const perUser = 50
		pds := devenv.NeedPDS(b)
		ctx := context.Background()
		store, uri, db, drop := benchStore(b)
		defer drop()
		// Seeded fast: each user's records in one applyWrites at their
		// deterministic keys, the moods inserted already linked.
		client := pdsclient.New(pds.URL, store, nil)
		when := time.Now().UTC().Truncate(time.Millisecond).Add(-24 * time.Hour)
		for u := 0; u < n; u++ {
			a := pds.CreateUser(b, store)
			var docs []any
			var writes []model.Write
			for j := 0; j < perUser; j++ {
				m := model.Mood{ID: bson.NewObjectID().Hex(), User: a.User, Text: fmt.Sprintf("mood %d of %s", j, a.Handle), When: when.Add(time.Duration(j) * time.Second)}
				m.Rkey = model.Rkey(&m, 0)
				writes = append(writes, model.Write{Rkey: m.Rkey, Value: model.NewRecordValue(&m)})
				oid, _ := bson.ObjectIDFromHex(m.ID)
				docs = append(docs, bson.D{{Key: "_id", Value: oid}, {Key: "user", Value: m.User}, {Key: "mood", Value: m.Text},
					{Key: "when", Value: m.When}, {Key: "atproto", Value: bson.D{{Key: "rkey", Value: m.Rkey}}}})
			}
			if err := client.ApplyWrites(ctx, a.DID, writes); err != nil {
				b.Fatal(err)
			}
			if _, err := store.DB.Collection(mongostore.MoodsCollection).InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(bin, "audit", "--json")
			cmd.Env = append(os.Environ(), "MOODSYNC_PDS_URL="+pds.URL, "MOODSYNC_MONGO_URI="+uri, "MOODSYNC_MONGO_DB="+db, "MOODSYNC_LOG_LEVEL=warn")
			var out bytes.Buffer
			cmd.Stdout = &out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			s := sampleRSS(cmd.Process.Pid)
			err := cmd.Wait()
			_, peak := s.finish(0)
			if err != nil {
				b.Fatalf("audit: %v", err)
			}
			if !bytes.Contains(out.Bytes(), []byte(fmt.Sprintf(`"users": %d`, n))) {
				b.Fatalf("audit output: %.300s", out.String())
			}
			b.ReportMetric(peak, "peak-rss-MiB")
			b.ReportMetric(time.Since(start).Seconds(), "s/audit")
			b.ReportMetric(float64(cpuOf(cmd.ProcessState).Milliseconds())/1000, "cpu-s/audit")
			b.Logf("audit of %d users × %d moods: peak RSS %.1f MiB (of %d samples)", n, perUser, peak, len(s.samples))
		}
		b.ReportMetric(0, "ns/op")
	})
}
