// Package intent is the wire format of moodsync's NATS intents, and a small
// client for Go programs that publish them. The app publishes an intent
// after it writes Mongo; moodsync treats it as a hint to converge the PDS to
// whatever Mongo says at the time it is processed.
package intent

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/bluesky-social/indigo/atproto/syntax"
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

// Bounds of an intent (DESIGN.md, "Bad input"). Anything over them is
// refused as a permanent error, so it ends as one dead letter.
const (
	// MaxSize is the largest payload accepted, in bytes.
	MaxSize = 64 << 10
	// MaxUserLen is the longest user (Auth0 sub) accepted, in bytes.
	MaxUserLen = 512
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

// Validate reports what is wrong with an intent, as a permanent error. A
// mongoId in upper case is valid: Parse and Publish normalise it. Reasons
// never quote an unbounded field.
func (in Intent) Validate() error {
	switch in.Op {
	case OpCreate, OpDelete:
		if !model.ValidID(model.NormalizeID(in.MongoID)) {
			return model.Permanent("bad mongoId %s: want 24 hex digits", quoteShort(in.MongoID))
		}
	case OpPurge:
		if in.DID != "" {
			if _, err := syntax.ParseDID(in.DID); err != nil {
				return model.Permanent("bad did %s: %v", quoteShort(in.DID), err)
			}
		}
	case OpReconcile:
	case "":
		return model.Permanent("missing op")
	default:
		return model.Permanent("unknown op %s", quoteShort(in.Op))
	}
	switch {
	case in.User == "":
		return model.Permanent("missing user")
	case len(in.User) > MaxUserLen:
		return model.Permanent("user of %d bytes: the limit is %d", len(in.User), MaxUserLen)
	case !printable(in.User):
		return model.Permanent("user is not printable UTF-8")
	}
	return nil
}

// Known reports whether op is one of the four ops.
func Known(op string) bool {
	switch op {
	case OpCreate, OpDelete, OpPurge, OpReconcile:
		return true
	}
	return false
}

// Parse decodes and validates an intent received on subject. The op must
// agree with the subject, so a mislabelled message cannot slip through.
// On error the intent returned carries nothing but its op, and that only
// when the op is known (to file the dead letter under it): no field of a
// bad intent is trusted, not even in a log line.
func Parse(subject string, data []byte) (Intent, error) {
	in, err := parse(subject, data)
	switch {
	case err == nil:
		return in, nil
	case Known(in.Op):
		return Intent{Op: in.Op}, err
	default:
		return Intent{}, err
	}
}

func parse(subject string, data []byte) (Intent, error) {
	var in Intent
	if len(data) > MaxSize {
		return in, model.Permanent("intent of %d bytes: the limit is %d", len(data), MaxSize)
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, model.Permanent("bad JSON: %v", err)
	}
	in.MongoID = model.NormalizeID(in.MongoID)
	if err := in.Validate(); err != nil {
		return in, err
	}
	if subject != "" && subject != in.Subject() {
		return in, model.Permanent("op %q does not match subject %s", in.Op, quoteShort(subject))
	}
	return in, nil
}

// quoteShort quotes s for an error reason, or gives only its length when
// it is too long to be worth showing.
func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("(%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// printable reports whether s is valid UTF-8 without control characters
// (it ends up in log lines and dead-letter headers).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Publish validates an intent and publishes it, waiting for JetStream to
// store it.
func Publish(ctx context.Context, js jetstream.JetStream, in Intent) error {
	in.MongoID = model.NormalizeID(in.MongoID)
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
