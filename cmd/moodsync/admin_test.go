package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

const adminTestToken = "0123456789abcdef0123456789abcdef"

// untouchableStore and untouchablePDS panic at any call (their methods are
// those of nil interfaces): a status read through them shows as a call.
type untouchableStore struct{ status.Store }
type untouchablePDS struct{ reconcile.PDS }

// counted counts the requests that reach h, and those of them that made a
// call to the store or the PDS (a panic of the untouchables).
type counted struct {
	h               http.Handler
	calls, touching atomic.Int64
}

func (c *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.calls.Add(1)
	defer func() {
		if recover() != nil {
			c.touching.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}()
	c.h.ServeHTTP(w, r)
}

// untouchableStatus is the status route over a store and a PDS that must
// not be called.
func untouchableStatus() *counted {
	r := status.NewReader(untouchableStore{}, untouchablePDS{}, 10)
	return &counted{h: statusHandler(r, slog.New(slog.DiscardHandler))}
}

// adminServer is the HTTP port's handler with the admin routes of token
// in front of users, and its metrics.
func adminServer(t *testing.T, token string, users http.Handler) (http.Handler, *metrics, *adminGate) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	admin := adminRoutes(token, users, m.adminDenied, slog.New(slog.DiscardHandler))
	gate, _ := admin.(*adminGate)
	if (token == "") != (admin == nil) {
		t.Fatalf("admin routes %v with token %q", admin, token)
	}
	return httpHandler(reg, nil, admin), m, gate
}

// request sends a request from client (host:port) with an Authorization
// header (none when empty).
func request(h http.Handler, client, method, path, authorization string) (int, string, http.Header) {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = client
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b), w.Result().Header
}

// TestAdminRoutesAreOffWithoutAToken: with no admin token the admin route
// is not served (404, whatever the request carries) and the status is not
// read; metrics and probes are served as before.
func TestAdminRoutesAreOffWithoutAToken(t *testing.T) {
	users := untouchableStatus()
	h, m, _ := adminServer(t, "", users)
	for i, auth := range []string{"", "Bearer " + adminTestToken, "Bearer "} {
		for _, path := range []string{"/v1/users/auth0%7C123", "/v1/users/", "/v1/"} {
			if code, body, _ := request(h, "10.0.0."+strconv.Itoa(i)+":4000", "GET", path, auth); code != http.StatusNotFound {
				t.Errorf("GET %s (%q): %d %s, want 404", path, auth, code, body)
			}
		}
	}
	if n := users.calls.Load(); n != 0 {
		t.Errorf("the status route was called %d times", n)
	}
	if code, _, _ := request(h, "10.0.0.1:4000", "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	code, body, _ := request(h, "10.0.0.1:4000", "GET", "/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, `moodsync_http_admin_denied_total{reason="unauthorized"} 0`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if n := testutil.ToFloat64(m.adminDenied.WithLabelValues(deniedUnauthorized)) + testutil.ToFloat64(m.adminDenied.WithLabelValues(deniedRateLimited)); n != 0 {
		t.Errorf("%v refusals counted: the routes are off, nothing is refused", n)
	}
}

// TestAdminRoutesNeedTheToken: a request without the token, or with
// another, is answered 401 with no detail and counted, and the status is
// not read (no Mongo, no PDS call); the token lets it through.
func TestAdminRoutesNeedTheToken(t *testing.T) {
	users := untouchableStatus()
	h, m, _ := adminServer(t, adminTestToken, users)
	for i, auth := range []string{
		"",
		"Bearer",
		"Bearer ",
		"Bearer wrong-token-0123456789",
		"Bearer " + adminTestToken[:len(adminTestToken)-1],
		"Bearer " + adminTestToken + "0",
		"Bearer " + strings.ToUpper(adminTestToken),
		"Basic " + adminTestToken,
		adminTestToken,
		"Token " + adminTestToken,
	} {
		for _, path := range []string{"/v1/users/auth0%7C123", "/v1/nothing-here"} {
			code, body, hdr := request(h, "10.0.1."+strconv.Itoa(i)+":4000", "GET", path, auth)
			if code != http.StatusUnauthorized || body != "unauthorized\n" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s (%q): %d %q %v, want 401 unauthorized", path, auth, code, body, hdr)
			}
		}
	}
	if n := users.calls.Load(); n != 0 {
		t.Fatalf("the status route was called %d times without the token", n)
	}
	if n := testutil.ToFloat64(m.adminDenied.WithLabelValues(deniedUnauthorized)); n != 20 {
		t.Errorf("%v refusals counted, want 20", n)
	}

	// The right token, scheme in any case: the status is read (here from
	// the untouchables: a call).
	for i, auth := range []string{"Bearer " + adminTestToken, "bearer " + adminTestToken, "BEARER  " + adminTestToken} {
		request(h, "10.0.2."+strconv.Itoa(i)+":4000", "GET", "/v1/users/auth0%7C123", auth)
	}
	if n, touching := users.calls.Load(), users.touching.Load(); n != 3 || touching != 3 {
		t.Errorf("with the token: %d requests reached the status route, %d read it; want 3", n, touching)
	}

	// With the token, the route answers as the status handler does.
	ok := &counted{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"user":"`+r.PathValue("sub")+`"}`)
	})}
	h, _, _ = adminServer(t, adminTestToken, ok)
	if code, body, _ := request(h, "10.0.3.1:4000", "GET", "/v1/users/auth0%7C123", "Bearer "+adminTestToken); code != http.StatusOK || body != `{"user":"auth0|123"}` {
		t.Errorf("with the token: %d %s", code, body)
	}
	if code, _, _ := request(h, "10.0.3.1:4000", "POST", "/v1/users/auth0%7C123", "Bearer "+adminTestToken); code != http.StatusMethodNotAllowed {
		t.Errorf("POST with the token: %d", code)
	}
	if n := ok.calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// TestAdminFailuresAreLimitedPerClient: a client that failed
// adminFailBurst times is answered 429 — with the right token too, and
// without its token being looked at — until it may fail again
// (adminFailEvery); other clients are not held up. Concurrent requests
// fail no more than the allowance.
func TestAdminFailuresAreLimitedPerClient(t *testing.T) {
	users := untouchableStatus()
	h, m, gate := adminServer(t, adminTestToken, users)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	gate.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	const path = "/v1/users/auth0%7C123"

	// Concurrently: exactly adminFailBurst failures get a 401.
	codes := make(chan int, 3*adminFailBurst)
	var wg sync.WaitGroup
	for range 3 * adminFailBurst {
		wg.Go(func() {
			code, _, _ := request(h, "192.0.2.7:5000", "GET", path, "Bearer wrong-token-0123456789")
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[http.StatusUnauthorized] != adminFailBurst || n[http.StatusTooManyRequests] != 2*adminFailBurst {
		t.Errorf("answers %v, want %d 401 and %d 429", n, adminFailBurst, 2*adminFailBurst)
	}
	// Held: the right token too, from another port of the same address.
	code, body, hdr := request(h, "192.0.2.7:5001", "GET", path, "Bearer "+adminTestToken)
	if code != http.StatusTooManyRequests || body != "too many requests\n" || hdr.Get("Retry-After") == "" {
		t.Errorf("a held client with the token: %d %q %v", code, body, hdr)
	}
	if got := testutil.ToFloat64(m.adminDenied.WithLabelValues(deniedRateLimited)); got != 2*adminFailBurst+1 {
		t.Errorf("%v rate-limited refusals counted, want %d", got, 2*adminFailBurst+1)
	}
	if users.calls.Load() != 0 {
		t.Fatal("the status route was called")
	}
	// Another client is not held up.
	request(h, "192.0.2.8:5000", "GET", path, "Bearer "+adminTestToken)
	if users.calls.Load() != 1 {
		t.Errorf("another client's request did not pass")
	}
	// An IPv6 client is held by its /64.
	for range adminFailBurst {
		request(h, "[2001:db8:1:2::1]:5000", "GET", path, "")
	}
	if code, _, _ := request(h, "[2001:db8:1:2:ffff::9]:5000", "GET", path, ""); code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64: %d, want 429", code)
	}
	if code, _, _ := request(h, "[2001:db8:1:3::1]:5000", "GET", path, ""); code != http.StatusUnauthorized {
		t.Errorf("another /64: %d, want 401", code)
	}

	// One failure more is allowed after adminFailEvery.
	advance(adminFailEvery)
	if code, _, _ := request(h, "192.0.2.7:5000", "GET", path, "Bearer "+adminTestToken); code == http.StatusTooManyRequests {
		t.Errorf("after %v the client is still held", adminFailEvery)
	}
	if code, _, _ := request(h, "192.0.2.7:5000", "GET", path, ""); code != http.StatusUnauthorized {
		t.Errorf("a failure after %v: %d, want 401", adminFailEvery, code)
	}
	if code, _, _ := request(h, "192.0.2.7:5000", "GET", path, ""); code != http.StatusTooManyRequests {
		t.Errorf("the failure after it: %d, want 429", code)
	}
}

// TestAdminGateRemembersBoundedClients: failures of ever new addresses
// leave at most adminClients entries (the design forbids memory that grows
// with distinct inputs), and clients that never failed leave none.
func TestAdminGateRemembersBoundedClients(t *testing.T) {
	h, _, gate := adminServer(t, adminTestToken, http.NotFoundHandler())
	for i := range 3 * adminClients {
		request(h, "198.51."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256)+":1", "GET", "/v1/users/x", "")
	}
	if n := gate.failures.Len(); n != adminClients {
		t.Errorf("%d clients remembered, want %d", n, adminClients)
	}
	h, _, gate = adminServer(t, adminTestToken, http.NotFoundHandler())
	for i := range 100 {
		request(h, "203.0.113."+strconv.Itoa(i)+":1", "GET", "/v1/users/x", "Bearer "+adminTestToken)
	}
	if n := gate.failures.Len(); n != 0 {
		t.Errorf("%d clients remembered without a failure", n)
	}
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:4000":             "192.0.2.1",
		"[::ffff:192.0.2.1]:4000":    "192.0.2.1",
		"[2001:db8::1]:4000":         "2001:db8::/64",
		"[2001:db8::abcd:1%eth0]:80": "2001:db8::/64",
		"[::1]:4000":                 "::/64",
		"pipe":                       "pipe",
	} {
		if got := clientKey(addr); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}
}
