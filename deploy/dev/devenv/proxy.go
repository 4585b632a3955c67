package devenv

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Proxy sits between moodsync and the PDS in tests: it counts requests by
// XRPC method (to prove sessions are reused) and can refuse connections for
// a while (a PDS outage, seen from moodsync exactly as one).
type Proxy struct {
	URL string

	addr   string
	target *url.URL
	mu     sync.Mutex
	srv    *http.Server
	counts map[string]int
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
