package main

import (
	"context"
	"fmt"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/whistlegraph/moodsync/consumer"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// follow is one leader term: the firehose follower (the PDS → Mongo half
// of the daemon) and the periodic anti-entropy pass, until
// ctx ends or one fails. The metrics read the follower's counters and
// position at scrape time.
func follow(ctx context.Context, cfg *Config, engine *reconcile.Engine, store *mongostore.Store, queue publisher.Queue, sweep *reconcile.Sweep, m *metrics, log *slog.Logger) error {
	fh, err := cfg.firehoseURL()
	if err != nil {
		return err
	}
	cons, err := consumer.New(consumer.Config{
		FirehoseURL: fh,
		PLCURL:      cfg.PLCURL,
		SkipVerify:  !cfg.VerifyCommits,
		KeepOrphans: !cfg.DeleteOrphans,
		Log:         log,
	}, engine, store, queue, sweep)
	if err != nil {
		return fmt.Errorf("firehose consumer: %w", err)
	}
	m.state.startTerm(cons)
	defer m.state.endTerm()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cons.Run(gctx) })
	g.Go(func() error { return startAntiEntropy(gctx, cfg, sweep, cons, m, log) })
	return g.Wait()
}
