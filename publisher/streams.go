package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
)

// Durable is the name of the JetStream consumer every replica shares, so
// intent work is spread across them.
const Durable = "moodsync-publisher"

// IntentsStreamConfig is the stream moodsync creates when it is missing.
// Work-queue retention removes an intent once it is acknowledged.
func IntentsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        intent.Stream,
		Description: "moodsync intents: hints from the app to converge a mood or user",
		Subjects:    []string{intent.Subjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
	}
}

// DeadStreamConfig keeps dead letters until an operator deals with them.
func DeadStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        intent.DeadStream,
		Description: "moodsync dead letters: intents that can never be applied, with the reason in a header",
		Subjects:    []string{intent.DeadSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
	}
}

// ConsumerConfig is the durable pull consumer of the intents stream.
func ConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       Durable,
		Description:   "moodsync publisher: converges the PDS to Mongo",
		FilterSubject: intent.Subjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		// Transient failures are retried for as long as it takes; permanent
		// ones are dead-lettered by the publisher itself.
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	}
}

// EnsureStreams creates the intents and dead-letter streams when missing.
// Existing ones are left as they are, so operators may manage them by hand
// (replicas, limits).
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range []jetstream.StreamConfig{IntentsStreamConfig(), DeadStreamConfig()} {
		if _, err := js.Stream(ctx, cfg.Name); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// EnsureConsumer creates the streams and the durable consumer when missing.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, ackWait time.Duration) (jetstream.Consumer, error) {
	if err := EnsureStreams(ctx, js); err != nil {
		return nil, err
	}
	cons, err := js.Consumer(ctx, intent.Stream, Durable)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", Durable, err)
	}
	cons, err = js.CreateOrUpdateConsumer(ctx, intent.Stream, ConsumerConfig(ackWait))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", Durable, err)
	}
	return cons, nil
}
