package publisher

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// TestOneMegabyteIntentIsOneDeadLetterAtItsFirstDelivery: an invalid
// intent as large as NATS takes by default (1 MB, the server's
// max_payload) is refused before it is parsed and ends as exactly one dead
// letter, cut to 64 KiB and saying so, at its first delivery: no
// redelivery loop.
func TestOneMegabyteIntentIsOneDeadLetterAtItsFirstDelivery(t *testing.T) {
	r := newInputRig(t, devenv.NewNATS(t))
	max := int(r.js.Conn().MaxPayload())
	if max < 1<<20 {
		t.Fatalf("server max_payload %d, want the default 1 MB", max)
	}
	data := []byte(`{"op":"create","user":"auth0|alice","mongoId":"` + strings.Repeat("f", max-64) + `"}`)
	r.publishRaw("moods.intent.create", data)
	r.run()
	r.drained()

	dead := DeadLetters(t, r.js)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if got := d.Header.Get(HeaderDeliveries); got != "1" {
		t.Errorf("dead-lettered at delivery %s, want 1", got)
	}
	if got := d.Header.Get(HeaderTruncated); got != strconv.Itoa(len(data)) || len(d.Data) != intent.MaxSize {
		t.Errorf("dead letter of %d bytes, %s=%q; want %d bytes and %d", len(d.Data), HeaderTruncated, got, intent.MaxSize, len(data))
	}
	if reason := d.Header.Get(HeaderReason); !strings.Contains(reason, "the limit is 65536") {
		t.Errorf("reason %q", reason)
	}
	cons, err := r.js.Consumer(context.Background(), intent.Stream, Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("consumer delivered %d, redelivered %d: want one delivery, none again", info.Delivered.Consumer, info.NumRedelivered)
	}
}
