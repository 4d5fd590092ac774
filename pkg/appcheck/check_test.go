package appcheck_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// newChecker returns a Checker of kind with the defaults, edited by edit.
func newChecker(t *testing.T, kind appcheck.Kind, edit func(*appcheck.Options)) *appcheck.Checker {
	t.Helper()
	o := appcheck.DefaultOptions()
	o.Kind = kind
	if edit != nil {
		edit(&o)
	}
	c, err := appcheck.New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return c
}

// addrOf is the address a listener (or test server) listens on.
func addrOf(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func serverAddr(t *testing.T, s *httptest.Server) netip.AddrPort {
	return addrOf(t, s.Listener.Addr())
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := addrOf(t, l.Addr())
	l.Close()
	return a
}

// checkResult checks r's verdict, status, reason and the shape of its
// output, and that it is bounded and one line.
func checkResult(t *testing.T, r appcheck.Result, ok bool, status int, reason, prefix string) {
	t.Helper()
	if r.OK != ok || r.Status != status || r.Reason != reason {
		t.Errorf("result %+v, want OK %v, status %d, reason %q", r, ok, status, reason)
	}
	wantOut := fmt.Sprintf("%s: %s in %d ms", prefix, reason, r.Latency.Round(time.Millisecond).Milliseconds())
	if r.Output != wantOut {
		t.Errorf("Output %q, want %q", r.Output, wantOut)
	}
	if len(r.Reason) > appcheck.MaxReason || strings.ContainsAny(r.Reason+r.Output, "\r\n") {
		t.Errorf("reason %q or output %q: too long or not one line", r.Reason, r.Output)
	}
	if r.At.IsZero() || r.Latency <= 0 {
		t.Errorf("At %v, Latency %v: want both set", r.At, r.Latency)
	}
}

func TestNew(t *testing.T) {
	if _, err := appcheck.New(appcheck.DefaultOptions()); !errors.Is(err, appcheck.ErrDisabled) {
		t.Errorf("New(defaults, app_check none) = %v, want ErrDisabled", err)
	}
	o := appcheck.DefaultOptions()
	o.Kind, o.Rise = appcheck.TCP, 0
	if _, err := appcheck.New(o); err == nil || !strings.Contains(err.Error(), "app_check_rise") {
		t.Errorf("New with rise 0 = %v, want an error naming app_check_rise", err)
	}
	c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Path = "/healthz" })
	if got := c.Options(); got.Kind != appcheck.HTTP || got.Path != "/healthz" {
		t.Errorf("Options() = %+v", got)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
			accepted <- struct{}{}
		}
	}()
	c := newChecker(t, appcheck.TCP, nil)
	r := c.Check(t.Context(), addrOf(t, l.Addr()))
	checkResult(t, r, true, 0, "ok", "TCP connect")
	<-accepted

	r = c.Check(t.Context(), closedPort(t))
	checkResult(t, r, false, 0, "connection refused", "TCP connect")
}

// TestTCPTimeout: a listener whose backlog is full drops further SYNs, so
// a connect hangs until the check's deadline.
func TestTCPTimeout(t *testing.T) {
	addr := fullBacklog(t)
	c := newChecker(t, appcheck.TCP, func(o *appcheck.Options) { o.Timeout = 200 * time.Millisecond })
	r := c.Check(t.Context(), addr)
	checkResult(t, r, false, 0, "timeout after 200ms", "TCP connect")
}

func TestCanceled(t *testing.T) {
	c := newChecker(t, appcheck.TCP, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := c.Check(ctx, closedPort(t))
	checkResult(t, r, false, 0, "canceled", "TCP connect")
}

func TestHTTP(t *testing.T) {
	var hostHeader, userAgent atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		hostHeader.Store(r.Host)
		userAgent.Store(r.UserAgent())
		io.WriteString(w, "fine")
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := serverAddr(t, srv)

	tests := []struct {
		path   string
		status string
		ok     bool
		code   int
		reason string
	}{
		{path: "/ok", ok: true, code: 200, reason: "200 OK"},
		{path: "/sick", ok: false, code: 503, reason: "503 Service Unavailable"},
		{path: "/missing", ok: false, code: 404, reason: "404 Not Found"},
		{path: "/missing", status: "404", ok: true, code: 404, reason: "404 Not Found"},
		{path: "/created", ok: true, code: 299, reason: "299"},
		{path: "/ok", status: "204", ok: false, code: 200, reason: "200 OK"},
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.status, func(t *testing.T) {
			c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) {
				o.Path = tt.path
				if tt.status != "" {
					o.Status, _ = appcheck.ParseStatus(tt.status)
				}
			})
			r := c.Check(t.Context(), addr)
			checkResult(t, r, tt.ok, tt.code, tt.reason, "HTTP GET "+tt.path)
		})
	}
	if got := hostHeader.Load(); got != addr.String() {
		t.Errorf("Host header %q, want %q", got, addr)
	}
	if got := userAgent.Load(); got != appcheck.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, appcheck.UserAgent)
	}

	c := newChecker(t, appcheck.HTTP, nil)
	checkResult(t, c.Check(t.Context(), closedPort(t)), false, 0, "connection refused", "HTTP GET /")
}

func TestHTTPRedirects(t *testing.T) {
	var elsewhereHits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhereHits.Add(1) }))
	defer elsewhere.Close()
	var hits atomic.Int64
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusMovedPermanently) })
	mux.HandleFunc("/moved-absolute", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/ok", http.StatusFound)
	})
	mux.HandleFunc("/moved-to-sick", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/sick", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, elsewhere.URL+"/", http.StatusFound) })
	mux.HandleFunc("/by-name", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+srv.URL[strings.LastIndex(srv.URL, ":")+1:]+"/ok", http.StatusFound)
	})
	mux.HandleFunc("/protocol-relative", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "//"+elsewhere.Listener.Addr().String()+"/")
		w.WriteHeader(http.StatusSeeOther)
	})
	mux.HandleFunc("/to-https", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+"/ok", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/bad-location", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://[::1%zz/")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	addr := serverAddr(t, srv)

	tests := []struct {
		path   string
		ok     bool
		code   int
		reason string
	}{
		{path: "/moved", ok: true, code: 200, reason: "200 OK"},
		{path: "/moved-absolute", ok: true, code: 200, reason: "200 OK"},
		{path: "/moved-to-sick", ok: false, code: 500, reason: "500 Internal Server Error"},
		{path: "/elsewhere", ok: true, code: 302, reason: "302 Found (redirect to another host not followed)"},
		{path: "/by-name", ok: true, code: 302, reason: "302 Found (redirect to another host not followed)"},
		{path: "/protocol-relative", ok: true, code: 303, reason: "303 See Other (redirect to another host not followed)"},
		{path: "/to-https", ok: true, code: 301, reason: "301 Moved Permanently (redirect to another scheme not followed)"},
		{path: "/bad-location", ok: true, code: 302, reason: "302 Found (redirect to a malformed location not followed)"},
		{path: "/loop", ok: false, code: 302, reason: "302 Found (more than 3 redirects)"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Path = tt.path })
			checkResult(t, c.Check(t.Context(), addr), tt.ok, tt.code, tt.reason, "HTTP GET "+tt.path)
		})
	}
	if n := elsewhereHits.Load(); n != 0 {
		t.Errorf("the other host was contacted %d times, want never", n)
	}
	if n := hits.Load(); n != 1+appcheck.MaxRedirects {
		t.Errorf("the redirect loop was requested %d times, want %d (the first and %d redirects)", n, 1+appcheck.MaxRedirects, appcheck.MaxRedirects)
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hung", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/hung-body", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	for _, tt := range []struct{ path, reason string }{
		{"/hung", "timeout after 100ms"},
		{"/hung-body", "200 OK, reading the body: timeout after 100ms"},
	} {
		c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Path, o.Timeout = tt.path, 100*time.Millisecond })
		r := c.Check(t.Context(), serverAddr(t, srv))
		status := 0
		if tt.path == "/hung-body" {
			status = 200
		}
		checkResult(t, r, false, status, tt.reason, "HTTP GET "+tt.path)
	}
}

// TestHTTPBodyBound: a check reads at most 4 KiB of the body. The handler
// sends exactly 4 KiB (or 4 KiB + 1), flushes, and then blocks until the
// client goes away: a check that read one byte more than 4 KiB would wait
// for its deadline (a minute) and fail.
func TestHTTPBodyBound(t *testing.T) {
	for _, n := range []int{appcheck.MaxBody, appcheck.MaxBody + 1, 10 * appcheck.MaxBody} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			gone := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(make([]byte, n))
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the client closed the connection
				close(gone)
			}))
			defer srv.Close()
			c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Timeout, o.Interval = time.Minute, time.Minute })
			r := c.Check(t.Context(), serverAddr(t, srv))
			checkResult(t, r, true, 200, "200 OK", "HTTP GET /")
			<-gone
		})
	}
}

// TestHTTPHugeBody: against a server that streams without end, the check
// finishes, and the server could write no more than what fits in the
// socket buffers beyond the 4 KiB read.
func TestHTTPHugeBody(t *testing.T) {
	var written atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 1<<10)
		for {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Timeout, o.Interval = time.Minute, time.Minute })
	r := c.Check(t.Context(), serverAddr(t, srv))
	checkResult(t, r, true, 200, "200 OK", "HTTP GET /")
	<-done
	// The kernel's loopback buffers take a few MiB at most: a client that
	// read the stream would have let it run until its deadline.
	if w := written.Load(); w > 64<<20 {
		t.Errorf("the server wrote %d bytes before the check closed", w)
	}
}

// TestHostileServer: nothing a server sends reaches Reason or Output.
func TestHostileServer(t *testing.T) {
	for _, tt := range []struct {
		name, reply string
		ok          bool
		status      int
		reason      string
	}{
		{"reason phrase", "HTTP/1.1 200 EVIL\r\nX-Evil: EVIL\r\nContent-Length: 4\r\n\r\nEVIL", true, 200, "200 OK"},
		{"odd status", "HTTP/1.1 599 EVIL\r\nContent-Length: 0\r\n\r\n", false, 599, "599"},
		{"garbage", "EVIL EVIL EVIL\r\n\r\n", false, 0, "no valid HTTP response"},
		{"redirect elsewhere", "HTTP/1.1 302 EVIL\r\nLocation: http://EVIL/EVIL\r\nContent-Length: 0\r\n\r\n", true, 302, "302 Found (redirect to another host not followed)"},
		{"nothing", "", false, 0, "connection closed early"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nEVIL", false, 200, "200 OK, reading the body: connection closed early"},
		{"huge header", "HTTP/1.1 200 OK\r\nX-Evil: " + strings.Repeat("EVIL", 10<<10) + "\r\n\r\n", false, 0, "response headers too large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, tt.reply)
			c := newChecker(t, appcheck.HTTP, nil)
			r := c.Check(t.Context(), addr)
			checkResult(t, r, tt.ok, tt.status, tt.reason, "HTTP GET /")
			if strings.Contains(r.Reason+r.Output, "EVIL") {
				t.Errorf("the server's words reached the result: %+v", r)
			}
		})
	}
}

// rawServer answers every connection with reply, after reading the
// request's head, and closes it.
func rawServer(t *testing.T, reply string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				var head []byte
				for !strings.Contains(string(head), "\r\n\r\n") {
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					head = append(head, buf[:n]...)
				}
				io.WriteString(conn, reply)
			}()
		}
	}()
	return addrOf(t, l.Addr())
}

func TestCheckServers(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer sick.Close()
	server := func(a netip.AddrPort) discover.Server { return discover.Server{IP: a.Addr(), Port: a.Port()} }
	servers := []discover.Server{server(serverAddr(t, ok)), server(serverAddr(t, sick)), server(closedPort(t)), server(serverAddr(t, ok))}
	c := newChecker(t, appcheck.HTTP, func(o *appcheck.Options) { o.Concurrency = 2 })
	got := appcheck.CheckServers(t.Context(), c, servers)
	want := []string{"200 OK", "503 Service Unavailable", "connection refused", "200 OK"}
	if len(got) != len(want) {
		t.Fatalf("%d results for %d servers", len(got), len(servers))
	}
	for i, r := range got {
		if r.Reason != want[i] || r.OK != (want[i] == "200 OK") {
			t.Errorf("server %d: %+v, want %q", i, r, want[i])
		}
	}
	if got := appcheck.CheckServers(t.Context(), c, nil); len(got) != 0 {
		t.Errorf("CheckServers of no server = %v", got)
	}
}
