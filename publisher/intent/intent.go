// Package intent is the wire format of moodsync's NATS intents, and a small
// client for Go programs that publish them. The app publishes an intent
// after it writes Mongo; moodsync treats it as a hint to converge the PDS to
// whatever Mongo says at the time it is processed.
package intent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Stream and subject names (DESIGN.md).
const (
	Stream        = "MOODSYNC_INTENTS"
	SubjectPrefix = "moods.intent."
	Subjects      = "moods.intent.>"
	DeadStream    = "MOODSYNC_DEAD"
	DeadPrefix    = "moods.dead."
	DeadSubjects  = "moods.dead.>"
)

// Op names.
const (
	OpCreate    = "create"
	OpDelete    = "delete"
	OpPurge     = "purge"
	OpReconcile = "reconcile"
)

// Intent is the JSON payload. Unknown fields are ignored.
type Intent struct {
	Op      string `json:"op"`
	MongoID string `json:"mongoId,omitempty"`
	User    string `json:"user"`
	DID     string `json:"did,omitempty"`
	// Cause says why a reconcile was asked for (moodsync's own: first
	// start, a firehose gap, the periodic pass, a restored PDS, …); it
	// decides what a record missing from the repo means. Optional.
	Cause string `json:"cause,omitempty"`
}

// Subject is the subject an intent is published on.
func (in Intent) Subject() string { return SubjectPrefix + in.Op }

// Validate reports what is wrong with an intent, as a permanent error.
func (in Intent) Validate() error {
	switch in.Op {
	case OpCreate, OpDelete:
		if !model.ValidID(in.MongoID) {
			return model.Permanent("bad mongoId %q: want 24 hex digits", in.MongoID)
		}
	case OpPurge:
		if in.DID != "" && !strings.HasPrefix(in.DID, "did:") {
			return model.Permanent("bad did %q", in.DID)
		}
	case OpReconcile:
	case "":
		return model.Permanent("missing op")
	default:
		return model.Permanent("unknown op %q", in.Op)
	}
	if in.User == "" {
		return model.Permanent("missing user")
	}
	return nil
}

// Parse decodes and validates an intent received on subject. The op must
// agree with the subject, so a mislabelled message cannot slip through.
func Parse(subject string, data []byte) (Intent, error) {
	var in Intent
	if err := json.Unmarshal(data, &in); err != nil {
		return in, model.Permanent("bad JSON: %v", err)
	}
	if err := in.Validate(); err != nil {
		return in, err
	}
	if subject != "" && subject != in.Subject() {
		return in, model.Permanent("op %q does not match subject %q", in.Op, subject)
	}
	return in, nil
}

// Publish validates an intent and publishes it, waiting for JetStream to
// store it.
func Publish(ctx context.Context, js jetstream.JetStream, in Intent) error {
	if err := in.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, in.Subject(), data); err != nil {
		return fmt.Errorf("publish %s: %w", in.Subject(), err)
	}
	return nil
}
