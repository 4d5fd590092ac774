package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/relay"
)

// TestRelayDefaults: the relay is off by default, and its defaults are the
// engine's.
func TestRelayDefaults(t *testing.T) {
	c := mustLoad(t, Inputs{})
	want := config.Relay{Engine: relay.DefaultConfig(), Source: config.RelaySourceAuto, MaxStale: config.DefaultRelayMaxStale}
	if c.Relay.Enabled() || c.Relay.Engine.Interfaces != nil {
		t.Errorf("relay on by default: %+v", c.Relay)
	}
	if !relayEqual(c.Relay, want) {
		t.Errorf("Relay = %+v, want %+v", c.Relay, want)
	}
}

// relayEqual compares what the relay keys set.
func relayEqual(a, b config.Relay) bool {
	x, y := a.Engine, b.Engine
	return slices.Equal(x.Interfaces, y.Interfaces) && x.Delay == y.Delay && x.MaxReplies == y.MaxReplies && x.Rate == y.Rate && x.Burst == y.Burst &&
		x.GlobalRate == y.GlobalRate && x.GlobalBurst == y.GlobalBurst && a.Source == b.Source && a.MaxStale == b.MaxStale
}

// TestRelayKeys: every relay key from a file, the environment or a flag,
// and every bad value refused with the key, where it came from, the value
// and why.
func TestRelayKeys(t *testing.T) {
	file := writeFile(t, "bridge.yaml", "relay_interfaces: [eth1, eth2]\nrelay_delay: 20ms\nrelay_max_replies: 4\nrelay_rate_limit: 2.5\nrelay_burst: 8\n"+
		"relay_global_rate_limit: 0\nrelay_global_burst: 4\nrelay_source: local\nrelay_max_stale: 1m\n")
	c := mustLoad(t, Inputs{File: file})
	want := config.Relay{Engine: relay.Config{Interfaces: []string{"eth1", "eth2"}, Delay: 20 * time.Millisecond, MaxReplies: 4, Rate: 2.5, Burst: 8, GlobalRate: 0, GlobalBurst: 4},
		Source: config.RelaySourceLocal, MaxStale: time.Minute}
	if !relayEqual(c.Relay, want) || !c.Relay.Enabled() {
		t.Errorf("from a file: %+v, want %+v", c.Relay, want)
	}
	c = mustLoad(t, Inputs{LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_RELAY_INTERFACES": "eth1,eth3"}), Flags: map[string]any{"relay_delay": "0"}})
	if !slices.Equal(c.Relay.Engine.Interfaces, []string{"eth1", "eth3"}) || c.Relay.Engine.Delay != 0 || c.Source("relay_interfaces") != "env DISCOVERY_CLIENT_RELAY_INTERFACES" {
		t.Errorf("from env and flags: %+v (%s)", c.Relay, c.Source("relay_interfaces"))
	}

	tests := []struct {
		name string
		in   Inputs
		want string
	}{
		{"delay over 1s", Inputs{Flags: map[string]any{"relay_delay": "2s"}}, `relay_delay (flag --relay-delay): bad value "2s": at most 1s`},
		{"negative delay", Inputs{Flags: map[string]any{"relay_delay": "-1ms"}}, `relay_delay (flag --relay-delay): bad value "-1ms": must be >= 0`},
		{"no replies", Inputs{Flags: map[string]any{"relay_max_replies": "0"}}, `relay_max_replies (flag --relay-max-replies): bad value "0": want 1..4096`},
		{"too many replies", Inputs{Flags: map[string]any{"relay_max_replies": "5000"}}, `relay_max_replies (flag --relay-max-replies): bad value "5000": want 1..4096`},
		{"negative rate", Inputs{LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_RELAY_RATE_LIMIT": "-1"})},
			`relay_rate_limit (env DISCOVERY_CLIENT_RELAY_RATE_LIMIT): bad value "-1": must be >= 0 (0: no limit)`},
		{"burst below a full answer", Inputs{Flags: map[string]any{"relay_burst": "4"}},
			`relay_burst (flag --relay-burst): bad value "4": below relay_max_replies 8: a full answer could never be paid for (or set relay_rate_limit 0: no limit)`},
		{"global burst below a full answer", Inputs{Flags: map[string]any{"relay_max_replies": "300"}},
			`relay_global_burst (default): bad value "200": below relay_max_replies 300`},
		{"a source of no name", Inputs{Flags: map[string]any{"relay_source": "etcd"}},
			`relay_source (flag --relay-source): bad value "etcd": want one of auto, consul, kubernetes, local`},
		{"max stale over 1h", Inputs{Flags: map[string]any{"relay_max_stale": "2h"}}, `relay_max_stale (flag --relay-max-stale): bad value "2h": at most 1h`},
		{"an interface twice", Inputs{Flags: map[string]any{"relay_interfaces": []string{"eth1", "eth1"}}},
			`relay_interfaces (flag --relay-interfaces): bad value "eth1": listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.in)
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error %v, want one saying %q", err, tt.want)
			}
		})
	}
	// A rate of 0 takes any burst: nothing is limited.
	if _, err := Load(Inputs{Flags: map[string]any{"relay_rate_limit": "0", "relay_burst": "1", "relay_global_rate_limit": "0", "relay_global_burst": "1"}}); err != nil {
		t.Errorf("no limits, bursts of 1: %v", err)
	}
}

// TestResolveRelaySource: auto picks consul when the consul sink runs in
// catalog mode, else kubernetes when that sink is on, else local; an
// explicit source needs its sink, else an error naming the key, its value
// and its source.
func TestResolveRelaySource(t *testing.T) {
	tests := []struct {
		name          string
		sinks         []string
		source        string
		consulCatalog bool
		noSlices      bool
		want          string
		err           string
	}{
		{"auto, stdout", []string{"stdout"}, "auto", false, false, "local", ""},
		{"auto, file", []string{"file"}, "auto", false, false, "local", ""},
		{"auto, consul agent mode", []string{"consul"}, "auto", false, false, "local", ""},
		{"auto, consul catalog mode", []string{"consul", "stdout"}, "auto", true, false, "consul", ""},
		{"auto, kubernetes", []string{"kubernetes"}, "auto", false, false, "kubernetes", ""},
		{"auto, both: consul first", []string{"kubernetes", "consul"}, "auto", true, false, "consul", ""},
		{"auto, catalog mode but no consul sink", []string{"kubernetes"}, "auto", true, false, "kubernetes", ""},
		{"consul, catalog mode", []string{"consul"}, "consul", true, false, "consul", ""},
		{"consul, agent mode", []string{"consul"}, "consul", false, false, "", `relay_source (flag --relay-source): bad value "consul": the relay reads the servers the fleet's catalog mode writes: it needs the consul sink in catalog mode`},
		{"consul, no consul sink", []string{"stdout"}, "consul", true, false, "", `bad value "consul"`},
		{"kubernetes", []string{"kubernetes"}, "kubernetes", false, false, "kubernetes", ""},
		{"kubernetes, no kubernetes sink", []string{"consul"}, "kubernetes", true, false, "", `relay_source (flag --relay-source): bad value "kubernetes": the relay reads the EndpointSlices the fleet's kubernetes sink writes: it needs that sink writing them (sinks: kubernetes, k8s_write: endpointslices)`},
		{"auto, kubernetes writing no slices", []string{"kubernetes"}, "auto", false, true, "local", ""},
		{"kubernetes writing no slices", []string{"kubernetes"}, "kubernetes", false, true, "", `it needs that sink writing them (sinks: kubernetes, k8s_write: endpointslices)`},
		{"local, whatever the sinks", []string{"consul", "kubernetes"}, "local", true, false, "local", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, Inputs{Flags: map[string]any{"sinks": tt.sinks, "relay_source": tt.source, "bridge_id": "b1", "file_path": "/tmp/servers.json"}})
			got, err := c.ResolveRelaySource(tt.consulCatalog, !tt.noSlices)
			switch {
			case tt.err == "" && (err != nil || got != tt.want):
				t.Errorf("ResolveRelaySource = %q, %v; want %q", got, err, tt.want)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || got != ""):
				t.Errorf("ResolveRelaySource = %q, %v; want an error saying %q", got, err, tt.err)
			}
		})
	}
}
