package devenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Forwarder is a TCP forwarder between moodsync and a server (MongoDB,
// NATS) in tests. Down closes the listener and every connection, so the
// server looks gone to moodsync, exactly as an outage would; Up brings it
// back on the same address.
type Forwarder struct {
	Addr string

	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

// NewForwarder forwards a free loopback port to target (host:port).
func NewForwarder(t testing.TB, target string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{Addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	f.serve(ln)
	t.Cleanup(f.Down)
	return f
}

func (f *Forwarder) serve(ln net.Listener) {
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.pipe(c)
		}
	}()
}

func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) pipe(in net.Conn) {
	out, err := net.Dial("tcp", f.target)
	if err != nil {
		in.Close()
		return
	}
	if !f.track(in) || !f.track(out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	in.Close()
	out.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, in)
	delete(f.conns, out)
	f.mu.Unlock()
}

// Down refuses new connections and cuts the open ones until Up.
func (f *Forwarder) Down() {
	f.mu.Lock()
	ln := f.ln
	f.ln = nil
	conns := f.conns
	f.conns = map[net.Conn]struct{}{}
	f.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}

// Up listens again on the same address.
func (f *Forwarder) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		t.Fatalf("forwarder up: %v", err)
	}
	f.serve(ln)
}
