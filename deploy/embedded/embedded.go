//go:build !production

// Package embedded starts the NATS JetStream and Mongo-wire (FerretDB on
// SQLite) servers that let moodsync run on a fresh machine with nothing
// installed. Production builds (-tags production) leave both out; there the
// daemon must be pointed at a real NATS cluster and MongoDB replica set.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Available reports whether this binary was built with the embedded servers.
const Available = true

// NATS is an in-process nats-server with JetStream enabled.
type NATS struct {
	srv *natsserver.Server
}

// StartNATS starts nats-server with JetStream on addr (host:port; port 0
// picks a free one), keeping its files under dir.
func StartNATS(addr, dir string) (*NATS, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		// nats-server reads 0 as "the default port, 4222"; -1 asks for a
		// free one, which is what port 0 means everywhere else.
		port = natsserver.RANDOM_PORT
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	opts := &natsserver.Options{
		ServerName: "moodsync-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// The HTTP monitor and cluster ports stay closed: loopback client only.
		HTTPPort: 0,
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s after 10s", addr)
	}
	return &NATS{srv: srv}, nil
}

// URL is the client URL of the running server.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// Close shuts the server down and waits for it.
func (n *NATS) Close() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// Mongo is an in-process FerretDB speaking the MongoDB wire protocol,
// storing its data in SQLite files, behind a gate that lets one command run
// at a time (see gate.go) so that every command is atomic. It scans whole
// collections: fine for a demo and for tests, never a yardstick for speed.
type Mongo struct {
	fdb    *ferretdb.FerretDB
	gate   *gate // nil when started without it (tests that show why it exists)
	cancel context.CancelFunc
	done   chan struct{}
}

// StartMongo starts FerretDB with its SQLite files under dir, served on addr
// (host:port; port 0 picks a free one) through the gate.
func StartMongo(addr, dir string, log *slog.Logger) (*Mongo, error) {
	return startMongo(addr, dir, log, true)
}

// startMongo starts FerretDB; gated, FerretDB listens on a free loopback
// port and addr is the gate's, otherwise FerretDB listens on addr itself.
func startMongo(addr, dir string, log *slog.Logger, gated bool) (*Mongo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("embedded mongo: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	listen := addr
	if gated {
		listen = "127.0.0.1:0"
	}
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		// FerretDB logs every connection at info; keep only its warnings.
		Logger: slog.New(&levelFloor{h: log.Handler(), min: slog.LevelWarn}),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded mongo: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mongo{fdb: fdb, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		_ = fdb.Run(ctx)
	}()
	if gated {
		u, err := url.Parse(fdb.MongoDBURI())
		if err == nil {
			m.gate, err = startGate(addr, u.Host, log)
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("embedded mongo: %w", err)
		}
	}
	return m, nil
}

// URI is the mongodb:// URI of the running server.
func (m *Mongo) URI() string {
	if m.gate != nil {
		return "mongodb://" + m.gate.addr() + "/"
	}
	return m.fdb.MongoDBURI()
}

// Close stops the server and waits until its files are closed.
func (m *Mongo) Close() {
	if m.gate != nil {
		m.gate.close()
	}
	m.cancel()
	<-m.done
}

type levelFloor struct {
	h   slog.Handler
	min slog.Level
}

func (l *levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l *levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l *levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelFloor{h: l.h.WithAttrs(a), min: l.min}
}
func (l *levelFloor) WithGroup(n string) slog.Handler {
	return &levelFloor{h: l.h.WithGroup(n), min: l.min}
}
