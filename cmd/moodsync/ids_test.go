package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// TestUpperCaseMoodOnTheCommandLine: `publish --mood` with the id in upper
// case publishes exactly the intent the lower-case id does.
func TestUpperCaseMoodOnTheCommandLine(t *testing.T) {
	clearEnv(t)
	natsURL := devenv.NewNATS(t)
	t.Setenv("MOODSYNC_NATS_URL", natsURL)
	const id = "507f1f77bcf86cd799439011"
	for _, mood := range []string{strings.ToUpper(id), id} {
		var out bytes.Buffer
		if code := Main(context.Background(), []string{"publish", "delete", "--user", "auth0|1", "--mood", mood}, &out, &out); code != 0 {
			t.Fatalf("publish --mood %s: exit %d:\n%s", mood, code, out.String())
		}
	}
	_, js := devenv.ConnectJetStream(t, natsURL)
	s, err := js.Stream(context.Background(), intent.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, m.Subject+" "+string(m.Data))
	}
	want := "moods.intent.delete " + `{"op":"delete","mongoId":"` + id + `","user":"auth0|1"}`
	if payloads[0] != want || payloads[1] != want {
		t.Fatalf("published %q, want both %q", payloads, want)
	}
}
