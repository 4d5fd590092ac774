package relay_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/udpprobe"
)

// bcast43 is segment c's broadcast address in TestRelayEncryptedLocal.
var bcast43 = netip.MustParseAddrPort("10.213.43.255:9999")

// TestRelayEncryptedLocal: a bridge with a leg on segment a (two servers
// answering only Fernet tokens under the fleet's key) and a leg on
// segment c (no server), discovering on a and relaying on c from its own
// state (relay_source local: stdout sink, no registry), in encrypted
// mode. On c, a client with the key finds both servers through the relay;
// a plaintext probe, or a client with another key, gets nothing, and the
// relay counts each under its reason.
func TestRelayEncryptedLocal(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	lab := netns.New(t)
	sega, segc := lab.Bridge("sega"), lab.Bridge("segc")
	relayHost := lab.Host("relay", sega, "10.213.41.20/24")
	relayHost.AddLink(segc, "10.213.43.20/24")
	client := lab.Host("client", segc, "10.213.43.50/24")
	keygen := func() string {
		r := harness.Bridge(t, client, nil, "keygen")
		if r.ExitCode != 0 {
			t.Fatalf("keygen: exit %d: %s", r.ExitCode, r.Stderr)
		}
		return strings.TrimSpace(r.Stdout)
	}
	key, wrong := keygen(), keygen()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 2 {
		ip := fmt.Sprintf("10.213.41.%d", 31+i)
		harness.Respond(t, lab.Host(fmt.Sprintf("s%d", i), sega, ip+"/24"), 1, "--ip", ip, "--secret-key", key)
		want = append(want, ip+":8000")
	}
	b := harness.StartRun(t, relayHost, "relay", "--sink", "stdout", "--whitelist", relayHost.Dev(sega),
		"--relay-interfaces", relayHost.Dev(segc), "--encryption", "--secret-key-file", keyFile,
		"--interval", "1s", "--timeout", "0.5", "--metrics-addr", harness.MetricsAddr, "--log-format", "json")
	m := func(prefix string) float64 {
		v, _, err := harness.Metric(relayHost.NS, prefix)
		if err != nil {
			t.Fatalf("metric %s: %v", prefix, err)
		}
		return v
	}
	harness.Wait(t, 20*time.Second, "the relay holds both servers from the bridge's own state", func() (bool, string) {
		body, err := harness.MetricsBody(relayHost.NS)
		if err != nil {
			return false, err.Error()
		}
		n, _, _ := harness.MetricIn(body, "udp_discovery_bridge_relay_targets")
		ok, _, _ := harness.MetricIn(body, `udp_discovery_bridge_relay_source_ok{source="local"}`)
		return n == 2 && ok == 1, fmt.Sprintf("targets %v, source_ok %v", n, ok)
	})
	cdev := client.Dev(segc)

	got, r := harness.DiscoverJSON(t, client, nil, 0, "--whitelist", cdev, "--advertised-addresses", "any", "--timeout", "1",
		"--encryption", "--secret-key-file", keyFile)
	harness.WantServers(t, got, r, want...)
	for ep, s := range got {
		if s.SourceAddress != "10.213.43.20:9999" {
			t.Errorf("%s answered from %s, want the relay 10.213.43.20:9999", ep, s.SourceAddress)
		}
	}

	plain0, wrong0 := m(`udp_discovery_bridge_relay_probes_dropped_total{reason="bad_payload"}`), m(`udp_discovery_bridge_relay_probes_dropped_total{reason="wrong_key"}`)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plaintext probe", nil},
		{"another key", []string{"--encryption", "--secret-key", wrong}},
	} {
		res := harness.Bridge(t, client, nil, append([]string{"discover", "--json", "--whitelist", cdev, "--advertised-addresses", "any", "--timeout", "1"}, tc.args...)...)
		if res.ExitCode != 1 || strings.TrimSpace(res.Stdout) != "[]" {
			t.Errorf("%s: exit %d, want 1 with nothing found\nstdout: %s\nstderr: %s", tc.name, res.ExitCode, res.Stdout, harness.Tail(res.Stderr, 10))
		}
	}
	// A stock-style prober's plaintext probe gets no reply either.
	p := udpprobe.New(t, client, "10.213.43.50:0")
	if rs := p.Probe(bcast43, probe, 300*time.Millisecond); len(rs) != 0 {
		t.Errorf("a plaintext probe got %d replies: %v", len(rs), rs)
	}
	plain, wrongKey := m(`udp_discovery_bridge_relay_probes_dropped_total{reason="bad_payload"}`)-plain0, m(`udp_discovery_bridge_relay_probes_dropped_total{reason="wrong_key"}`)-wrong0
	if plain < 2 || wrongKey < 1 {
		t.Errorf("the relay counted %v plaintext probes (bad_payload) and %v under another key (wrong_key), want at least 2 and 1", plain, wrongKey)
	}
	t.Logf("MEASURED: encrypted relay from the bridge's own state: the keyed client found both servers through it; %v plaintext probes dropped as bad_payload, %v tokens under another key as wrong_key, none answered", plain, wrongKey)
	b.Sigterm(t, 10*time.Second)
	if _, stderr := b.Output(); strings.Contains(stderr, key) {
		t.Error("the bridge logged its Fernet key")
	}
}
