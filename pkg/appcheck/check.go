package appcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/tlsroots"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Result is the outcome of one check of one server.
type Result struct {
	// At is when the check started.
	At time.Time
	// OK reports whether the check passed.
	OK bool
	// Status is the HTTP status of the response judged (0 for a tcp
	// check, or when no response came).
	Status int
	// Latency is how long the whole check took: connect, TLS, request,
	// headers and the first 4 KiB of the body.
	Latency time.Duration
	// Reason says why, in a few words of the checker's own (never bytes
	// of the server's response): "200 OK", "503 Service Unavailable",
	// "connection refused", "timeout after 2s", "certificate signed by
	// unknown authority", "302 Found (redirect to another host not
	// followed)". At most MaxReason bytes, one line.
	Reason string
	// Output is the one line a registry shows: "<KIND> <what>: <Reason>
	// in <ms> ms", such as "HTTP GET /healthz: 503 Service Unavailable in
	// 4 ms" or "TCP connect: ok in 1 ms".
	Output string
}

// MaxReason bounds Result.Reason, in bytes.
const MaxReason = 128

// MaxBody is how much of a response body a check reads at most; the
// rest is never read, and nothing of what is read is kept.
const MaxBody = 4 << 10

// MaxRedirects is how many redirects to the same server an http or https
// check follows at most.
const MaxRedirects = 3

// UserAgent is the User-Agent header of http and https checks.
const UserAgent = "udp-discovery-bridge-app-check/1"

// maxHeaderBytes bounds a response's headers: a hostile server cannot make
// a check hold more.
const maxHeaderBytes = 16 << 10

// ErrDisabled is returned by New for Options whose Kind checks nothing
// (none, or empty).
var ErrDisabled = errors.New("app_check is none: there is nothing to check")

// Checker runs the app check o describes against one server at a time;
// it is safe for concurrent use, and holds no connection between checks.
type Checker struct {
	o Options
	// prefix is the "<KIND> <what>" of Output; timeout the Reason of a
	// check that ran out of time.
	prefix  string
	timeout string
	dialer  net.Dialer
	// http and https checks:
	base *url.URL    // Path and query; Scheme and Host set per check
	tls  *tls.Config // https: ServerName empty means the address checked
}

// New returns a Checker for o. It validates o (o.Validate), parses the
// path and reads o.CAFile; every error names the key at fault. New
// refuses Options that check nothing with ErrDisabled.
func New(o Options) (*Checker, error) {
	if !o.Enabled() {
		return nil, ErrDisabled
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	c := &Checker{
		o:       o,
		timeout: reasonTimeout(o.Timeout),
		// KeepAlive -1: a check's connection lives a few milliseconds;
		// no keep-alive probes (and one setsockopt less per check).
		dialer: net.Dialer{Timeout: o.Timeout, KeepAlive: -1},
	}
	if o.Kind == TCP {
		c.prefix = "TCP connect"
		return c, nil
	}
	base, err := requestURL(o.Path)
	if err != nil {
		return nil, fmt.Errorf("app_check_path %q: %w", o.Path, err)
	}
	base.Scheme = string(o.Kind)
	c.base = base
	c.prefix = "HTTP GET " + o.Path
	if o.Kind == HTTPS {
		c.prefix = "HTTPS GET " + o.Path
		cfg, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		c.tls = cfg
	}
	return c, nil
}

// tlsConfig builds the TLS configuration of an https check: the server
// name (empty: the address checked, whose IP the certificate must hold),
// the CAs of CAFile (empty: the system's roots, or the embedded bundle
// where the system has none), or no verification at all when asked.
func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.TLSServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, // an explicit opt-in (app_check_tls_insecure)
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("app_check_ca_file %q: %w", o.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("app_check_ca_file %q: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if err := tlsroots.Fill(cfg); err != nil {
		return nil, fmt.Errorf("app_check https: system roots: %w", err)
	}
	return cfg, nil
}

// Options returns the options the Checker runs with.
func (c *Checker) Options() Options { return c.o }

// Check checks the server at addr once, within Options.Timeout (and
// ctx). It contacts addr and nothing else.
func (c *Checker) Check(ctx context.Context, addr netip.AddrPort) Result {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	var r Result
	if c.o.Kind == TCP {
		r = c.checkTCP(ctx, cctx, addr)
	} else {
		r = c.checkHTTP(ctx, cctx, addr)
	}
	r.At = start
	r.Latency = time.Since(start)
	r.Reason = clampReason(r.Reason)
	r.Output = c.output(r.Reason, r.Latency)
	return r
}

// output formats Result.Output: "<prefix>: <reason> in <ms> ms", the
// latency rounded to the millisecond.
func (c *Checker) output(reason string, latency time.Duration) string {
	return c.prefix + ": " + reason + " in " + strconv.FormatInt(latency.Round(time.Millisecond).Milliseconds(), 10) + " ms"
}

// failure names why a check that failed with err did: the deadline (when
// cctx ran out while ctx did not), ctx's end, or err's class.
func (c *Checker) failure(ctx, cctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return "canceled"
	case cctx.Err() != nil, isTimeout(err):
		return c.timeout
	}
	return reasonOf(err)
}

// CheckServers checks each of servers once, concurrently (at most
// c.Options().Concurrency at a time), and returns their results in the
// order of servers.
func CheckServers(ctx context.Context, c *Checker, servers []discover.Server) []Result {
	out := make([]Result, len(servers))
	workers := min(max(c.o.Concurrency, 1), len(servers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(servers) {
					return
				}
				s := servers[i]
				out[i] = c.Check(ctx, netip.AddrPortFrom(s.IP, s.Port))
			}
		})
	}
	wg.Wait()
	return out
}
