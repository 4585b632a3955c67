package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// The admin routes' limits on failed attempts, per client address: a
// client may fail adminFailBurst times at once, then once every
// adminFailEvery; beyond that its admin requests are answered 429, right
// token or not, until it may fail again. At most adminClients addresses
// that failed are remembered, the one seen least recently dropped first
// (an IPv6 client by its /64).
const (
	adminFailBurst = 10
	adminFailEvery = 6 * time.Second
	adminClients   = 1024
)

// The reasons of moodsync_http_admin_denied_total.
const (
	deniedUnauthorized = "unauthorized"
	deniedRateLimited  = "rate_limited"
)

// adminGate lets a request through to the admin routes only with the
// admin token as a bearer token (Authorization: Bearer …). A refusal
// answers 401 (or 429) with no detail, before anything else is done for
// the request, and is counted.
type adminGate struct {
	sum    [sha256.Size]byte // of the token: hashes of equal length are compared
	next   http.Handler
	denied *prometheus.CounterVec
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	failures *simplelru.LRU[string, *rate.Limiter]
}

// adminRoutes are the admin routes behind the gate of token, or nil when
// there is no token: then they are not served at all (404).
func adminRoutes(token string, users http.Handler, denied *prometheus.CounterVec, log *slog.Logger) http.Handler {
	if token == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/users/{sub}", users)
	failures, err := simplelru.NewLRU[string, *rate.Limiter](adminClients, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &adminGate{sum: sha256.Sum256([]byte(token)), next: mux, denied: denied, log: log, now: time.Now, failures: failures}
}

func (g *adminGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client := clientKey(r.RemoteAddr)
	switch g.check(client, r.Header.Get("Authorization")) {
	case deniedRateLimited:
		g.denied.WithLabelValues(deniedRateLimited).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(adminFailEvery/time.Second)))
		http.Error(w, "too many requests", http.StatusTooManyRequests)
	case deniedUnauthorized:
		g.denied.WithLabelValues(deniedUnauthorized).Inc()
		g.log.Warn("admin request refused: no valid token", "client", client)
		w.Header().Set("WWW-Authenticate", `Bearer realm="moodsync"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	default:
		g.next.ServeHTTP(w, r)
	}
}

// check says why the request of client with this Authorization header is
// refused, or "" when it may pass. A client that may fail no more is
// refused before its token is looked at; a failure is taken from its
// allowance. The check and the count are one step, so that concurrent
// requests of a client cannot fail more than its allowance.
func (g *adminGate) check(client, authorization string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	lim, seen := g.failures.Get(client)
	if seen && lim.TokensAt(now) < 1 {
		return deniedRateLimited
	}
	if g.authorized(authorization) {
		return ""
	}
	if !seen {
		lim = rate.NewLimiter(rate.Every(adminFailEvery), adminFailBurst)
		g.failures.Add(client, lim)
	}
	lim.AllowN(now, 1)
	return deniedUnauthorized
}

// authorized compares the bearer token in constant time: the hashes of
// the two, so that not even the token's length shows in the time taken.
func (g *adminGate) authorized(authorization string) bool {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], g.sum[:]) == 1
}

// clientKey is the address whose failures are counted together: the
// client's IP address, an IPv6 one by its /64 (one host holds a whole
// /64).
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.String()
}
