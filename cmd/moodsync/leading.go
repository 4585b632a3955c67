package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/consumer/leader"
)

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

// run campaigns until ctx ends; each term runs term until the lease is
// lost, ctx ends, or term fails.
func (l *leadership) run(ctx context.Context, term func(ctx context.Context) error) error {
	return l.lease.Run(ctx, term)
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
