package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// relayHang only stops a test that would otherwise hang.
const relayHang = 30 * time.Second

var relayT0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// testKubeconfig writes a kubeconfig of an API server that is never
// called, and returns its path.
func testKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanRelay: the relay is off unless relay_interfaces names one; its
// source is resolved (auto by the sinks) with the reader of that source
// and its period; the engine speaks discovery's codec (message, prefix,
// key) and refuses a set older than the period + relay_max_stale; a
// source that cannot be read as configured is an error naming the key.
func TestPlanRelay(t *testing.T) {
	key, err := discover.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	on := []string{"DISCOVERY_CLIENT_RELAY_INTERFACES", "eth1", "DISCOVERY_CLIENT_BRIDGE_ID", "b1"}
	catalogMode := []string{"DISCOVERY_CLIENT_SINKS", "consul", "DISCOVERY_CLIENT_CONSUL_MODE", "catalog"}
	tests := []struct {
		name    string
		env     []string
		off     bool
		source  string
		reader  bool
		maxAge  time.Duration
		port    uint16
		message string
		key     bool
		err     string
	}{
		{name: "off by default", off: true},
		{name: "stdout: local, a round's period", env: on, source: "local", maxAge: 45 * time.Second, port: 9999, message: "DISCOVER_SERVER"},
		{name: "consul agent mode: local", env: append(slices.Clone(on), "DISCOVERY_CLIENT_SINKS", "consul"), source: "local", maxAge: 45 * time.Second, port: 9999, message: "DISCOVER_SERVER"},
		{name: "catalog mode: consul, the blocking wait's period", env: append(slices.Clone(on), catalogMode...), source: "consul", reader: true,
			maxAge: 10*time.Second + 10*time.Second/16 + 30*time.Second, port: 9999, message: "DISCOVER_SERVER"},
		{name: "kubernetes: the poll's period", env: append(slices.Clone(on), "DISCOVERY_CLIENT_SINKS", "kubernetes", "KUBECONFIG", testKubeconfig(t)),
			source: "kubernetes", reader: true, maxAge: 36 * time.Second, port: 9999, message: "DISCOVER_SERVER"},
		{name: "discovery's codec and port, relay_max_stale", env: append(slices.Clone(on), "DISCOVERY_CLIENT_PORT", "9000", "DISCOVERY_CLIENT_MESSAGE", "HELLO",
			"DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "true", "DISCOVERY_CLIENT_SECRET_KEY", key, "DISCOVERY_CLIENT_RELAY_MAX_STALE", "0"),
			source: "local", maxAge: 15 * time.Second, port: 9000, message: "HELLO", key: true},
		{name: "consul in agent mode", env: append(slices.Clone(on), "DISCOVERY_CLIENT_SINKS", "consul", "DISCOVERY_CLIENT_RELAY_SOURCE", "consul"),
			err: `relay_source (env DISCOVERY_CLIENT_RELAY_SOURCE): bad value "consul": the relay reads the servers the fleet's catalog mode writes`},
		{name: "kubernetes without its sink", env: append(slices.Clone(on), "DISCOVERY_CLIENT_RELAY_SOURCE", "kubernetes"),
			err: `relay_source (env DISCOVERY_CLIENT_RELAY_SOURCE): bad value "kubernetes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadTestConfig(t, tt.env...)
			opts, err := cfg.DiscoveryOptions()
			if err != nil {
				t.Fatal(err)
			}
			p, err := planRelay(cfg, opts, clocktest.New(relayT0), zerolog.Nop())
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("planRelay error %v, want one saying %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tt.off:
				if p != nil || p.inventory() != nil {
					t.Errorf("plan %+v with the relay off", p)
				}
				return
			}
			e := p.engine
			if p.source != tt.source || (p.reader != nil) != tt.reader || (p.local != nil) == tt.reader || p.keeper.MaxAge() != tt.maxAge || e.MaxTargetAge != tt.maxAge {
				t.Errorf("plan: source %s, reader %v, local %v, max age %s (engine %s); want %s, %v, %s", p.source, p.reader != nil, p.local != nil,
					p.keeper.MaxAge(), e.MaxTargetAge, tt.source, tt.reader, tt.maxAge)
			}
			if p.port != tt.port || string(e.Message) != tt.message || string(e.Prefix) != "SERVER_IP:" || (e.Key != nil) != tt.key ||
				!slices.Equal(e.Interfaces, []string{"eth1"}) || e.Delay != relay.DefaultDelay || e.MaxReplies != 8 {
				t.Errorf("engine %+v on port %d; want %d, message %q, key %v", e, p.port, tt.port, tt.message, tt.key)
			}
			if e.MaxTokenAge != opts.MaxTokenAge || e.ClockSkew != opts.ClockSkew {
				t.Errorf("token age %s ± %s, want discovery's %s ± %s", e.MaxTokenAge, e.ClockSkew, opts.MaxTokenAge, opts.ClockSkew)
			}
			if (p.inventory() != nil) != (tt.source == "local") {
				t.Errorf("inventory %v for source %s", p.inventory(), tt.source)
			}
		})
	}
}

// counter returns the value of metric name (its series with label
// reason=reason, when reason is set) in reg; false when it is absent.
func counter(t *testing.T, reg *prometheus.Registry, name, reason string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == reason }) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestStartRelay runs the relay of a local source on a real socket on
// 127.0.0.1 (the listing injected: lo with its real index and
// 127.0.0.0/8, so 127.0.0.2 is a neighbour) and a manual clock: a probe
// gets the ready servers the runner handed over, the metrics count it,
// /readyz has nothing to say; once the set is older than its period +
// relay_max_stale the relay answers nothing, /readyz notes it (and stays
// ready), the metrics say why; stop closes the socket.
func TestStartRelay(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	cfg := loadTestConfig(t, "DISCOVERY_CLIENT_RELAY_INTERFACES", "lo", "DISCOVERY_CLIENT_RELAY_DELAY", "0")
	opts, err := cfg.DiscoveryOptions()
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(relayT0)
	p, err := planRelay(cfg, opts, clk, zerolog.Nop())
	if err != nil || p == nil {
		t.Fatalf("planRelay = %v, %v", p, err)
	}
	lister := iface.ListerFunc(func() ([]iface.Interface, error) {
		return []iface.Interface{{Name: "lo", Index: lo.Index, Addr: netip.MustParseAddr("127.0.0.1"),
			Prefix: netip.MustParsePrefix("127.0.0.0/8"), Up: true, Loopback: true}}, nil
	})
	var conn *relay.PacketConn
	listen := func(ctx context.Context, port uint16) (relayConn, error) {
		if port != 9999 {
			t.Errorf("listen on port %d, want discovery_port 9999", port)
		}
		c, err := relay.Listen(ctx, "127.0.0.1:0")
		conn = c
		return c, err
	}
	reg := prometheus.NewRegistry()
	health := runner.NewHealth(clk, time.Minute, reg)
	stop, err := startRelay(context.Background(), p, relayDeps{lister: lister, clock: clk, log: zerolog.Nop(), reg: reg, health: health, listen: listen})
	if errors.Is(err, relay.ErrNoInterfaceInfo) {
		t.Skipf("no IP_PKTINFO here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer client.Close()

	if got := health.Notes(); !slices.Equal(got, []string{"relay: source local: no set read yet; answering no probes"}) {
		t.Errorf("notes before the first round: %q", got)
	}
	inv := runner.Inventories(nil, p.inventory())
	inv.Round(endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{
		{Addr: netip.MustParseAddrPort("10.2.0.5:8000")},
		{Addr: netip.MustParseAddrPort("10.2.0.6:8000"), Check: endpoint.Check{State: endpoint.Failing}},
	}})
	if got := health.Notes(); got != nil {
		t.Errorf("notes with a fresh set: %q", got)
	}

	probe := func() {
		t.Helper()
		if _, err := client.WriteToUDPAddrPort([]byte("DISCOVER_SERVER"), conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	probe()
	_ = client.SetReadDeadline(time.Now().Add(relayHang))
	buf := make([]byte, 2048)
	n, from, err := client.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "SERVER_IP:10.2.0.5:8000" || from != conn.LocalAddr() {
		t.Fatalf("reply %q from %s (%v), want the one ready server from the relay", buf[:n], from, err)
	}
	waitCount := func(name, reason string, want float64) {
		t.Helper()
		deadline := time.Now().Add(relayHang)
		for {
			got, ok := counter(t, reg, name, reason)
			if ok && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s{%s} = %v (present %v), want %v", name, reason, got, ok, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount("udp_discovery_bridge_relay_probes_relayed_total", "", 1)
	waitCount("udp_discovery_bridge_relay_replies_sent_total", "", 1)
	waitCount("udp_discovery_bridge_relay_targets", "", 1)
	waitCount("udp_discovery_bridge_relay_source_ok", "local", 1)

	clk.Advance(p.keeper.MaxAge() + time.Second)
	probe()
	waitCount("udp_discovery_bridge_relay_probes_dropped_total", "stale_targets", 1)
	waitCount("udp_discovery_bridge_relay_source_ok", "local", 0)
	notes := health.Notes()
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "relay: source local stale: its set of 1 was read 46s ago, more than 45s") {
		t.Errorf("notes when stale: %q", notes)
	}
	if _, reasons := health.Ready(); slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, "relay") }) {
		t.Errorf("a stale relay made the bridge unready: %q", reasons)
	}

	stop()
	if _, err := conn.ReadDatagram(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after stop, the socket reads %v, want closed", err)
	}
}
