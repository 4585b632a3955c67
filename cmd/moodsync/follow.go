package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/whistlegraph/moodsync/consumer"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// startConsumer follows the firehose until ctx ends: the PDS → Mongo half
// of the daemon. The metrics read its counters and position at scrape
// time, and the lag probe measures how far behind the live head it is.
func startConsumer(ctx context.Context, wg *sync.WaitGroup, cfg *Config, engine *reconcile.Engine, store *mongostore.Store, m *metrics, log *slog.Logger, errs chan<- error) {
	fh, err := cfg.firehoseURL()
	if err != nil {
		errs <- err
		return
	}
	cons, err := consumer.New(consumer.Config{
		FirehoseURL: fh,
		PLCURL:      cfg.PLCURL,
		SkipVerify:  !cfg.VerifyCommits,
		KeepOrphans: !cfg.DeleteOrphans,
		Log:         log,
	}, engine, store)
	if err != nil {
		errs <- fmt.Errorf("firehose consumer: %w", err)
		return
	}
	probe := newHeadProbe(fh, log)
	m.state.startTerm(cons, probe)
	wg.Add(2)
	go func() {
		defer wg.Done()
		probe.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		defer m.state.endTerm()
		if err := cons.Run(ctx); err != nil {
			errs <- err
		}
	}()
}
