package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/consumer/leader"
)

// leaderJob starts one part of the daemon that only the leader runs (the
// firehose consumer): like the other start functions, it adds to wg and
// reports a failure on errs.
type leaderJob func(ctx context.Context, wg *sync.WaitGroup, errs chan<- error)

// leadership runs the leader-only parts of the daemon while this replica
// holds the firehose lease (consumer/leader), and stops them when it loses
// it. Any number of replicas may run; one leads.
type leadership struct {
	lease *leader.Lease
	m     *metrics
}

func newLeadership(js jetstream.JetStream, m *metrics, log *slog.Logger) *leadership {
	return &leadership{lease: leader.New(js, leader.Config{Log: log, OnChange: m.leadership}), m: m}
}

// start campaigns until ctx ends; each term runs jobs.
func (l *leadership) start(ctx context.Context, wg *sync.WaitGroup, errs chan<- error, jobs ...leaderJob) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.lease.Run(ctx, func(ctx context.Context) error { return leaderTerm(ctx, jobs) }); err != nil {
			errs <- err
		}
	}()
}

// leaderTerm runs the jobs until ctx ends (the lease is lost or the daemon
// stops) or one fails, and waits for all of them to stop.
func leaderTerm(ctx context.Context, jobs []leaderJob) error {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for _, job := range jobs {
		job(tctx, &wg, errs)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel()
	wg.Wait()
	return err
}

// readiness is the /readyz check of the firehose: a standby is ready
// without it; the leader when its follower is connected and owes no
// all-users reconcile.
func (l *leadership) readiness() readinessCheck {
	return readinessCheck{"firehose", func(context.Context) error {
		if !l.lease.Leading() {
			return nil
		}
		if !l.m.state.followerReady() {
			return errors.New("leading, but the follower is not connected yet or still reconciling every user")
		}
		return nil
	}}
}
