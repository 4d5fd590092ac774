// Package appserver is the "app" of the end-to-end tests of app checks: an
// HTTP (or, with a CA, HTTPS) server listening inside a network namespace
// the test created, next to a `bridge respond` responder that announces
// its port, whose health the test flips at any moment: serving (200),
// unavailable (503), hung (accepts and reads the request, never answers)
// or refused (no listener: the kernel answers a connection attempt with a
// reset). It runs in the test's own process: the listener's socket is
// created inside the namespace (netns.Listen), and so is every connection
// it accepts, whichever thread serves them.
package appserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Mode is what the app does with a request.
type Mode int

// The modes.
const (
	// Serving answers every request 200 "ok".
	Serving Mode = iota
	// Unavailable answers every request 503.
	Unavailable
	// Hung accepts the connection and reads the request, and never
	// answers: the client's timeout ends it.
	Hung
	// Refused closes the listener and every open connection: a new
	// connection is refused.
	Refused
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Serving:
		return "serving"
	case Unavailable:
		return "unavailable"
	case Hung:
		return "hung"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configure Start.
type Options struct {
	// NS is the network namespace to listen in (a netns.Host's NS); empty:
	// the test's own namespace (loopback only, for unit tests).
	NS string
	// Addr is the address to listen on, "10.213.31.31:8000"; port 0 picks
	// a free port (read it back with Server.Addr). "0.0.0.0:8000" serves
	// every address of the namespace, with a local route a whole prefix.
	Addr string
	// CA, when set, makes the server speak HTTPS with a certificate of CA
	// for Addr's IP (an IP SAN) and TLSNames.
	CA       *CA
	TLSNames []string
}

// Server is a running app. Its methods may be called from any goroutine,
// except that Set and Start report a failure to listen with t.Fatalf (so
// call them from the test's goroutine).
type Server struct {
	t    testing.TB
	opts Options
	addr netip.AddrPort
	tls  *tls.Config
	stop chan struct{} // closed by Close: releases hung requests

	mu      sync.Mutex
	mode    Mode
	cycle   []Mode // per request, in turn, when set
	next    int
	srv     *http.Server // nil while refused
	byIP    map[netip.Addr]int
	closed  bool
	conns   atomic.Int64
	request atomic.Int64
	tlsFail atomic.Int64
}

// Start listens, serving, and registers Close with t.Cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		t.Fatalf("appserver: address %q: %v", o.Addr, err)
	}
	s := &Server{t: t, opts: o, addr: ap, stop: make(chan struct{}), byIP: map[netip.Addr]int{}}
	if o.CA != nil {
		cert := o.CA.Issue(t, []netip.Addr{ap.Addr()}, o.TLSNames...)
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.mu.Lock()
	err = s.listen()
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("appserver: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the address the server listens on (its real port when Options
// asked for port 0).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Port is Addr's port.
func (s *Server) Port() int { return int(s.Addr().Port()) }

// Set switches the app to m for every request from now on (and ends a
// Cycle). Refused closes the listener and the open connections; any other
// mode listens again if it was refused.
func (s *Server) Set(m Mode) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.mode, s.cycle, s.next = m, nil, 0
	if m == Refused {
		s.shut()
		return
	}
	if s.srv == nil {
		if err := s.listen(); err != nil {
			s.t.Fatalf("appserver: %v", err)
		}
	}
}

// Cycle makes request n (counted from now) get modes[n % len(modes)]: for
// an app that flaps faster than a check's hysteresis. Refused is not a
// mode of a request.
func (s *Server) Cycle(modes ...Mode) {
	s.t.Helper()
	for _, m := range modes {
		if m == Refused {
			s.t.Fatalf("appserver: Cycle(%v): refused is not a mode of a request", modes)
		}
	}
	if len(modes) == 0 {
		s.t.Fatalf("appserver: Cycle with no mode")
	}
	s.Set(modes[0])
	s.mu.Lock()
	s.cycle = append([]Mode(nil), modes...)
	s.mu.Unlock()
}

// Mode is the mode set last (the first of a Cycle).
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Requests is the number of HTTP requests received so far, whatever they
// were answered.
func (s *Server) Requests() int { return int(s.request.Load()) }

// RequestsFrom is Requests from the client address ip.
func (s *Server) RequestsFrom(ip netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byIP[ip]
}

// Conns is the number of connections accepted so far (what a tcp check
// makes, which sends no request).
func (s *Server) Conns() int { return int(s.conns.Load()) }

// HandshakeFailures is the number of TLS handshakes that failed so far (a
// client that does not trust the CA, or asked for another name).
func (s *Server) HandshakeFailures() int { return int(s.tlsFail.Load()) }

// Close stops the server for good and releases hung requests.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.stop)
	s.shut()
}

// listen starts an http.Server on a new listener; s.mu is held.
func (s *Server) listen() error {
	var (
		ln  net.Listener
		err error
	)
	if s.opts.NS == "" {
		ln, err = (&net.ListenConfig{}).Listen(context.Background(), "tcp", s.addr.String())
	} else {
		ln, err = netns.Listen(context.Background(), s.opts.NS, "tcp", s.addr.String())
	}
	if err != nil {
		return fmt.Errorf("listen on %s in %q: %w", s.addr, s.opts.NS, err)
	}
	if s.addr.Port() == 0 {
		s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
		s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	}
	ln = &countingListener{Listener: ln, n: &s.conns}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		// A check without the CA fails its handshake: counted, not
		// logged.
		ErrorLog: log.New(handshakeCounter{&s.tlsFail}, "", 0),
	}
	s.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Logf("appserver %s: serve: %v", s.addr, err)
		}
	}()
	return nil
}

// shut closes the listener and every connection; s.mu is held.
func (s *Server) shut() {
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.request.Add(1)
	m := s.take(r)
	switch m {
	case Serving:
		_, _ = io.WriteString(w, "ok\n")
	case Unavailable:
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	default: // Hung
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		// Drop the connection without an answer (the server recovers
		// this panic and logs nothing).
		panic(http.ErrAbortHandler)
	}
}

// take counts r and returns the mode it gets.
func (s *Server) take(r *http.Request) Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		s.byIP[ap.Addr().Unmap()]++
	}
	if len(s.cycle) == 0 {
		return s.mode
	}
	m := s.cycle[s.next%len(s.cycle)]
	s.next++
	return m
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// handshakeCounter is the http.Server's error log: it counts the TLS
// handshake errors and drops every line.
type handshakeCounter struct{ n *atomic.Int64 }

func (h handshakeCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		h.n.Add(1)
	}
	return len(p), nil
}
