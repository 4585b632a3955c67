package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// runCommand is the daemon: publisher + firehose consumer + HTTP.
type runCommand struct {
	stdout, stderr io.Writer

	// ready, when set, is closed once the daemon serves (for tests).
	ready chan struct{}
}

func (c *runCommand) Run(ctx context.Context, args []string) error {
	var cfg Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cf := configFlags{fs, &cfg}
	cf.pds()
	cf.stores()
	cf.str(&cfg.HTTPAddr, "http-addr", "127.0.0.1:9464", "listen address of /metrics, /healthz, /readyz")
	cf.int(&cfg.PublishConcurrency, "publish-concurrency", 4, "users whose intents are applied at once")
	cf.bool(&cfg.VerifyCommits, "verify-commits", true, "verify firehose commit signatures and MST inversion")
	cf.bool(&cfg.DeleteOrphans, "delete-orphans", true, "delete records whose mood is deleted or missing")
	cf.duration(&cfg.AntiEntropyEvery, "anti-entropy-every", 24*time.Hour, "how often every user is compared in full; 0 turns it off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(&cfg, c.stderr)
	if err != nil {
		return err
	}
	if cfg.PDSURL == "" {
		return errNoPDS
	}

	var in infra
	defer in.Close()
	if err := in.openNATS(&cfg, log, embedOwn); err != nil {
		return err
	}
	if err := in.openMongo(ctx, &cfg, log, embedOwn); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.state.useNATS(in.NC, in.JS)
	pds := pdsclient.New(cfg.PDSURL, in.Store, log)
	m.instrumentPDS(pds)
	engine := reconcile.NewEngine(in.Store, pds, log)
	engine.Observe = m.engineAction
	pub := publisher.New(in.JS, engine, publisher.Config{Concurrency: cfg.PublishConcurrency}, log)
	pub.Observe = m.intent

	lead := newLeadership(in.JS, m, log)

	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: httpHandler(reg, &in, lead.readiness()), ReadHeaderTimeout: 5 * time.Second}
	httpErr := make(chan error, 1)
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
	}()
	log.Info("moodsync running", "version", Version, "pds", redactURL(cfg.PDSURL), "http", cfg.HTTPAddr)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pub.Run(runCtx); err != nil {
			errs <- err
		}
	}()
	// The firehose is followed, and anti-entropy run, by one replica: the
	// lease holder.
	lead.start(runCtx, &wg, errs, func(ctx context.Context, wg *sync.WaitGroup, errs chan<- error) {
		startConsumer(ctx, wg, &cfg, engine, in.Store, m, log, errs)
		startAntiEntropy(ctx, wg, &cfg, engine, in.Store, m, log)
	})
	if c.ready != nil {
		close(c.ready)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
	case runErr = <-errs:
		log.Error("stopping: component failed", "err", runErr)
	case runErr = <-httpErr:
		log.Error("stopping: HTTP server failed", "err", runErr)
	}
	cancel()
	wg.Wait()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	log.Info("moodsync stopped")
	return runErr
}
