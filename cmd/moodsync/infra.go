package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/deploy/embedded"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// infra is the Mongo and NATS a command works against, embedded or not.
type infra struct {
	Store *mongostore.Store
	NC    *nats.Conn
	JS    jetstream.JetStream

	closers []func()
}

// Close releases everything, newest first.
func (in *infra) Close() {
	for i := len(in.closers) - 1; i >= 0; i-- {
		in.closers[i]()
	}
}

// listening reports whether something accepts connections on addr: a
// daemon's embedded server that a one-shot command should share.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// embedMode says what a command does when no URI is configured.
type embedMode int

const (
	// embedOwn: the daemon starts its own embedded server, and refuses to
	// start when the address is taken (it could be anybody's database).
	embedOwn embedMode = iota
	// embedShare: a one-shot command uses the embedded server of a running
	// daemon on the embed address, and starts its own (on the same files)
	// when nothing listens there.
	embedShare
)

// mongoURI returns the configured URI (checked when the settings were
// applied), or an embedded server's, and the URI as it may be shown.
func (in *infra) mongoURI(cfg *Config, log *slog.Logger, mode embedMode) (uri, shown string, err error) {
	if cfg.MongoURI != "" {
		shown = redactURL(cfg.MongoURI)
		log.Info("using MongoDB", "uri", shown, "db", cfg.MongoDB)
		return cfg.MongoURI, shown, nil
	}
	uri, err = in.embeddedMongo(cfg, log, mode)
	return uri, uri, err
}

// embeddedMongo returns the URI of the embedded Mongo-wire server: a
// running daemon's, or one started here.
func (in *infra) embeddedMongo(cfg *Config, log *slog.Logger, mode embedMode) (string, error) {
	if listening(cfg.EmbedMongoAddr) {
		if mode == embedOwn {
			return "", fmt.Errorf("%s is already in use: set MOODSYNC_EMBED_MONGO_ADDR to a free address, or MOODSYNC_MONGO_URI to use that server", cfg.EmbedMongoAddr)
		}
		log.Info("using the embedded Mongo-wire server of a running moodsync", "addr", cfg.EmbedMongoAddr, "db", cfg.MongoDB)
		return "mongodb://" + cfg.EmbedMongoAddr + "/", nil
	}
	srv, err := embedded.StartMongo(cfg.EmbedMongoAddr, filepath.Join(cfg.DataDir, "mongo"), log)
	if err != nil {
		return "", err
	}
	in.closers = append(in.closers, srv.Close)
	log.Info("started embedded Mongo-wire server (FerretDB on SQLite; for dev and tests only)",
		"addr", cfg.EmbedMongoAddr, "dir", filepath.Join(cfg.DataDir, "mongo"), "db", cfg.MongoDB)
	return srv.URI(), nil
}

func (in *infra) natsURL(cfg *Config, log *slog.Logger, mode embedMode) (string, error) {
	if cfg.NATSURL != "" {
		log.Info("using NATS", "url", redactURL(cfg.NATSURL))
		return cfg.NATSURL, nil
	}
	if listening(cfg.EmbedNATSAddr) {
		if mode == embedOwn {
			return "", fmt.Errorf("%s is already in use: set MOODSYNC_EMBED_NATS_ADDR to a free address, or MOODSYNC_NATS_URL to use that server", cfg.EmbedNATSAddr)
		}
		log.Info("using the embedded NATS of a running moodsync", "addr", cfg.EmbedNATSAddr)
		return "nats://" + cfg.EmbedNATSAddr, nil
	}
	srv, err := embedded.StartNATS(cfg.EmbedNATSAddr, filepath.Join(cfg.DataDir, "nats"))
	if err != nil {
		return "", err
	}
	in.closers = append(in.closers, srv.Close)
	log.Info("started embedded NATS JetStream", "addr", cfg.EmbedNATSAddr, "dir", filepath.Join(cfg.DataDir, "nats"))
	return srv.URL(), nil
}

// openMongo connects the store (to an embedded server when no URI is set)
// and creates the indexes moodsync needs.
func (in *infra) openMongo(ctx context.Context, cfg *Config, log *slog.Logger, mode embedMode) error {
	uri, shown, err := in.mongoURI(cfg, log, mode)
	if err != nil {
		return err
	}
	store, err := mongostore.Connect(uri, cfg.MongoDB)
	if err != nil {
		return fmt.Errorf("mongo %s: %w", shown, scrubbedError{err})
	}
	store.Log = log
	in.Store = store
	in.closers = append(in.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = store.Close(ctx)
	})
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := store.EnsureIndexes(ictx); err != nil {
		return fmt.Errorf("mongo %s: %w", shown, scrubbedError{err})
	}
	return nil
}

// openNATS connects to NATS (an embedded server when no URL is set). The
// connection reconnects forever: a NATS restart is an outage to ride out,
// not a reason to exit.
func (in *infra) openNATS(cfg *Config, log *slog.Logger, mode embedMode) error {
	url, err := in.natsURL(cfg, log, mode)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url,
		nats.Name("moodsync"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("NATS reconnected") }),
	)
	if err != nil {
		return fmt.Errorf("nats %s: %w", redactURL(url), scrubbedError{err})
	}
	in.closers = append(in.closers, func() { _ = nc.Drain() })
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	in.NC, in.JS = nc, js
	return nil
}

var errNoPDS = errors.New("MOODSYNC_PDS_URL (--pds-url) is required")
