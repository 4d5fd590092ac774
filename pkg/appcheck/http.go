package appcheck

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// checkHTTP sends GET to the address in cctx (targetKey) and judges the
// status by Options.Status. It follows at most MaxRedirects redirects,
// each only when its Location names the same scheme, host (the address,
// or TLSServerName) and port; a redirect elsewhere is judged as the
// response it is, with a note in the Reason. It reads at most MaxBody
// bytes of each body and keeps none. ctx is the caller's context, cctx
// the check's own (ctx with the deadline).
func (c *Checker) checkHTTP(ctx, cctx context.Context) Result {
	addr := cctx.Value(targetKey{}).(netip.AddrPort)
	u := *c.base
	u.Host = addr.String()
	host := c.o.TLSServerName
	if host == "" {
		host = u.Host
	}
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, "", nil)
		if err != nil {
			return Result{Reason: "request failed"}
		}
		target := u
		req.URL, req.Host = &target, host
		req.Header.Set("User-Agent", UserAgent)
		resp, err := c.transport.RoundTrip(req)
		if err != nil {
			return Result{Reason: c.failure(ctx, cctx, err)}
		}
		status, loc := resp.StatusCode, resp.Header.Get("Location")
		_, err = io.CopyN(io.Discard, resp.Body, MaxBody)
		_ = resp.Body.Close() // the connection is not reused: closing it is all
		if err != nil && !errors.Is(err, io.EOF) {
			return Result{Status: status, Reason: statusText(status) + ", reading the body: " + c.failure(ctx, cctx, err)}
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
