// Package deadletter reads and acts on the dead letters the publisher
// leaves in MOODSYNC_DEAD: intents that could not be applied, each with the
// original payload and the reason in headers. An operator lists them,
// replays those whose cause was fixed, and drops the rest.
//
// Replaying publishes the original payload again on its intent subject and
// deletes the dead letter only once JetStream has stored the replay, so an
// interruption never loses an intent: at worst the replayed intent and its
// dead letter both exist, which is harmless because intents are idempotent
// (and a replay run again within the intents stream's duplicate window is
// dropped by JetStream, since a replay carries a message id of its letter).
package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

// HeaderTruncated marks a dead letter whose payload was cut to fit (an
// intent over the size limit): such a payload is not the intent that was
// sent, so it is never replayed.
const HeaderTruncated = publisher.HeaderTruncated

// Letter is one dead letter, as `moodsync dead` and a user's status show it
// (the view reconcile/status owns).
type Letter = status.Letter

// Filter selects dead letters; zero fields select everything.
type Filter struct {
	User   string    // the payload's user, exactly
	Reason string    // a substring of the reason, in any case
	Since  time.Time // dead-lettered at or after
}

// Match reports whether l is selected.
func (f Filter) Match(l Letter) bool {
	return (f.User == "" || l.User == f.User) &&
		(f.Reason == "" || strings.Contains(strings.ToLower(l.Reason), strings.ToLower(f.Reason))) &&
		(f.Since.IsZero() || !l.Time.Before(f.Since))
}

// ErrNotReplayable is wrapped by Replayable's answers.
var ErrNotReplayable = errors.New("cannot be replayed")

// Replayable returns nil when replaying a letter may succeed, and why not
// otherwise: a cut payload, no intent subject to publish on, or an intent
// that is malformed in itself (bad JSON, unknown op, bad id, op not
// matching the subject), which no fix outside the payload can mend.
func Replayable(l Letter) error {
	switch {
	case l.Truncated:
		return fmt.Errorf("%w: the payload was cut when it was dead-lettered (%s)", ErrNotReplayable, HeaderTruncated)
	case !strings.HasPrefix(l.Subject, intent.SubjectPrefix):
		return fmt.Errorf("%w: no intent subject in %s (%q)", ErrNotReplayable, publisher.HeaderSubject, l.Subject)
	}
	if _, err := intent.Parse(l.Subject, l.Data); err != nil {
		return fmt.Errorf("%w: the intent itself is invalid (%v)", ErrNotReplayable, err)
	}
	return nil
}

// Box is the dead-letter stream.
type Box struct {
	js     jetstream.JetStream
	stream jetstream.Stream // nil while the stream does not exist

	// afterPublish, when set, runs between a replay's publish and the
	// deletion of its letter (tests interrupt a replay there).
	afterPublish func(Letter) error
}

// Open looks the dead-letter stream up. A missing stream is an empty box.
func Open(ctx context.Context, js jetstream.JetStream) (*Box, error) {
	s, err := js.Stream(ctx, intent.DeadStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return &Box{js: js}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", intent.DeadStream, err)
	}
	return &Box{js: js, stream: s}, nil
}

// List returns the dead letters f selects, oldest first. It reads the
// stream message by message (a direct get of the next letter at or after a
// sequence), so it needs no consumer and sees letters removed meanwhile as
// gone.
func (b *Box) List(ctx context.Context, f Filter) ([]Letter, error) {
	var out []Letter
	if b.stream == nil {
		return out, nil
	}
	for seq := uint64(1); ; {
		raw, err := b.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(intent.DeadSubjects))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", intent.DeadStream, seq, err)
		}
		if l := parse(raw); f.Match(l) {
			out = append(out, l)
		}
		seq = raw.Sequence + 1
	}
}

// parse reads a stored dead letter.
func parse(raw *jetstream.RawStreamMsg) Letter {
	l := Letter{
		Seq: raw.Sequence, Time: raw.Time.UTC(), DeadSubject: raw.Subject, Data: raw.Data,
		Subject: raw.Header.Get(publisher.HeaderSubject),
		Reason:  raw.Header.Get(publisher.HeaderReason),
	}
	l.Deliveries, _ = strconv.Atoi(raw.Header.Get(publisher.HeaderDeliveries))
	l.AskedAt, _ = time.Parse(time.RFC3339Nano, raw.Header.Get(publisher.HeaderAskedAt))
	switch strings.ToLower(strings.TrimSpace(raw.Header.Get(HeaderTruncated))) {
	case "", "false", "0", "no":
	default:
		l.Truncated = true
	}
	// Field by field, so one field of the wrong type hides only itself.
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw.Data, &fields) == nil {
		for name, dst := range map[string]*string{"op": &l.Op, "user": &l.User, "mongoId": &l.MongoID, "did": &l.DID} {
			_ = json.Unmarshal(fields[name], dst)
		}
	}
	return l
}

// replayID is the message id of a letter's replay: JetStream drops a
// second replay of the same letter within the intents stream's duplicate
// window, so replaying again after an interruption does not double it.
func replayID(l Letter) string {
	return fmt.Sprintf("moodsync-replay:%s:%d:%d", intent.DeadStream, l.Seq, l.Time.UnixNano())
}

// Replay publishes the letter's payload again on its intent subject, waits
// until JetStream has stored it in the intents stream, and only then
// deletes the letter. A letter that is not Replayable is refused.
func (b *Box) Replay(ctx context.Context, l Letter) error {
	if err := Replayable(l); err != nil {
		return err
	}
	msg := nats.NewMsg(l.Subject)
	msg.Data = l.Data
	msg.Header.Set(jetstream.MsgIDHeader, replayID(l))
	if !l.AskedAt.IsZero() {
		msg.Header.Set(publisher.HeaderAskedAt, l.AskedAt.UTC().Format(time.RFC3339Nano))
	}
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(intent.Stream)); err != nil {
		return fmt.Errorf("replay dead letter %d on %s: %w", l.Seq, l.Subject, err)
	}
	if b.afterPublish != nil {
		if err := b.afterPublish(l); err != nil {
			return err
		}
	}
	return b.remove(ctx, l, "replayed ")
}

// Drop deletes a dead letter for good.
func (b *Box) Drop(ctx context.Context, l Letter) error {
	return b.remove(ctx, l, "")
}

// remove deletes a letter; one that is already gone (another operator
// dropped or replayed it) is not an error.
func (b *Box) remove(ctx context.Context, l Letter, what string) error {
	if b.stream == nil {
		return fmt.Errorf("no stream %s", intent.DeadStream)
	}
	err := b.stream.DeleteMsg(ctx, l.Seq)
	if err == nil {
		return nil
	}
	if _, gerr := b.stream.GetMsg(ctx, l.Seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("delete %sdead letter %d: %w", what, l.Seq, err)
}

// Queues reads what waits for one user in JetStream (a status.Queues):
// their intents by direct get, their dead letters.
type Queues struct{ JS jetstream.JetStream }

// Pending reads the user's intents not acknowledged yet.
func (q Queues) Pending(ctx context.Context, user string, scan, keep int) (status.Pending, error) {
	return publisher.PendingOf(ctx, q.JS, user, scan, keep)
}

// DeadLetters reads the user's dead letters.
func (q Queues) DeadLetters(ctx context.Context, user string) ([]Letter, error) {
	box, err := Open(ctx, q.JS)
	if err != nil {
		return nil, err
	}
	return box.List(ctx, Filter{User: user})
}
