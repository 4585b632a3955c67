package consumer

// BenchmarkFirehoseProcess compares whole processes catching up on the
// same loopback firehose of generated, signed commits, on one core
// (GOMAXPROCS=1), side by side in each round:
//
//   - moodsync: the real `moodsync run` binary (built from ./cmd/moodsync,
//     or MOODSYNC_BENCH_BIN), resuming from a stored cursor, Mongo and NATS
//     outside it (an embedded FerretDB and NATS in the benchmark process);
//     stopped with SIGTERM once its moodsync_firehose_seq reached the end;
//   - base (when MOODSYNC_BENCH_BASE_BIN names another moodsync binary, e.g.
//     one built from an earlier commit): the same, for a before/after;
//   - indigo: events.HandleRepoStream with the sequential scheduler and a
//     handler that only counts;
//   - bare: gorilla/websocket ReadMessage in a loop, nothing decoded;
//   - lean: gorilla's NextReader into one reused buffer through moodsync's
//     read buffer, nothing decoded (moodsync's read, without the rest).
//
// The frame server runs in the benchmark process, so it is not counted;
// like a real server, it sends a subscription without a cursor only what
// comes after it connected. It keeps ahead of any reader (frames encoded
// here, 256 KiB to a write, as a relay with a backlog fills the socket),
// so the reader is what is timed.
// Each child's CPU time (user + sys, from its rusage at exit) gives events
// per CPU-second; moodsync's includes its start (connecting Mongo and
// NATS, loading users) and its shutdown. Wall clock is taken at the
// server: from the first frame written to the reader's answer to a ping
// sent after the last (it has read every frame by then). Three streams:
//
//   - relay: MOODSYNC_BENCH_FRAMES (default 50,000) commits of 2,500 repos
//     that are not users (a relay's traffic), one post each;
//   - pds: the same number of commits of 500 repos that are all users
//     (the app's own PDS), none with a mood op, so none verified
//     (consumer/verifyskip.go) but each repo's first;
//   - pds-1pct: the same, every 100th commit a mood op naming a mood Mongo
//     lacks, verified (signature and MST inversion) against a directory
//     served here; the engine reads Mongo and counts a lost mood.
//
//	go test -run '^$' -bench BenchmarkFirehoseProcess -benchtime 5x -timeout 30m ./consumer/
//
// Pinned, as the wall-clock figures are taken (the frame server on one
// core, each reader alone on the other):
//
//	go test -c -o /tmp/consumer.test ./consumer/ && MOODSYNC_BENCH_READER_CPU=1 \
//	  taskset -c 0 /tmp/consumer.test -test.run '^$' -test.bench 'BenchmarkFirehoseProcess/relay' -test.benchtime 9x

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/bluesky-social/indigo/events"
	"github.com/bluesky-social/indigo/events/schedulers/sequential"
	"github.com/gorilla/websocket"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// procFrames generates n commits, one op each, round-robin over the repos
// (named prefix0000 …): a post, or, every moodEvery-th commit (0: none), a
// mood record naming a mood Mongo does not have (the engine reads Mongo
// and counts a lost mood; nothing is written).
func procFrames(tb testing.TB, n, repos, moodEvery int, prefix string, dir *identity.MockDirectory) [][]byte {
	gens := make([]*genRepo, repos)
	for i := range gens {
		gens[i] = newGenRepo(tb, fmt.Sprintf("%s%04d", prefix, i), dir)
	}
	out := make([][]byte, 0, n)
	for seq := 1; seq <= n; seq++ {
		g := gens[(seq-1)%repos]
		op := g.postOp()
		if moodEvery > 0 && seq%moodEvery == 0 {
			op = moodOp(syntax.NewTID(int64(1_600_000_000_000_000+seq), 0).String(), fmt.Sprintf("5f0000000000%012d", seq))
		}
		out = append(out, commitFrame(tb, g.commit(tb, int64(seq), op)))
	}
	return out
}

// plcServer serves the DID documents of a mock directory, as a did:plc
// directory does.
func plcServer(tb testing.TB, dir *identity.MockDirectory) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		did, err := syntax.ParseDID(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		ident, err := dir.LookupDID(r.Context(), did)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		doc := identity.DIDDocument{DID: did, VerificationMethod: []identity.DocVerificationMethod{{
			ID: did.String() + "#atproto", Type: "Multikey", Controller: did.String(),
			PublicKeyMultibase: ident.Keys["atproto"].PublicKeyMultibase,
		}}}
		_ = json.NewEncoder(w).Encode(doc)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// moodsyncBin builds ./cmd/moodsync once, unless MOODSYNC_BENCH_BIN names
// a binary.
func moodsyncBin(b *testing.B) string {
	if p := os.Getenv("MOODSYNC_BENCH_BIN"); p != "" {
		return p
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "moodsync")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/moodsync")
	cmd.Dir = strings.TrimSpace(string(out))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return bin
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cpuOf is the CPU time a finished child used.
func cpuOf(ps *os.ProcessState) time.Duration {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return ps.UserTime() + ps.SystemTime()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procRun is one child's run: its CPU time and wall time.
type procRun struct {
	cpu, wall time.Duration
}

// pinned is the command of a reader; with MOODSYNC_BENCH_READER_CPU set it
// runs on that processor alone (taskset), so that the frame server, pinned
// elsewhere by running the benchmark under `taskset -c 0`, never shares
// its core.
func pinned(name string, args ...string) *exec.Cmd {
	if cpu := os.Getenv("MOODSYNC_BENCH_READER_CPU"); cpu != "" {
		return exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
	}
	return exec.Command(name, args...)
}

func finished(cmd *exec.Cmd, start time.Time) procRun {
	return procRun{cpu: cpuOf(cmd.ProcessState), wall: time.Since(start)}
}

// runReader runs this test binary as a bare or indigo reader of n frames.
func runReader(b *testing.B, role, url string, n int) procRun {
	cmd := pinned(os.Args[0], "-test.run", "^TestFirehoseBenchReader$")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "MOODSYNC_BENCH_ROLE="+role, "MOODSYNC_BENCH_URL="+url, "MOODSYNC_BENCH_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	start := time.Now()
	if out, err := cmd.Output(); err != nil {
		b.Fatalf("%s reader: %v\n%s", role, err, out)
	}
	return finished(cmd, start)
}

// TestFirehoseBenchReader is a child of BenchmarkFirehoseProcess (nothing
// otherwise): it reads MOODSYNC_BENCH_N frames from MOODSYNC_BENCH_URL,
// bare or through indigo, and exits.
func TestFirehoseBenchReader(t *testing.T) {
	role := os.Getenv("MOODSYNC_BENCH_ROLE")
	if role == "" {
		t.Skip("a child of BenchmarkFirehoseProcess")
	}
	n, _ := strconv.Atoi(os.Getenv("MOODSYNC_BENCH_N"))
	dialer := *websocket.DefaultDialer
	if role == "lean" {
		dialer.ReadBufferSize = readBufferSize // as moodsync reads
	}
	con, _, err := dialer.Dial(os.Getenv("MOODSYNC_BENCH_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	con.SetReadLimit(MaxFrameBytes)
	// Each reads its n frames, then on until the server closes the
	// connection: on the way it answers the ping the server sends after
	// the last frame, which ends the timed span.
	count := 0
	switch role {
	case "bare":
		for ; ; count++ {
			if _, _, err := con.ReadMessage(); err != nil {
				break
			}
		}
	case "lean":
		// gorilla's NextReader into one reused buffer, through moodsync's
		// read buffer, nothing decoded: how moodsync reads, without what it
		// does with a frame.
		var buf []byte
		for ; ; count++ {
			_, r, err := con.NextReader()
			if err != nil {
				break
			}
			if buf, err = readFrame(r, buf[:0]); err != nil {
				t.Fatal(err)
			}
		}
	case "indigo":
		sched := sequential.NewScheduler("bench", func(context.Context, *events.XRPCStreamEvent) error {
			count++
			return nil
		})
		_ = events.HandleRepoStream(context.Background(), con, sched, slog.New(slog.DiscardHandler))
	}
	if count != n {
		t.Fatalf("read %d of %d", count, n)
	}
}

// procEnv is what a moodsync child runs against.
type procEnv struct {
	url, plc string
	n        int      // frames to handle after the cursor
	cursor   int64    // stored cursor to resume from
	users    []string // DIDs with a users row
}

// runMoodsync runs `moodsync run` until it has handled the last frame.
func runMoodsync(b *testing.B, bin string, e procEnv) procRun {
	return runMoodsyncWith(b, bin, e, nil)
}

// runMoodsyncWith is runMoodsync, telling started the process id.
func runMoodsyncWith(b *testing.B, bin string, e procEnv, started func(pid int)) procRun {
	ctx := context.Background()
	store, uri, db, drop := benchStore(b)
	defer drop()
	var docs []any
	for i, did := range e.users {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("auth0|bench%05d", i)},
			{Key: "atproto", Value: bson.D{{Key: "did", Value: did}, {Key: "password", Value: "x"}}}})
	}
	if len(docs) > 0 {
		if _, err := store.DB.Collection(mongostore.UsersCollection).InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	// A stored cursor: resume, no sweep of every user.
	if err := store.SaveCursor(ctx, e.url, e.cursor); err != nil {
		b.Fatal(err)
	}
	nats := devenv.NewNATS(b)
	httpAddr := freeAddr(b)
	cmd := pinned(bin, "run")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1",
		"MOODSYNC_PDS_URL=http://127.0.0.1:9", "MOODSYNC_FIREHOSE_URL="+e.url, "MOODSYNC_PLC_URL="+e.plc,
		"MOODSYNC_MONGO_URI="+uri, "MOODSYNC_MONGO_DB="+db, "MOODSYNC_NATS_URL="+nats,
		"MOODSYNC_HTTP_ADDR="+httpAddr, "MOODSYNC_ANTI_ENTROPY_EVERY=0", "MOODSYNC_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for seq := int64(0); seq < e.cursor+int64(e.n); seq = scrapeSeq("http://" + httpAddr + "/metrics") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("moodsync handled %d of %d frames in 10 minutes", seq, e.n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("moodsync: %v", err)
	}
	return finished(cmd, start)
}

// benchStore is a fresh database on the embedded Mongo-wire server of the
// benchmark process, with its URI and name; drop removes it.
func benchStore(b *testing.B) (store *mongostore.Store, uri, db string, drop func()) {
	ctx := context.Background()
	uri = devenv.MongoURI(b)
	db = "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
	store, err := mongostore.Connect(uri, db)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	return store, uri, db, func() { _ = store.DB.Drop(ctx); _ = store.Close(ctx) }
}

// scrapeSeq reads moodsync_firehose_seq from a /metrics page (0 when not
// there yet).
func scrapeSeq(url string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "moodsync_firehose_seq "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func BenchmarkFirehoseProcess(b *testing.B) {
	n := envInt("MOODSYNC_BENCH_FRAMES", 50_000)
	bin := moodsyncBin(b)
	base := os.Getenv("MOODSYNC_BENCH_BASE_BIN")
	for _, mode := range []struct {
		name      string
		repos     int
		users     bool
		moodEvery int
	}{{"relay", 2500, false, 0}, {"pds", 500, true, 0}, {"pds-1pct", 500, true, 100}} {
		b.Run(mode.name, func(b *testing.B) {
			dir := identity.NewMockDirectory()
			prefix := "did:plc:stranger"
			if mode.users {
				prefix = "did:plc:user"
			}
			// n frames after the stored cursor 1, which every reader
			// resumes from; a subscription without a cursor gets live
			// frames only (none), as from a real server.
			frames := procFrames(b, n+1, mode.repos, mode.moodEvery, prefix, dir)
			fh := newFirehose(b)
			fh.liveOnly = true
			fh.timed = true
			fh.add(frames...)
			e := procEnv{url: fh.URL, plc: plcServer(b, dir), n: n, cursor: 1}
			for i := 0; i < 100; i++ { // users not in a relay stream
				e.users = append(e.users, fmt.Sprintf("did:plc:user%04d", 9000+i))
			}
			if mode.users {
				for i := 0; i < mode.repos; i++ {
					e.users = append(e.users, fmt.Sprintf("%s%04d", prefix, i))
				}
			}
			variants := []struct {
				name string
				run  func() procRun
			}{
				{"moodsync", func() procRun { return runMoodsync(b, bin, e) }},
				{"indigo", func() procRun { return runReader(b, "indigo", fh.URL+"?cursor=1", n) }},
				{"bare", func() procRun { return runReader(b, "bare", fh.URL+"?cursor=1", n) }},
				{"lean", func() procRun { return runReader(b, "lean", fh.URL+"?cursor=1", n) }},
			}
			if base != "" {
				variants = append(variants, struct {
					name string
					run  func() procRun
				}{"base", func() procRun { return runMoodsync(b, base, e) }})
			}
			b.ResetTimer()
			rate, wall := map[string][]float64{}, map[string][]float64{}
			for i := 0; i < b.N; i++ {
				// Rotate the order, so no variant always runs first.
				for j := range variants {
					v := variants[(i+j)%len(variants)]
					r := v.run()
					rate[v.name] = append(rate[v.name], float64(n)/r.cpu.Seconds())
					// Wall clock at the sender: from the first frame
					// written to the last (the reader's start and exit
					// are not in it).
					sp, ok := fh.lastSpan()
					if !ok {
						b.Fatal("no connection sent the last frame")
					}
					wall[v.name] = append(wall[v.name], float64(n)/sp.last.Sub(sp.first).Seconds())
				}
			}
			b.StopTimer()
			var ratios []string
			for _, v := range variants {
				b.ReportMetric(median(rate[v.name]), v.name+"-events/cpu-s")
				b.ReportMetric(median(wall[v.name]), v.name+"-events/wall-s")
			}
			for _, pair := range [][2]string{{"moodsync", "bare"}, {"lean", "bare"}, {"moodsync", "lean"}, {"moodsync", "indigo"}, {"moodsync", "base"}} {
				for _, m := range []struct {
					what string
					of   map[string][]float64
				}{{"cpu", rate}, {"wall", wall}} {
					a, c := m.of[pair[0]], m.of[pair[1]]
					if len(c) == 0 {
						continue
					}
					var rs []float64
					for k := range a {
						rs = append(rs, a[k]/c[k])
					}
					b.ReportMetric(median(rs), pair[0]+"/"+pair[1]+"-"+m.what)
					ratios = append(ratios, fmt.Sprintf("%s/%s %s per round %.2f (range %.2f–%.2f)", pair[0], pair[1], m.what, rs, slices.Min(rs), slices.Max(rs)))
				}
			}
			b.Logf("%d frames, %s", n, strings.Join(ratios, "; "))
			b.ReportMetric(0, "ns/op")
		})
	}
}
