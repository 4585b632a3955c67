package devenv

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamMsgs returns every message a JetStream stream holds on subjects,
// oldest first, read by direct get (no consumer, so nothing is acknowledged
// or taken from a work queue).
func StreamMsgs(t testing.TB, js jetstream.JetStream, stream, subjects string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subjects))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
		seq = raw.Sequence + 1
	}
}
