package appcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// An http or https check is one exchange per connection, on the caller's
// goroutine: dial the address checked, TLS when https, write the request
// (net/http's Request.Write), read the response (http.ReadResponse) and
// at most MaxBody bytes of its body, close. No http.Transport: a pool
// that never reuses a connection (keep-alive must be off: 10,000 servers
// must not hold 10,000 descriptors) would only add its goroutines (a
// dialer, a reader and a writer per connection) to every check.

// readBuf is the size of a check's read buffer.
const readBuf = 2 << 10

// maxInterim bounds the 1xx interim responses skipped before the final
// one.
const maxInterim = 5

// errTooLarge is read once a response's headers and body exceed what a
// check reads at most.
var errTooLarge = errors.New("response larger than a check reads")

// checkHTTP sends GET Path to addr and judges the status by
// Options.Status. It follows at most MaxRedirects redirects, each only
// when its Location names the same scheme, host (the address, or
// TLSServerName) and port; a redirect elsewhere is judged as the response
// it is, with a note in the Reason. ctx is the caller's context, cctx the
// check's own (ctx with the deadline).
func (c *Checker) checkHTTP(ctx, cctx context.Context, addr netip.AddrPort) Result {
	u := *c.base
	u.Host = addr.String()
	host := c.o.TLSServerName
	if host == "" {
		host = u.Host
	}
	for hops := 0; ; hops++ {
		status, loc, err := c.exchange(cctx, addr, &u, host)
		var be bodyError
		switch {
		case errors.As(err, &be):
			return Result{Status: status, Reason: statusText(status) + ", reading the body: " + c.failure(ctx, cctx, be.err)}
		case err != nil:
			return Result{Reason: c.failure(ctx, cctx, err)}
		}
		note := ""
		if isRedirect(status) && loc != "" {
			next, err := u.Parse(loc)
			switch {
			case err != nil:
				note = "redirect to a malformed location not followed"
			case next.Scheme != u.Scheme:
				note = "redirect to another scheme not followed"
			case !c.sameServer(next.Hostname(), next.Port(), addr):
				note = "redirect to another host not followed"
			case hops == MaxRedirects:
				return Result{Status: status, Reason: statusText(status) + " (more than " + strconv.Itoa(MaxRedirects) + " redirects)"}
			default:
				u = *next
				u.Fragment, u.RawFragment = "", ""
				continue
			}
		}
		r := Result{OK: c.o.Passes(status), Status: status, Reason: statusText(status)}
		if note != "" {
			r.Reason += " (" + note + ")"
		}
		return r
	}
}

// bodyError marks a failure reading the body, after the status came.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "reading the body: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// exchange does one request on a connection of its own to addr: GET u
// with Host host. It returns the final status (after 1xx interim ones)
// and the Location header; it reads at most MaxBody bytes of the body
// (a failure there is a bodyError, with the status) and keeps nothing.
func (c *Checker) exchange(cctx context.Context, addr netip.AddrPort, u *url.URL, host string) (status int, location string, err error) {
	tcp, err := c.dialer.DialTCP(cctx, "tcp", netip.AddrPort{}, addr)
	if err != nil {
		return 0, "", err
	}
	var conn net.Conn = tcp
	defer func() { _ = conn.Close() }() // the exchange is over: a close error changes nothing
	// One deadline for the whole exchange; ctx's end cuts it short (on
	// the TCP connection: conn becomes the TLS one below).
	if dl, ok := cctx.Deadline(); ok {
		_ = tcp.SetDeadline(dl)
	}
	stop := context.AfterFunc(cctx, func() { _ = tcp.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if c.o.Kind == HTTPS {
		cfg := c.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = addr.Addr().String()
		}
		tc := tls.Client(conn, cfg)
		conn = tc
		if err := tc.HandshakeContext(cctx); err != nil {
			return 0, "", err
		}
	}
	req := &http.Request{
		Method: http.MethodGet, URL: u, Host: host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"User-Agent": {UserAgent}}, Close: true,
	}
	var out bytes.Buffer
	if err := req.Write(&out); err != nil {
		return 0, "", err
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		return 0, "", err
	}
	br := bufio.NewReaderSize(&limitReader{r: conn, n: maxHeaderBytes + MaxBody + readBuf}, readBuf)
	var resp *http.Response
	for range maxInterim + 1 {
		if resp, err = http.ReadResponse(br, req); err != nil {
			return 0, "", err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	_, err = io.CopyN(io.Discard, resp.Body, MaxBody)
	// Close the connection before the body: closing the body would read
	// it to its end.
	_ = conn.Close()
	_ = resp.Body.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return resp.StatusCode, "", bodyError{err}
	}
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// limitReader reads from r until n bytes were read, then fails with
// errTooLarge: a response's headers, the body a check reads and one
// buffer read ahead fit in n.
type limitReader struct {
	r io.Reader
	n int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLarge
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

// sameServer reports whether a URL's host and port name the server
// checked: its IP address or the TLS server name, and its port (the
// scheme's default port when the URL gives none).
func (c *Checker) sameServer(host, port string, addr netip.AddrPort) bool {
	if port == "" {
		port = "80"
		if c.o.Kind == HTTPS {
			port = "443"
		}
	}
	if port != strconv.Itoa(int(addr.Port())) {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.WithZone("").Unmap() == addr.Addr().WithZone("").Unmap()
	}
	return c.o.TLSServerName != "" && strings.EqualFold(host, c.o.TLSServerName)
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}
