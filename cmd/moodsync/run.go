package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
	"github.com/whistlegraph/moodsync/reconcile/status"
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
	configFlags{fs, &cfg}.all()
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
	adminToken, err := cfg.adminToken()
	if err != nil {
		return err
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
	m.instrumentStore(in.Store)
	pds := pdsclient.New(cfg.PDSURL, in.Store, log)
	pds.MaxExportBytes = cfg.MaxExportBytes
	m.instrumentPDS(pds)
	engine := reconcile.NewEngine(in.Store, pds, log)
	engine.Observe = m.engineAction
	engine.MassDeleteLimit = cfg.MassDeleteLimit
	engine.Breaker = &mongostore.Breaker{Store: in.Store, Limit: cfg.MassDeleteBreaker}
	queue := publisher.Queue{JS: in.JS}
	sweep := &reconcile.Sweep{Users: in.Store, Queue: queue, State: in.Store, Log: log,
		Unchanged: &reconcile.Unchanged{Repos: pds, State: in.Store}}
	pub := publisher.New(in.JS, engine, publisher.Config{Concurrency: cfg.PublishConcurrency, KeepOrphans: !cfg.DeleteOrphans}, log)
	pub.Observe = m.intent
	pub.Park = in.Store
	m.state.usePublisher(pub)
	lead := newLeadership(in.JS, m, log)

	statuses := status.NewReader(in.Store, pds, cfg.MassDeleteLimit)
	statuses.Queues = deadletter.Queues{JS: in.JS}
	admin := adminRoutes(adminToken, statusHandler(statuses, log), m.adminDenied, log)
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: httpHandler(reg, infraChecks(&in, lead.readiness()), admin), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	log.Info("moodsync running", "version", Version, "pds", redactURL(cfg.PDSURL), "http", cfg.HTTPAddr, "admin_routes", admin != nil)

	// The components run until the signal or until one fails: then the
	// others are stopped and waited for.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pub.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	// The firehose is followed, and anti-entropy run, by one replica: the
	// lease holder.
	g.Go(func() error {
		return lead.run(gctx, func(ctx context.Context) error {
			return follow(ctx, &cfg, engine, in.Store, queue, sweep, m, log)
		})
	})
	if c.ready != nil {
		close(c.ready)
	}
	err = g.Wait()
	if err != nil {
		log.Error("stopped: component failed", "err", err)
	} else {
		log.Info("moodsync stopped")
	}
	return err
}
