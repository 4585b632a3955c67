package pdsclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestRateLimitedAccountIsNotCalledBeforeTheReset: a 429 with
// ratelimit-reset makes the account's calls fail at once, as transport
// errors that say until when, without reaching the PDS; other accounts
// are unaffected; after the reset the account is called again.
func TestRateLimitedAccountIsNotCalledBeforeTheReset(t *testing.T) {
	var calls, limitedCalls atomic.Int64
	reset := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") == "Bearer a-limited" && time.Now().Before(reset) {
			limitedCalls.Add(1)
			w.Header().Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	store := &tokenSessions{host: srv.URL}
	c := New(srv.URL, store, nil)
	var counted atomic.Int64
	c.OnRateLimited = func(string) { counted.Add(1) }
	ctx := context.Background()
	v := model.RecordValue{}

	err := c.CreateRecord(ctx, "did:plc:limited", "3kaaaaaaaaa01", v)
	until, ok := model.RetryNotBefore(err)
	if !model.IsTransport(err) || !ok || !until.Equal(reset) {
		t.Fatalf("err = %v (until %v), want a transport error saying %v", err, until, reset)
	}
	for range 5 {
		err := c.CreateRecord(ctx, "did:plc:limited", "3kaaaaaaaaa01", v)
		if u, ok := model.RetryNotBefore(err); !ok || !u.Equal(reset) {
			t.Fatalf("call before the reset: err = %v", err)
		}
	}
	if n := limitedCalls.Load(); n != 1 {
		t.Fatalf("the PDS saw %d calls of the rate-limited account before its reset, want 1", n)
	}
	if counted.Load() != 1 {
		t.Fatalf("OnRateLimited called %d times, want 1", counted.Load())
	}
	if err := c.CreateRecord(ctx, "did:plc:other", "3kaaaaaaaaa01", v); err != nil {
		t.Fatalf("another account: %v", err)
	}
	for time.Now().Before(reset) {
		time.Sleep(50 * time.Millisecond) // waiting for the reset is the scenario
	}
	if err := c.CreateRecord(ctx, "did:plc:limited", "3kaaaaaaaaa01", v); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
}

func TestResetOfReadsBothHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		h    http.Header
		want time.Time
	}{
		{http.Header{"Ratelimit-Reset": {"1800000030"}}, now.Add(30 * time.Second)},
		{http.Header{"Retry-After": {"12"}}, now.Add(12 * time.Second)},
		{http.Header{"Retry-After": {now.Add(time.Minute).UTC().Format(http.TimeFormat)}}, now.Add(time.Minute)},
		{http.Header{"Ratelimit-Reset": {"1800000030"}, "Retry-After": {"60"}}, now.Add(60 * time.Second)},
		{http.Header{"Ratelimit-Reset": {"soon"}}, time.Time{}},
	} {
		got, _ := resetOf(tc.h, now)
		if !got.Equal(tc.want) {
			t.Errorf("%v: got %v, want %v", tc.h, got, tc.want)
		}
	}
}

// tokenSessions has a session for every DID whose access token names it.
type tokenSessions struct{ host string }

func (s *tokenSessions) Password(context.Context, string) (string, error) { return "pw", nil }
func (s *tokenSessions) LoadSession(_ context.Context, did string) (*Session, error) {
	return &Session{DID: did, Host: s.host, AccessToken: "a-" + did[len("did:plc:"):], RefreshToken: "r"}, nil
}
func (s *tokenSessions) SaveSession(context.Context, Session) error  { return nil }
func (s *tokenSessions) DeleteSession(context.Context, string) error { return nil }
