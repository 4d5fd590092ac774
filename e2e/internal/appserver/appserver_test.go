package appserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// get GETs /healthz of s with c and returns the status (0 and the error
// when there is no answer).
func get(c *http.Client, scheme string, s *appserver.Server) (int, error) {
	resp, err := c.Get(fmt.Sprintf("%s://%s/healthz", scheme, s.Addr()))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func client(keepAlive bool) *http.Client {
	return &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
}

// TestModes: each mode answers as documented, in any order, and Refused
// also ends an idle keep-alive connection, so a client that keeps one gets
// refused too.
func TestModes(t *testing.T) {
	s := appserver.Start(t, appserver.Options{Addr: "127.0.0.1:0"})
	if s.Port() == 0 {
		t.Fatalf("port 0 after Start: %v", s.Addr())
	}
	c, keep := client(false), client(true)
	if code, err := get(keep, "http", s); code != 200 {
		t.Fatalf("serving, keep-alive client: %d %v", code, err)
	}
	steps := []struct {
		mode appserver.Mode
		want int
		err  func(error) bool
	}{
		{appserver.Unavailable, 503, nil},
		{appserver.Serving, 200, nil},
		{appserver.Hung, 0, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		{appserver.Refused, 0, func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{appserver.Serving, 200, nil},
		{appserver.Refused, 0, func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{appserver.Unavailable, 503, nil},
		{appserver.Hung, 0, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		{appserver.Serving, 200, nil},
	}
	for i, st := range steps {
		s.Set(st.mode)
		if s.Mode() != st.mode {
			t.Fatalf("step %d: Mode() = %v after Set(%v)", i, s.Mode(), st.mode)
		}
		for name, cl := range map[string]*http.Client{"fresh": c, "keep-alive": keep} {
			code, err := get(cl, "http", s)
			if code != st.want || (st.err == nil) != (err == nil) || (st.err != nil && !st.err(err)) {
				t.Errorf("step %d, %v, %s client: %d %v; want %d", i, st.mode, name, code, err, st.want)
			}
		}
	}
	if n := s.Requests(); n < 12 {
		t.Errorf("Requests() = %d after 14 requests that reached a listener", n)
	}
	if n := s.RequestsFrom(netip.MustParseAddr("127.0.0.1")); n != s.Requests() {
		t.Errorf("RequestsFrom(127.0.0.1) = %d, Requests() = %d", n, s.Requests())
	}
	if s.Conns() < 8 {
		t.Errorf("Conns() = %d", s.Conns())
	}
}

// TestCycle: each request takes the next mode of the cycle; Set ends it.
func TestCycle(t *testing.T) {
	s := appserver.Start(t, appserver.Options{Addr: "127.0.0.1:0"})
	c := client(false)
	s.Cycle(appserver.Unavailable, appserver.Serving, appserver.Serving)
	var got []int
	for range 7 {
		code, err := get(c, "http", s)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, code)
	}
	if want := []int{503, 200, 200, 503, 200, 200, 503}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cycle answers %v, want %v", got, want)
	}
	s.Set(appserver.Unavailable)
	for range 3 {
		if code, _ := get(c, "http", s); code != 503 {
			t.Errorf("after Set(Unavailable): %d", code)
		}
	}
}

// TestTLS: the certificate holds the server's IP and the given name and is
// verified with the CA's pool and file; without the CA the handshake fails
// on the unknown authority.
func TestTLS(t *testing.T) {
	ca := appserver.NewCA(t)
	s := appserver.Start(t, appserver.Options{Addr: "127.0.0.1:0", CA: ca, TLSNames: []string{"app.test"}})
	with := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if code, err := get(with, "https", s); code != 200 {
		t.Fatalf("https with the CA: %d %v", code, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, ca.WriteFile(t))) {
		t.Fatal("the CA file holds no certificate")
	}
	byName := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.test"}}}
	if code, err := get(byName, "https", s); code != 200 {
		t.Fatalf("https with the CA file and server name app.test: %d %v", code, err)
	}
	without := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	_, err := get(without, "https", s)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Errorf("https without the CA: %v, want an unknown authority error", err)
	}
	// The server notes the failure after the client gave up.
	for deadline := time.Now().Add(2 * time.Second); s.HandshakeFailures() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s.HandshakeFailures() == 0 {
		t.Error("HandshakeFailures() = 0 2 s after a client refused the certificate")
	}
	other := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "other.test"}}}
	var hn x509.HostnameError
	if _, err := get(other, "https", s); !errors.As(err, &hn) {
		t.Errorf("https for another name: %v, want a hostname error", err)
	}
	s.Set(appserver.Unavailable)
	if code, err := get(with, "https", s); code != 503 {
		t.Errorf("https, unavailable: %d %v", code, err)
	}
}

// TestCloseReleasesHung: Close returns a hung request's handler at once.
func TestCloseReleasesHung(t *testing.T) {
	s := appserver.Start(t, appserver.Options{Addr: "127.0.0.1:0"})
	s.Set(appserver.Hung)
	done := make(chan error, 1)
	go func() {
		_, err := get(&http.Client{Timeout: 10 * time.Second}, "http", s)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a hung request got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Error("the hung request still hangs 5 s after Close")
	}
}

// TestInNamespace: a server listening inside a namespace is reached from
// another host of the lab, and counts that host's requests by address.
func TestInNamespace(t *testing.T) {
	lab := netns.New(t)
	br := lab.Bridge("lan")
	app := lab.Host("app", br, "10.213.1.11/24")
	cl := lab.Host("client", br, "10.213.1.10/24")
	s := appserver.Start(t, appserver.Options{NS: app.NS, Addr: "10.213.1.11:8000"})
	c := netns.HTTPClient(cl.NS, time.Second)
	if code, err := get(c, "http", s); code != 200 {
		t.Fatalf("from the client host: %d %v", code, err)
	}
	if n := s.RequestsFrom(netip.MustParseAddr("10.213.1.10")); n != 1 {
		t.Errorf("RequestsFrom(client) = %d, want 1", n)
	}
	s.Set(appserver.Refused)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := netns.Dial(ctx, cl.NS, "tcp", "10.213.1.11:8000"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial while refused: %v, want connection refused", err)
	}
	s.Set(appserver.Serving)
	if code, err := get(c, "http", s); code != 200 {
		t.Errorf("serving again: %d %v", code, err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
