package main

// What the anti-entropy commands (audit, backfill, cleanup, purge) share:
// their settings, opening Mongo and the PDS client, choosing the users and
// working through them with bounded concurrency. They decide nothing
// themselves: each user goes through the engine's one whole-user reconcile
// (reconcile.Engine.ReconcileUser) with the command's scope, and the
// command prints what it found, planned and did.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// aeFlags are the settings of an anti-entropy command.
type aeFlags struct {
	fs          *flag.FlagSet
	cfg         Config
	user        string
	concurrency int
}

// newAEFlags binds the PDS and Mongo settings (no NATS: these commands do
// not use it) and, unless single, --user and --concurrency. The command
// binds its own flags on f.fs next.
func newAEFlags(name string, stderr io.Writer, single bool) *aeFlags {
	f := &aeFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	cf := configFlags{f.fs, &f.cfg}
	cf.add("pds-url", "mongo-uri", "mongo-db", "embed-mongo-addr", "data-dir", "max-export-bytes")
	cf.logging()
	if single {
		f.fs.StringVar(&f.user, "user", "", "Auth0 sub of the user (required)")
		return f
	}
	f.fs.StringVar(&f.user, "user", "", "only this user (Auth0 sub); default every user with a PDS account")
	f.fs.IntVar(&f.concurrency, "concurrency", 4, "users worked on at once")
	return f
}

// reconcile parses args (then runs check, for the command's own flags),
// opens Mongo and the PDS client, and reconciles the chosen users with the
// options opts returns (called after check). The caller closes env.in.
func (f *aeFlags) reconcile(ctx context.Context, args []string, stderr io.Writer, check func() error, opts func() reconcile.ReconcileOptions) (*aeEnv, []compared, error) {
	if err := parseFlags(f.fs, args); err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, err
		}
	}
	env, err := f.open(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	accts, err := f.accounts(ctx, env.store)
	if err != nil {
		env.in.Close()
		return nil, nil, err
	}
	return env, reconcileAll(ctx, env.engine, accts, f.concurrency, opts(), stderr), nil
}

// aeEnv is what an anti-entropy command works with.
type aeEnv struct {
	log     *slog.Logger
	in      infra
	store   *mongostore.Store
	engine  *reconcile.Engine
	breaker *mongostore.Breaker
}

// open connects Mongo (a running daemon's embedded server, else a new one)
// and the PDS client. The caller closes env.in.
func (f *aeFlags) open(ctx context.Context, stderr io.Writer) (*aeEnv, error) {
	log, err := newLogger(&f.cfg, stderr)
	if err != nil {
		return nil, err
	}
	if f.cfg.PDSURL == "" {
		return nil, errNoPDS
	}
	env := &aeEnv{log: log}
	if err := env.in.openMongo(ctx, &f.cfg, log, embedShare); err != nil {
		env.in.Close()
		return nil, err
	}
	env.store = env.in.Store
	pds := pdsclient.New(f.cfg.PDSURL, env.store, log)
	pds.MaxExportBytes = f.cfg.MaxExportBytes
	env.engine = reconcile.NewEngine(env.store, pds, log)
	env.engine.MassDeleteLimit = f.cfg.MassDeleteLimit
	env.breaker = &mongostore.Breaker{Store: env.store, Limit: f.cfg.MassDeleteBreaker}
	env.engine.Breaker = env.breaker
	return env, nil
}

// accounts returns the users to work on, sorted by sub: --user, or every
// user with a PDS account.
func (f *aeFlags) accounts(ctx context.Context, store *mongostore.Store) ([]model.Account, error) {
	if f.user != "" {
		acct, err := store.Account(ctx, f.user)
		if err != nil {
			return nil, err
		}
		if acct == nil {
			return nil, fmt.Errorf("user %s has no PDS account (no users row with atproto.did)", f.user)
		}
		return []model.Account{*acct}, nil
	}
	accts, err := store.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	slices.SortFunc(accts, func(a, b model.Account) int { return strings.Compare(a.User, b.User) })
	return accts, nil
}

// eachAccount runs fn for every account, at most n at once, and stops
// starting new ones when ctx ends. fn gets the account's index, so results
// can be kept in a deterministic order.
func eachAccount(ctx context.Context, accts []model.Account, n int, fn func(i int, acct model.Account)) {
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, acct := range accts {
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i, acct)
		}()
	}
	wg.Wait()
}

// compared is the reconcile of one user, or why there is none.
type compared struct {
	acct    model.Account
	report  *reconcile.Report
	plan    reconcile.Plan
	results []reconcile.FixResult
	err     error
}

// reconcileAll reconciles every account, n at once, with a progress bar.
// Fixes that failed are in results; err is for a user that could not be
// compared at all.
func reconcileAll(ctx context.Context, e *reconcile.Engine, accts []model.Account, n int, o reconcile.ReconcileOptions, stderr io.Writer) []compared {
	out := make([]compared, len(accts))
	label := "reconciling users"
	if o.DryRun {
		label = "comparing users"
	}
	bar := newProgress(stderr, label, len(accts))
	eachAccount(ctx, accts, n, func(i int, acct model.Account) {
		res, err := e.ReconcileUser(ctx, acct.User, reconcile.CauseOperator, o)
		c := compared{acct: acct, err: err}
		if res != nil {
			c.report, c.plan, c.results, c.err = res.Report, res.Plan, res.Results, nil
		}
		out[i] = c
		bar.Add(1)
	})
	bar.Finish()
	for i := range out {
		if out[i].report == nil && out[i].err == nil {
			out[i] = compared{acct: accts[i], err: ctx.Err()}
		}
	}
	return out
}

// shortList lists the first few of ids for text output (JSON has them all,
// whole), each cut to the shortest prefix of at least 8 characters that
// still tells them apart: ObjectIDs and TIDs both start with a timestamp,
// so moods made together share long prefixes.
func shortList(ids []string) string {
	const most = 5
	shown := ids[:min(most, len(ids))]
	n := 8
	for ; ; n++ {
		seen := map[string]bool{}
		longer := false
		for _, id := range shown {
			p := id[:min(n, len(id))]
			longer = longer || len(id) > n
			if seen[p] {
				break
			}
			seen[p] = true
		}
		if len(seen) == len(shown) || !longer {
			break
		}
	}
	parts := make([]string, 0, most+1)
	for _, id := range shown {
		if len(id) > n {
			id = id[:n] + "..."
		}
		parts = append(parts, id)
	}
	if len(ids) > most {
		parts = append(parts, fmt.Sprintf("+%d more", len(ids)-most))
	}
	return strings.Join(parts, ", ")
}

// plural is "1 mood" or "2 moods".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// pacer spreads writes to at most perSecond a second across every user.
type pacer struct {
	mu   sync.Mutex
	each time.Duration
	next time.Time
}

func newPacer(perSecond float64) *pacer {
	if perSecond <= 0 {
		return nil
	}
	return &pacer{each: time.Duration(float64(time.Second) / perSecond)}
}

// wait returns when n more writes may start.
func (p *pacer) wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(n) * p.each)
	p.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseRate reads "50", "50/s" or "3000/m" as writes per second.
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad rate %q: want N/s, e.g. 50/s", s)
	}
	switch unit {
	case "", "s":
		return n, nil
	case "m":
		return n / 60, nil
	}
	return 0, fmt.Errorf("bad rate %q: want N/s or N/m", s)
}

// startAntiEntropy starts the daemon's periodic pass (off when
// --anti-entropy-every is 0) once the firehose follower has made its first
// start's sweep, so a fresh install reads each repo once, reporting each
// pass to the metrics.
func startAntiEntropy(ctx context.Context, cfg *Config, sweep *reconcile.Sweep, follower interface{ WaitReady(context.Context) error }, m *metrics, log *slog.Logger) error {
	if cfg.AntiEntropyEvery <= 0 {
		log.Info("anti-entropy off")
		return nil
	}
	ae := &reconcile.AntiEntropy{
		Sweep: sweep, Every: cfg.AntiEntropyEvery, FullEvery: cfg.AntiEntropyFullEvery, Log: log,
		OnPass: func(r reconcile.PassResult) { m.antiEntropyPass(r.Started, r.Queued) },
	}
	if err := follower.WaitReady(ctx); err != nil {
		return nil
	}
	return ae.Run(ctx)
}
