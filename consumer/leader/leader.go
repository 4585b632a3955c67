// Package leader elects the one replica that follows the firehose. Any
// number of `moodsync run` replicas share one NATS; the leader holds a lease,
// a key in a JetStream key-value bucket whose values expire after the
// bucket's TTL. The holder renews it (a revision-checked update) every TTL/3;
// standbys try to create it (create-if-absent) every TTL/4, so when the
// leader dies without a word a standby takes over within MaxTakeover. A
// leader that cannot renew stops its work before its lease can expire, so
// two replicas never follow the firehose at once (and if they did, the
// consumer's handling is idempotent). A leader that stops cleanly deletes
// the key, and a standby takes over at its next try.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
)

// Defaults.
const (
	DefaultBucket = "MOODSYNC_LEADER"
	DefaultKey    = "firehose"
	DefaultTTL    = 10 * time.Second
)

// Reasons passed to OnChange.
const (
	Acquired = "acquired" // this replica now holds the lease
	Released = "released" // it gave the lease up (shutdown, work ended)
	Lost     = "lost"     // it could not renew in time, or another replica holds the key
)

// Config configures a Lease. Zero values are the defaults.
type Config struct {
	// Bucket is the key-value bucket (created when missing, with TTL).
	Bucket string
	// Key is the lease's key in the bucket.
	Key string
	// TTL is the bucket's TTL when moodsync creates it. A bucket that
	// exists already keeps its own TTL, and the lease times itself by it.
	TTL time.Duration
	// ID names this replica in the lease; the default is the host name
	// and a random suffix, unique per process.
	ID  string
	Log *slog.Logger
	// OnChange, when set, is called when this replica starts or stops
	// leading (reason Acquired, Released or Lost).
	OnChange func(leading bool, reason string)
}

// Lease campaigns for, holds and renews the lease. Run it once.
type Lease struct {
	js       jetstream.JetStream
	cfg      Config
	log      *slog.Logger
	leading  atomic.Bool
	mu       sync.Mutex
	holder   string
	ttl      time.Duration
	lastWarn string
}

// New returns a lease; Run campaigns for it.
func New(js jetstream.JetStream, cfg Config) *Lease {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Key == "" {
		cfg.Key = DefaultKey
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Lease{js: js, cfg: cfg, log: cfg.Log.With("component", "leader", "replica", cfg.ID), ttl: cfg.TTL}
}

func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "moodsync"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// ID is this replica's name in the lease.
func (l *Lease) ID() string { return l.cfg.ID }

// Leading reports whether this replica holds the lease and its work runs.
func (l *Lease) Leading() bool { return l.leading.Load() }

// Holder is the replica last seen holding the lease ("" when unknown).
func (l *Lease) Holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// TTL is the lease's time to live: the bucket's.
func (l *Lease) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}

// MaxTakeover is the longest a standby can take to lead after the holder
// died without releasing: the lease expires at most ttl after its last
// renewal, and standbys look every ttl/4.
func MaxTakeover(ttl time.Duration) time.Duration { return ttl + ttl/4 }

// timing derived from the TTL.
func (l *Lease) renewEvery() time.Duration { return l.TTL() / 3 }
func (l *Lease) retryEvery() time.Duration { return l.TTL() / 10 }
func (l *Lease) pollEvery() time.Duration  { return l.TTL() / 4 }

// holdFor is how long after sending its last successful renewal the holder
// keeps working. The server counts the TTL from when it stored the value,
// which is later, so the work stops at least TTL/4 before anyone else can
// take the lease.
func (l *Lease) holdFor() time.Duration { return l.TTL() * 3 / 4 }

// Run campaigns for the lease until ctx ends. While this replica holds it,
// work runs with a context that is cancelled when ctx ends or the lease is
// lost; after work returns the lease is released (if still held) and the
// campaign goes on. Run returns nil when ctx ends, and an error when work
// fails or ends on its own while ctx is alive, or when the bucket cannot
// serve as a lease (no TTL).
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context) error) error {
	var kv jetstream.KeyValue
	for ctx.Err() == nil {
		rev, sent, err := l.acquire(ctx, &kv)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := l.lead(ctx, kv, rev, sent, work); err != nil {
			return err
		}
	}
	return nil
}

// errNoTTL means the bucket's values never expire: a dead holder would
// keep the lease forever.
var errNoTTL = errors.New("has no TTL: a lease in it would never expire")

// bucket opens the lease bucket, creating it when missing.
func (l *Lease) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := l.js.KeyValue(ctx, l.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateKeyValue(ctx, BucketConfig(l.cfg.Bucket, l.cfg.TTL))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = l.js.KeyValue(ctx, l.cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", l.cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", l.cfg.Bucket, err)
	}
	if st.TTL() <= 0 {
		return nil, fmt.Errorf("lease bucket %s %w", l.cfg.Bucket, errNoTTL)
	}
	l.mu.Lock()
	l.ttl = st.TTL()
	l.mu.Unlock()
	return kv, nil
}

// BucketConfig is the bucket moodsync creates for the lease: one value per
// key, expiring after ttl unless renewed.
func BucketConfig(bucket string, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "moodsync leader lease: the replica that follows the firehose",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
	}
}

// acquire tries to create the lease key every pollEvery until it succeeds
// or ctx ends. It returns the key's revision and when the winning write was
// sent.
func (l *Lease) acquire(ctx context.Context, kv *jetstream.KeyValue) (uint64, time.Time, error) {
	first := true
	for {
		if !first {
			if !backoff.Sleep(ctx, l.pollEvery()) {
				return 0, time.Time{}, ctx.Err()
			}
		}
		first = false
		if *kv == nil {
			b, err := l.bucket(ctx)
			if errors.Is(err, errNoTTL) {
				return 0, time.Time{}, err
			}
			if err != nil {
				l.warnOnce("lease bucket unavailable; retrying", err)
				continue
			}
			*kv = b
		}
		sent := time.Now()
		rev, err := (*kv).Create(ctx, l.cfg.Key, []byte(l.cfg.ID))
		if err == nil {
			return rev, sent, nil
		}
		if ctx.Err() != nil {
			return 0, time.Time{}, ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			l.warnOnce("could not campaign for the lease; retrying", err)
			*kv = nil // the bucket may be gone: open it again
			continue
		}
		e, err := (*kv).Get(ctx, l.cfg.Key)
		if err != nil {
			continue // expired or released meanwhile: try again
		}
		holder := string(e.Value())
		if holder == l.cfg.ID {
			// Ours, from a renewal whose reply was lost: nobody else can
			// hold it, so take it back.
			sent = time.Now()
			if rev, err := (*kv).Update(ctx, l.cfg.Key, []byte(l.cfg.ID), e.Revision()); err == nil {
				return rev, sent, nil
			}
			continue
		}
		l.lastWarn = ""
		l.mu.Lock()
		changed := l.holder != holder
		l.holder = holder
		l.mu.Unlock()
		if changed {
			l.log.Info("standing by: another replica follows the firehose", "leader", holder)
		}
	}
}

// lead runs work while the lease is held, renewing it, and stops work when
// ctx ends, the lease is lost, or work returns.
func (l *Lease) lead(ctx context.Context, kv jetstream.KeyValue, rev uint64, sent time.Time, work func(context.Context) error) error {
	l.mu.Lock()
	l.holder = l.cfg.ID
	l.mu.Unlock()
	l.lastWarn = ""
	l.leading.Store(true)
	l.log.Info("firehose leadership acquired", "bucket", l.cfg.Bucket, "key", l.cfg.Key, "ttl", l.TTL())
	l.changed(true, Acquired)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()

	renew := time.NewTimer(l.renewEvery())
	defer renew.Stop()
	expire := time.NewTimer(time.Until(sent.Add(l.holdFor())))
	defer expire.Stop()

	held, reason := true, Released
	var workErr error
	workDone := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case workErr = <-done:
			workDone = true
			if workErr == nil && ctx.Err() == nil {
				workErr = errors.New("firehose follower ended while leading")
			}
			break loop
		case <-expire.C:
			held, reason = false, Lost
			l.log.Error("firehose leadership lost: the lease could not be renewed in time; stopping the follower")
			break loop
		case <-renew.C:
			attempt := time.Now()
			rctx, rcancel := context.WithDeadline(ctx, sent.Add(l.holdFor()))
			next, err := kv.Update(rctx, l.cfg.Key, []byte(l.cfg.ID), rev)
			rcancel()
			switch {
			case err == nil:
				rev, sent = next, attempt
				l.lastWarn = ""
				expire.Reset(time.Until(sent.Add(l.holdFor())))
				renew.Reset(l.renewEvery())
			case ctx.Err() != nil:
				break loop
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
				held, reason = false, Lost
				l.log.Error("firehose leadership lost: the lease expired or was taken; stopping the follower", "err", err)
				break loop
			default:
				l.warnOnce("renewing the lease failed; retrying", err)
				renew.Reset(l.retryEvery())
			}
		}
	}
	cancel()
	if !workDone {
		workErr = <-done
	}
	if held {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.retryEvery())
		if err := kv.Delete(rctx, l.cfg.Key, jetstream.LastRevision(rev)); err != nil {
			l.log.Warn("could not release the lease; it expires on its own", "err", err, "ttl", l.TTL())
		}
		rcancel()
		l.mu.Lock()
		l.holder = ""
		l.mu.Unlock()
		l.log.Info("firehose leadership released")
	}
	l.leading.Store(false)
	l.changed(false, reason)
	return workErr
}

func (l *Lease) changed(leading bool, reason string) {
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(leading, reason)
	}
}

// warnOnce logs a failure once until it changes or things recover, so an
// outage is not logged every few seconds.
func (l *Lease) warnOnce(msg string, err error) {
	if s := msg + err.Error(); s != l.lastWarn {
		l.lastWarn = s
		l.log.Warn(msg, "err", err)
	}
}
