package devenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Proxy sits between moodsync and the PDS in tests: it counts requests by
// XRPC method (to prove sessions are reused), can refuse connections for a
// while (a PDS outage, seen from moodsync exactly as one), and can answer
// every write into one repo with an error of the test's choosing (one user
// in trouble: FailWrites).
type Proxy struct {
	URL string

	addr   string
	target *url.URL
	mu     sync.Mutex
	srv    *http.Server
	counts map[string]int

	failDID string
	fail    func() (int, http.Header)
	refused int
}

// writeMethods are the XRPC procedures that write into a repo named by
// the "repo" field of their body.
var writeMethods = map[string]bool{
	"/xrpc/com.atproto.repo.applyWrites":  true,
	"/xrpc/com.atproto.repo.createRecord": true,
	"/xrpc/com.atproto.repo.deleteRecord": true,
	"/xrpc/com.atproto.repo.putRecord":    true,
}

// FailWrites answers every write into did's repo with the status and
// headers answer returns (called for each write, so a header such as
// ratelimit-reset can move), and an XRPC error body; writes into other
// repos, and reads, pass. answer nil lets every write through again.
func (p *Proxy) FailWrites(did string, answer func() (status int, header http.Header)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failDID, p.fail = did, answer
}

// Refused is how many writes FailWrites answered.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// refuse answers r itself when it is a write FailWrites covers.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request) bool {
	p.mu.Lock()
	did, answer := p.failDID, p.fail
	p.mu.Unlock()
	if answer == nil || r.Method != http.MethodPost || !writeMethods[r.URL.Path] {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct {
		Repo string `json:"repo"`
	}
	if err != nil || json.Unmarshal(body, &in) != nil || in.Repo != did {
		return false
	}
	status, header := answer()
	p.mu.Lock()
	p.refused++
	p.mu.Unlock()
	for k, vs := range header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	name := "InternalServerError"
	if status == http.StatusTooManyRequests {
		name = "RateLimitExceeded"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": name, "message": http.StatusText(status) + " (test proxy)"})
	return true
}

// NewProxy starts a proxy to target on a free loopback port.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{addr: l.Addr().String(), target: u, counts: map[string]int{}}
	p.URL = "http://" + p.addr
	p.serve(l)
	t.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(l net.Listener) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.URL.Path]++
		p.mu.Unlock()
		if p.refuse(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	})}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// Count returns how many requests reached an XRPC method, e.g.
// "com.atproto.server.createSession".
func (p *Proxy) Count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts["/xrpc/"+method]
}

// Down closes the listener and every open connection: new connections are
// refused until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy up: %v", err)
	}
	p.serve(l)
}
