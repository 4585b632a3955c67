package publisher

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
)

// Queue asks for whole-user reconciles by publishing reconcile intents: the
// durable queue that every replica's publisher works through, with the
// same retries and dead letters as the app's intents. It implements
// reconcile.Queue.
type Queue struct {
	JS jetstream.JetStream
}

// Enqueue publishes a reconcile intent for user and returns once JetStream
// has stored it.
func (q Queue) Enqueue(ctx context.Context, user string, cause reconcile.Cause) error {
	return intent.Publish(ctx, q.JS, intent.Intent{Op: intent.OpReconcile, User: user, Cause: string(cause)})
}
