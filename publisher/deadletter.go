package publisher

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Dead-letter headers.
const (
	HeaderReason     = "Moodsync-Reason"
	HeaderSubject    = "Moodsync-Subject"
	HeaderDeliveries = "Moodsync-Deliveries"
	// HeaderTruncated, when present, is the size in bytes of an intent
	// whose payload was cut to fit the dead letter.
	HeaderTruncated = "Moodsync-Truncated"
	// HeaderAskedAt is when an intent was first published (RFC 3339): a
	// dead letter keeps it, and its replay carries it, so a purge replayed
	// later still erases only what existed when it was asked.
	HeaderAskedAt = "Moodsync-Asked-At"
)

// askedAt is when the intent was first asked for: its HeaderAskedAt (a
// replayed dead letter), else when JetStream stored it, else now.
func askedAt(msg jetstream.Msg) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, msg.Headers().Get(HeaderAskedAt)); err == nil {
		return t
	}
	if md, err := msg.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Now()
}

// MaxReasonLen bounds the reason header, in bytes.
const MaxReasonLen = 1024

// deadLetter publishes the intent to the dead-letter stream with the reason
// in a header. The payload is cut when it must be (over intent.MaxSize, or
// too big for the server with the headers added), so a dead letter can
// always be stored and a bad intent never loops. Its message id is the
// intent's place in the stream, so JetStream keeps one dead letter however
// often the intent is delivered.
func (p *Publisher) deadLetter(ctx context.Context, it item, reason string) error {
	kind := it.intent.Op
	if !intent.Known(kind) {
		kind = "invalid"
	}
	msg := nats.NewMsg(intent.DeadPrefix + kind)
	msg.Header.Set(HeaderReason, reason)
	msg.Header.Set(HeaderSubject, headerText(it.msg.Subject(), MaxReasonLen))
	msg.Header.Set(HeaderAskedAt, askedAt(it.msg).UTC().Format(time.RFC3339Nano))
	if md, err := it.msg.Metadata(); err == nil {
		msg.Header.Set(HeaderDeliveries, strconv.FormatUint(md.NumDelivered, 10))
		msg.Header.Set(jetstream.MsgIDHeader, "moodsync-dead:"+md.Stream+":"+strconv.FormatUint(md.Sequence.Stream, 10))
	}
	data := it.msg.Data()
	if limit := p.payloadRoom(msg.Header); len(data) > limit {
		msg.Header.Set(HeaderTruncated, strconv.Itoa(len(data)))
		data = data[:limit]
	}
	msg.Data = data
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := p.js.PublishMsg(pctx, msg)
	return err
}

// payloadRoom is how much of an intent a dead letter with header h may
// carry: at most intent.MaxSize, and what the server's max_payload leaves
// beside the headers (and a truncation header to come).
func (p *Publisher) payloadRoom(h nats.Header) int {
	room := intent.MaxSize
	nc := p.js.Conn()
	if nc == nil || nc.MaxPayload() <= 0 {
		return room
	}
	used := len("NATS/1.0\r\n\r\n") + len(HeaderTruncated) + len(": 2147483647\r\n")
	for k, vs := range h {
		for _, v := range vs {
			used += len(k) + len(": \r\n") + len(v)
		}
	}
	return max(0, min(room, int(nc.MaxPayload())-used))
}

// headerText makes s fit for a header value: valid UTF-8, no control
// characters (a CR or LF would end the header), at most n bytes, cut at a
// rune boundary and marked with "…" when it was longer.
func headerText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return model.Truncate(s, n)
}
