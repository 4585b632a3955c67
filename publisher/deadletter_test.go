package publisher

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/reconciletest"
)

// DeadLetters returns every message of the dead-letter stream, oldest
// first (also for the tests of package publisher_test).
func DeadLetters(t testing.TB, js jetstream.JetStream) []*nats.Msg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, intent.DeadStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Data: raw.Data, Header: raw.Header})
	}
	return out
}

// inputRig is a publisher on a real JetStream, its engine on the in-memory
// Mongo and PDS: bad input never reaches either, and good input shows in
// them.
type inputRig struct {
	t     *testing.T
	js    jetstream.JetStream
	pub   *Publisher
	store *reconciletest.Store
	pds   *reconciletest.PDS
	acct  model.Account
}

func newInputRig(t *testing.T, natsURL string) *inputRig {
	t.Helper()
	store, pds := reconciletest.NewStore(), reconciletest.NewPDS()
	r := newRigOn(t, natsURL, reconcile.NewEngine(store, pds, nil))
	r.store, r.pds, r.acct = store, pds, model.Account{User: "auth0|alice", DID: "did:plc:alice"}
	r.store.PutAccount(r.acct)
	return r
}

// newRigOn is a publisher on a real JetStream over engine (the rig's
// store and PDS are left to the caller).
func newRigOn(t *testing.T, natsURL string, engine Engine) *inputRig {
	t.Helper()
	_, js := devenv.ConnectJetStream(t, natsURL)
	r := &inputRig{t: t, js: js}
	r.pub = New(js, engine, Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, nil)
	if err := EnsureStreams(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *inputRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.pub.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Error(err)
		}
	})
}

func (r *inputRig) publishRaw(subject string, data []byte) {
	r.t.Helper()
	if _, err := r.js.Publish(context.Background(), subject, data); err != nil {
		r.t.Fatal(err)
	}
}

// drained waits until every intent is settled (the work queue is empty).
func (r *inputRig) drained() {
	r.t.Helper()
	devenv.Eventually(r.t, 15*time.Second, "intents settled", func() bool {
		s, err := r.js.Stream(context.Background(), intent.Stream)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

// mood stores a live mood of alice without a record and returns its id.
func (r *inputRig) mood() string {
	m := model.Mood{ID: "507f1f77bcf86cd799439011", User: r.acct.User, Text: "sunny",
		When: time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)}
	r.store.PutMood(m)
	return m.ID
}

// checkHeaders fails the test unless every header value of a dead letter is
// one line of valid UTF-8 of at most MaxReasonLen bytes.
func checkHeaders(t *testing.T, m *nats.Msg) {
	t.Helper()
	for k, vs := range m.Header {
		for _, v := range vs {
			if len(v) > MaxReasonLen || strings.ContainsAny(v, "\r\n") || !utf8.ValidString(v) {
				t.Errorf("dead letter %s: header %s is not a bounded line: %.80q (%d bytes)", m.Subject, k, v, len(v))
			}
		}
	}
}

func TestBadInputEndsAsExactlyOneDeadLetterEach(t *testing.T) {
	r := newInputRig(t, devenv.NewNATS(t))
	r.run()
	good := r.mood()
	pad := strings.Repeat("p", 3*intent.MaxSize)
	huge := []byte(`{"op":"create","mongoId":"` + good + `","user":"auth0|alice","pad":"` + pad + `"}`)
	r.publishRaw("moods.intent.create", huge)
	r.publishRaw("moods.intent.delete", []byte(`{"op":"delete","user":"auth0|alice","mongoId":"`+pad[:40000]+`"}`))
	r.publishRaw("moods.intent.reconcile", []byte(`{"op":"reconcile","user":"`+pad[:intent.MaxUserLen+1]+`"}`))
	r.publishRaw("moods.intent.reconcile", []byte(`{"op":"reconcile","user":"auth0|a\r\nMoodsync-Reason: forged"}`))
	// An upper-case id is the same mood, not a bad id.
	r.publishRaw("moods.intent.create", []byte(`{"op":"create","mongoId":"`+strings.ToUpper(good)+`","user":"auth0|alice"}`))
	r.drained()

	dead := DeadLetters(t, r.js)
	if len(dead) != 4 {
		t.Fatalf("%d dead letters, want 4 (one per bad intent)", len(dead))
	}
	for _, m := range dead {
		checkHeaders(t, m)
		if m.Header.Get(HeaderReason) == "" {
			t.Errorf("dead letter %s has no reason", m.Subject)
		}
	}
	first := dead[0]
	if len(first.Data) != intent.MaxSize || first.Header.Get(HeaderTruncated) != strconv.Itoa(len(huge)) {
		t.Errorf("oversized intent: dead letter of %d bytes, %s=%q; want %d bytes, %d",
			len(first.Data), HeaderTruncated, first.Header.Get(HeaderTruncated), intent.MaxSize, len(huge))
	}
	if dead[1].Header.Get(HeaderTruncated) != "" || len(dead[1].Data) < 40000 {
		t.Errorf("an intent under the limit was cut: %d bytes", len(dead[1].Data))
	}
	if got := r.store.Mood(good).Rkey; got == "" {
		t.Error("the intent with the upper-case id was not applied")
	}
}

// TestDeadLetterFitsTheServersMaxPayload: an intent as large as the server
// takes leaves no room for the dead letter's headers; its payload is cut
// rather than the intent redelivered for ever.
func TestDeadLetterFitsTheServersMaxPayload(t *testing.T) {
	opts := &natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, MaxPayload: 16 << 10}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	r := newInputRig(t, srv.ClientURL())
	r.run()
	full := []byte(`{"op":"zap","user":"auth0|alice","pad":"` + strings.Repeat("p", 16<<10) + `"}`)[:16<<10]
	r.publishRaw("moods.intent.zap", full)
	r.drained()

	dead := DeadLetters(t, r.js)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if got := dead[0].Header.Get(HeaderTruncated); got != strconv.Itoa(len(full)) || len(dead[0].Data) >= len(full) {
		t.Errorf("dead letter of %d bytes, %s=%q; want it cut, %d", len(dead[0].Data), HeaderTruncated, got, len(full))
	}
}

// TestOneDeadLetterHoweverOftenTheIntentIsDelivered: an intent whose ack
// was lost comes again; its second dead letter is a duplicate that
// JetStream drops.
func TestOneDeadLetterHoweverOftenTheIntentIsDelivered(t *testing.T) {
	r := newInputRig(t, devenv.NewNATS(t))
	r.publishRaw("moods.intent.create", []byte(`{"op":"create","user":"auth0|alice","mongoId":"nothex"}`))
	ctx := context.Background()
	cons, err := r.js.CreateConsumer(ctx, intent.Stream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 2; delivery++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		in, perr := intent.Parse(msg.Subject(), msg.Data())
		if err := r.pub.deadLetter(ctx, item{msg: msg, intent: in}, perr.Error()); err != nil {
			t.Fatal(err)
		}
		if err := msg.Nak(); err != nil { // as if the ack were lost
			t.Fatal(err)
		}
	}
	if dead := DeadLetters(t, r.js); len(dead) != 1 {
		t.Fatalf("%d dead letters for one intent delivered twice, want 1", len(dead))
	}
}

func TestHeaderText(t *testing.T) {
	cases := map[string]struct {
		in   string
		n    int
		want string
	}{
		"short":        {"bad mongoId", 64, "bad mongoId"},
		"line breaks":  {"a\r\nMoodsync-Forged: 1", 64, "a  Moodsync-Forged: 1"},
		"invalid UTF8": {"a\xffb", 64, "a\uFFFDb"},
		"cut":          {strings.Repeat("x", 100), 10, "xxxxxxx…"},
		"cut in rune":  {"ab" + strings.Repeat("é", 10), 8, "abé…"},
	}
	for name, c := range cases {
		got := headerText(c.in, c.n)
		if got != c.want || len(got) > c.n {
			t.Errorf("%s: headerText(%q, %d) = %q, want %q", name, c.in, c.n, got, c.want)
		}
	}
}
