package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/connlimit"
)

func TestDefaultHTTPBounds(t *testing.T) {
	b := defaultHTTPBounds()
	if err := b.conns.Validate(); err != nil {
		t.Fatal(err)
	}
	if b.readHeaderTimeout <= 0 || b.readTimeout <= 0 || b.writeTimeout <= 0 || b.idleTimeout <= 0 {
		t.Errorf("a timeout is off: %+v", b)
	}
}

// serveTest serves /healthz (200) on a fresh loopback listener with bounds
// b and returns its address and the metrics' registry.
func serveTest(t *testing.T, b httpBounds) (string, *prometheus.Registry) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	stop := serveOn(ln, "metrics_addr", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}),
		httpOptions{bounds: b, metrics: connlimit.NewMetrics(reg), log: zerolog.Nop()})
	t.Cleanup(stop)
	return ln.Addr().String(), reg
}

// waitClosed reads c until the server closes it. The deadline is a guard
// against a hang, not a measure.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}

// TestServeOnIdleConnection: a connection that never sends is closed by
// the read-header timeout (50 ms here, 5 s in the bridge), and the slot it
// held serves the next probe.
func TestServeOnIdleConnection(t *testing.T) {
	b := defaultHTTPBounds()
	b.readHeaderTimeout = 50 * time.Millisecond
	b.conns = connlimit.Limits{Host: 1, PerClient: 1, Total: 1}
	addr, _ := serveTest(t, b)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClosed(t, c)
	if err := probeHealth(t.Context(), "http://"+addr+"/healthz"); err != nil {
		t.Errorf("/healthz after the idle connection was closed: %v", err)
	}
}

// TestServeOnRefusesOverCap: the listener is capped and its refusals are
// counted in the registry: with the host's pool (loopback) full of idle
// connections, one more is closed at once.
func TestServeOnRefusesOverCap(t *testing.T) {
	b := defaultHTTPBounds()
	b.readHeaderTimeout = time.Hour // the idle connections stay for the test
	b.conns = connlimit.Limits{Host: 2, PerClient: 1, Total: 1}
	addr, reg := serveTest(t, b)
	for range 2 {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClosed(t, c)
	const want = `
# HELP udp_discovery_bridge_http_connections_refused_total HTTP connections closed as soon as accepted, by the cap that refused them (host: the host's own reserved pool; per_client: one address's cap; total: the cap on all other clients).
# TYPE udp_discovery_bridge_http_connections_refused_total counter
udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="host"} 1
udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="per_client"} 0
udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="total"} 0
# HELP udp_discovery_bridge_http_connections_open HTTP connections held now, by peer (host: from the host itself, in its reserved pool; other: every other client).
# TYPE udp_discovery_bridge_http_connections_open gauge
udp_discovery_bridge_http_connections_open{listener="metrics_addr",peer="host"} 2
udp_discovery_bridge_http_connections_open{listener="metrics_addr",peer="other"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
