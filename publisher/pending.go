package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

// Pending and PendingIntent are a user's waiting intents as a status
// shows them (the view reconcile/status owns).
type (
	Pending       = status.Pending
	PendingIntent = status.PendingIntent
)

// Unfinished is how many intents the publisher has yet to finish: waiting
// for delivery, and delivered but not yet acknowledged.
func Unfinished(ctx context.Context, js jetstream.JetStream) (int, error) {
	cons, err := js.Consumer(ctx, intent.Stream, Durable)
	if err != nil {
		return 0, err
	}
	info := cons.CachedInfo() // just fetched by js.Consumer
	return int(info.NumPending) + info.NumAckPending, nil
}

// PendingOf reads the intents stream for user's intents, oldest first, by
// direct get: no consumer is made (a work-queue stream allows only the
// publisher's) and nothing is taken from the queue. It reads at most scan
// intents and keeps at most keep of the user's.
func PendingOf(ctx context.Context, js jetstream.JetStream, user string, scan, keep int) (Pending, error) {
	out := Pending{Intents: []PendingIntent{}, Complete: true}
	s, err := js.Stream(ctx, intent.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("look up stream %s: %w", intent.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", intent.Stream, err)
	}
	out.Waiting = info.State.Msgs
	last := info.State.LastSeq
	for seq := info.State.FirstSeq; out.Waiting > 0 && seq <= last; {
		if out.Scanned == scan {
			out.Complete = false
			break
		}
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(intent.Subjects))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("read %s at %d: %w", intent.Stream, seq, err)
		}
		seq = raw.Sequence + 1
		if raw.Sequence > last {
			break // published after we looked: not part of this snapshot
		}
		out.Scanned++
		if p, ok := payloadOf(raw.Data); ok && p.User == user {
			out.Count++
			if len(out.Intents) < keep {
				out.Intents = append(out.Intents, PendingIntent{
					Seq: raw.Sequence, Time: raw.Time.UTC(), Subject: raw.Subject,
					Op: p.Op, MongoID: p.MongoID, Cause: p.Cause,
				})
			}
		}
	}
	return out, nil
}

// payloadOf reads an intent's fields leniently: a field of the wrong type
// hides only itself (the publisher will dead-letter the intent; until then
// it is the user's all the same).
func payloadOf(data []byte) (intent.Intent, bool) {
	var in intent.Intent
	if len(data) > intent.MaxSize {
		return in, false
	}
	err := json.Unmarshal(data, &in)
	var wrongType *json.UnmarshalTypeError
	return in, err == nil || errors.As(err, &wrongType)
}
