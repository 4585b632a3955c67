// Package consumer follows a firehose (com.atproto.sync.subscribeRepos of
// the app's PDS, or a relay) and hands every computer.aesthetic.mood op of
// the app's users to the reconcile engine, which confirms or repairs Mongo.
//
// It keeps each repo's commit chain and queues a whole-user reconcile (a
// reconcile intent) when the chain breaks, on #sync and on tooBig, and goes
// on: it never reads a whole repo inline. On a first start and when the
// cursor is outdated or in the server's future it queues every user, and
// stores no cursor until JetStream has stored them all, so no gap goes
// unrepaired. Its cursor is stored in moodsync_cursors, never past an event
// not handled.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/gorilla/websocket"

	"github.com/whistlegraph/moodsync/consumer/wire"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Engine is the reconcile engine's firehose side (*reconcile.Engine).
type Engine interface {
	ApplyUpsert(ctx context.Context, acct model.Account, op reconcile.Upsert, opts ...reconcile.Option) (reconcile.Class, error)
	ApplyDelete(ctx context.Context, acct model.Account, rkey string, opts ...reconcile.Option) (reconcile.Class, error)
	AccountStatus(ctx context.Context, did, status string) (reactivated []string, err error)
}

// Sweeper queues a reconcile of every user (*reconcile.Sweep): unless one
// that started at or after since has finished (zero since: always).
type Sweeper interface {
	Ensure(ctx context.Context, cause reconcile.Cause, since time.Time) (int, error)
}

// Store is the consumer's own Mongo state: the DID → user map and the
// firehose cursor (*mongostore.Store).
type Store interface {
	AccountByDID(ctx context.Context, did string) (*model.Account, error)
	UsersOfDID(ctx context.Context, did string) ([]string, error)
	Accounts(ctx context.Context) ([]model.Account, error)
	LoadCursor(ctx context.Context, stream string) (int64, bool, error)
	SaveCursor(ctx context.Context, stream string, seq int64) error
	DeleteCursor(ctx context.Context, stream string) error
	// NoteEvent records the last firehose event of did on the bindings to
	// it, if any (marks.go).
	NoteEvent(ctx context.Context, did string, mark model.EventMark) error
}

// DefaultPLCURL is the public did:plc directory.
const DefaultPLCURL = "https://plc.directory"

// MaxFrameBytes bounds one websocket message. A commit carries at most 2 MB
// of blocks; anything far larger is not a frame we should hold in memory.
const MaxFrameBytes = 5 << 20

// Config configures a Consumer. Zero values are the defaults.
type Config struct {
	// FirehoseURL is the subscribeRepos endpoint (ws:// or wss://); see
	// FirehoseURL for deriving it from the PDS URL.
	FirehoseURL string
	// PLCURL is the did:plc directory that signing keys are resolved from.
	PLCURL string
	// Directory overrides the DID directory built from PLCURL.
	Directory identity.Directory
	// SkipVerify turns off signature and MST checks of commits (only for a
	// trusted, private link to the PDS).
	SkipVerify bool
	// KeepOrphans turns off deleting records whose mood is gone.
	KeepOrphans bool
	// SaveEvery is how often the cursor is stored (default 1s).
	SaveEvery time.Duration
	// AccountsRefresh is how often a DID not in the users map may reload
	// the map (default 10s).
	AccountsRefresh time.Duration
	// MaxBackoff caps the wait between reconnects and retries (default 30s).
	MaxBackoff time.Duration
	// OpBound is how long one mood op may take, retries included, before
	// its user is handed to the reconcile queue and the follower goes on
	// (default 3s; trouble.go).
	OpBound time.Duration
	// TroubleHold is how long the mood ops of a user handed off are not
	// tried, only answered with another queued reconcile (default 30s).
	TroubleHold time.Duration
	Log         *slog.Logger
}

// FirehoseURL derives the subscribeRepos URL of a PDS from its base URL:
// http → ws, https → wss.
func FirehoseURL(pdsURL string) (string, error) {
	u, err := url.Parse(strings.TrimRight(pdsURL, "/"))
	if err != nil {
		return "", fmt.Errorf("PDS URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("PDS URL %q: scheme must be http(s) or ws(s)", pdsURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("PDS URL %q has no host", pdsURL)
	}
	u.Path = "/xrpc/com.atproto.sync.subscribeRepos"
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// Consumer follows one firehose. Run it once.
type Consumer struct {
	cfg      Config
	engine   Engine
	store    Store
	queue    reconcile.Queue
	sweep    Sweeper
	log      *slog.Logger
	dialURL  string // the firehose URL without query, credentials included
	stream   string // cursor key and log name: dialURL without credentials
	accounts *accounts
	verifier *wire.Verifier
	opts     []reconcile.Option
	stats    counters

	handled  atomic.Int64 // seq of the last event handled
	firstSeq atomic.Int64 // seq of the first event handled by this run
	saved    atomic.Int64 // seq last stored
	// owed and swept count the all-users sweeps asked for and finished: a
	// sweep is owed while swept < owed, and then the cursor is not stored,
	// so a crash repeats it. A sweep asked for while one runs is owed anew.
	owed, swept atomic.Int64
	owedCause   atomic.Value // reconcile.Cause of the last sweep asked for
	owedSince   atomic.Int64 // when it was asked for (Unix ns); 0: force
	fullKick    chan struct{}
	reloadKick  chan struct{} // to reloader (accounts.go)
	reloadMu    sync.Mutex    // one users-map reload at a time
	connected   atomic.Bool
	readyOnce   sync.Once
	readyCh     chan struct{}

	chains map[string]chainLink // by DID; only the handler goroutine uses it
	// replayedUpTo and markedUpTo bound the deletes' fast path
	// (replaymark.go); only the handler goroutine uses them after Run
	// loaded them.
	replayedUpTo, markedUpTo int64
	// trouble are the repos handed to the reconcile queue (trouble.go);
	// handler goroutine only.
	trouble map[string]troubleMark
	noted   map[string]time.Time // by DID: last mark queued; handler goroutine only
	marks   chan eventMark       // to markWriter (marks.go)

	// The reader's own: the frame buffer and the #commit view, reused.
	frame []byte
	view  wire.CommitView
	lag   lagTracker

	// resetCursor is set when the server says our cursor is in its future.
	resetCursor atomic.Bool
	// skipFinalSave makes Run end without storing the cursor, as a killed
	// process would (tests).
	skipFinalSave bool
}

// New returns a consumer; Run starts it. Whole-user reconciles go to
// queue, sweeps of every user to sweep.
func New(cfg Config, engine Engine, store Store, queue reconcile.Queue, sweep Sweeper) (*Consumer, error) {
	if cfg.FirehoseURL == "" {
		return nil, errors.New("consumer: no firehose URL")
	}
	u, err := url.Parse(cfg.FirehoseURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("consumer: firehose URL %q must be ws:// or wss://", cfg.FirehoseURL)
	}
	u.RawQuery, u.Fragment = "", ""
	if cfg.PLCURL == "" {
		cfg.PLCURL = DefaultPLCURL
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Second
	}
	if cfg.AccountsRefresh <= 0 {
		cfg.AccountsRefresh = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.OpBound <= 0 {
		cfg.OpBound = DefaultOpBound
	}
	if cfg.TroubleHold <= 0 {
		cfg.TroubleHold = DefaultTroubleHold
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		cfg:        cfg,
		engine:     engine,
		store:      store,
		queue:      queue,
		sweep:      sweep,
		readyCh:    make(chan struct{}),
		log:        cfg.Log.With("component", "consumer"),
		dialURL:    u.String(),
		stream:     u.Redacted(),
		accounts:   newAccounts(store, cfg.AccountsRefresh),
		fullKick:   make(chan struct{}, 1),
		reloadKick: make(chan struct{}, 1),
		chains:     map[string]chainLink{},
		trouble:    map[string]troubleMark{},
		marks:      make(chan eventMark, marksQueued),
	}
	if !cfg.SkipVerify {
		dir := cfg.Directory
		if dir == nil {
			base := &identity.BaseDirectory{
				PLCURL:                 strings.TrimRight(cfg.PLCURL, "/"),
				SkipHandleVerification: true,
				HTTPClient:             http.Client{Timeout: 10 * time.Second, Transport: goneIsNotFound{http.DefaultTransport}},
				UserAgent:              "moodsync",
			}
			dir = identity.NewCacheDirectory(base, 100_000, 24*time.Hour, time.Minute, time.Minute)
		}
		c.verifier = wire.NewVerifier(dir)
	}
	if cfg.KeepOrphans {
		c.opts = append(c.opts, reconcile.KeepOrphans())
	}
	return c, nil
}

// Stats returns a snapshot of the counters.
func (c *Consumer) Stats() Stats {
	s := c.stats.snapshot()
	s.FirstSeq = c.firstSeq.Load()
	s.Cursor = c.handled.Load()
	s.SavedCursor = c.saved.Load()
	return s
}

// Ready reports whether the consumer is connected and owes no sweep of
// every user (for /readyz).
func (c *Consumer) Ready() bool { return c.connected.Load() && !c.sweepOwed() }

func (c *Consumer) sweepOwed() bool { return c.swept.Load() < c.owed.Load() }

// WaitReady returns once the consumer was ready for the first time, or
// when ctx ends (with its error).
func (c *Consumer) WaitReady(ctx context.Context) error {
	select {
	case <-c.readyCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Consumer) noteReady() {
	if c.Ready() {
		c.readyOnce.Do(func() { close(c.readyCh) })
	}
}

// oweSweep asks for a sweep of every user for cause; force makes it queue
// everyone even if a sweep just did (its cause differs from theirs).
func (c *Consumer) oweSweep(cause reconcile.Cause, force bool) {
	since := time.Now().UnixNano()
	if force {
		since = 0
	}
	c.owedCause.Store(cause)
	c.owedSince.Store(since)
	c.owed.Add(1)
	select {
	case c.fullKick <- struct{}{}:
	default:
	}
}

// Run follows the firehose until ctx ends, reconnecting with backoff. It
// stores the cursor at least every SaveEvery and once more on the way out.
// It returns nil when ctx ends, an error only if it cannot start.
func (c *Consumer) Run(ctx context.Context) error {
	var seq int64
	var ok bool
	err := c.retry(ctx, "load cursor", func() error {
		var err error
		seq, ok, err = c.store.LoadCursor(ctx, c.stream)
		if err != nil {
			return err
		}
		return c.loadReplayMark(ctx, seq)
	})
	if err != nil {
		return nil // ctx ended
	}
	if err := c.retry(ctx, "load users", func() error { _, err := c.accounts.load(ctx); return err }); err != nil {
		return nil
	}
	if ok {
		c.handled.Store(seq)
		c.saved.Store(seq)
		c.log.Info("resuming firehose", "stream", c.stream, "cursor", seq)
	} else {
		c.log.Info("first start on this firehose: queueing a reconcile of every user", "stream", c.stream)
		c.oweSweep(reconcile.CauseFirstStart, false)
	}

	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); c.sweeper(ctx) }()
	go func() { defer wg.Done(); c.reloader(ctx) }()
	go func() { defer wg.Done(); c.saver(ctx) }()
	go func() { defer wg.Done(); c.checkHead(ctx) }()
	go func() { defer wg.Done(); c.markWriter(ctx) }()
	c.follow(ctx)
	wg.Wait()
	if !c.skipFinalSave {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.saveCursor(sctx)
	}
	return nil
}

// follow connects and reads until ctx ends.
func (c *Consumer) follow(ctx context.Context) {
	retry := backoff.New(250*time.Millisecond, c.cfg.MaxBackoff)
	for ctx.Err() == nil {
		if c.resetCursor.Swap(false) {
			c.forgetCursor(ctx)
		}
		start := time.Now()
		before := c.handled.Load()
		err := c.connectOnce(ctx)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute || c.handled.Load() != before {
			retry.Reset()
		}
		wait := retry.Next()
		c.stats.reconnects.Add(1)
		c.log.Warn("firehose connection ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// forgetCursor drops a cursor the server no longer knows: the PDS was
// restored from a backup and lost what was written since. The stream is
// followed live and every user reconciled with that cause, so their
// missing records are written again rather than taken as deleted.
func (c *Consumer) forgetCursor(ctx context.Context) {
	c.log.Warn("firehose says the cursor is in its future (PDS restored from a backup?): following live and queueing a reconcile of every user")
	if err := c.store.DeleteCursor(ctx, c.stream); err != nil {
		c.log.Error("could not delete the stored cursor", "err", err)
	}
	c.forgetReplayMark(ctx)
	c.handled.Store(0)
	c.saved.Store(0)
	c.chains = map[string]chainLink{}
	c.oweSweep(reconcile.CauseFutureCursor, true)
}

func (c *Consumer) connectOnce(ctx context.Context) error {
	u := c.dialURL
	if seq := c.handled.Load(); seq > 0 {
		u += "?cursor=" + strconv.FormatInt(seq, 10)
	}
	// A read buffer of many frames: catching up, the stream arrives faster
	// than it is handled, and gorilla's default 4 KiB buffer costs a read
	// syscall or two per 2 kB commit.
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment, ReadBufferSize: readBufferSize}
	con, resp, err := dialer.DialContext(ctx, u, http.Header{"User-Agent": []string{"moodsync"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.stream, err)
	}
	con.SetReadLimit(MaxFrameBytes)
	c.connected.Store(true)
	c.noteReady()
	c.log.Info("following firehose", "stream", c.stream, "cursor", c.handled.Load())
	return c.readStream(ctx, con)
}

// saver stores the cursor every SaveEvery.
func (c *Consumer) saver(ctx context.Context) {
	t := time.NewTicker(c.cfg.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.saveCursor(ctx)
		}
	}
}

// saveCursor stores the last handled seq, unless an all-users reconcile is
// still owed (then a restart must start over, not resume past the gap).
func (c *Consumer) saveCursor(ctx context.Context) {
	seq := c.handled.Load()
	if seq <= c.saved.Load() || c.sweepOwed() {
		return
	}
	if err := c.store.SaveCursor(ctx, c.stream, seq); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("could not store the firehose cursor", "err", err)
		}
		return
	}
	c.saved.Store(seq)
}

// sweeper queues a reconcile of every user whenever one is owed, until
// every sweep asked for has been queued in full (JetStream stored every
// intent). It runs beside the stream: the firehose never waits for it.
func (c *Consumer) sweeper(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.fullKick:
		}
		for c.sweepOwed() {
			owed := c.owed.Load()
			cause, _ := c.owedCause.Load().(reconcile.Cause)
			var since time.Time
			if ns := c.owedSince.Load(); ns != 0 {
				since = time.Unix(0, ns)
			}
			var n int
			err := c.retry(ctx, "queue a reconcile of every user", func() error {
				var err error
				n, err = c.sweep.Ensure(ctx, cause, since)
				return err
			})
			if err != nil {
				return // ctx ended
			}
			c.stats.fullReconciles.Add(1)
			c.log.Info("every user queued for a reconcile", "cause", string(cause), "users", n)
			// Only what was owed when this sweep began is paid: a sweep
			// asked for meanwhile runs again.
			c.swept.Store(owed)
		}
		c.noteReady()
	}
}

// reconcileUser queues a whole-user reconcile of acct (a reconcile intent
// with the cause) and goes on; it retries until JetStream stored it. It
// returns an error only when ctx ends.
func (c *Consumer) reconcileUser(ctx context.Context, acct model.Account, why string) error {
	c.stats.userReconciles.Add(1)
	c.log.Info("queueing a reconcile of the user", "user", acct.User, "did", acct.DID, "why", why)
	return c.retry(ctx, "queue a reconcile of "+acct.User, func() error {
		return c.queue.Enqueue(ctx, acct.User, reconcile.CauseGap)
	})
}

// retry runs fn until it succeeds, fails permanently (logged, counted and
// given up: the input can never be applied) or ctx ends (returned).
func (c *Consumer) retry(ctx context.Context, what string, fn func() error) error {
	retry := backoff.New(100*time.Millisecond, c.cfg.MaxBackoff)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if model.IsPermanent(err) {
			c.stats.errors.Add(1)
			c.log.Error("giving up", "what", what, "err", err)
			return nil
		}
		wait := retry.Next()
		c.log.Warn("failed; retrying", "what", what, "err", err, "in", wait.Round(time.Millisecond))
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// goneIsNotFound makes the directory's 410 Gone (a tombstoned did:plc) read
// as 404, which indigo's resolver reports as identity.ErrDIDNotFound: both
// mean the account is gone, while 5xx and timeouts mean the directory is
// down and are waited for.
type goneIsNotFound struct{ http.RoundTripper }

func (g goneIsNotFound) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := g.RoundTripper.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusGone {
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
	}
	return resp, err
}
