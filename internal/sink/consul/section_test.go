package consul

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
)

// loadConsul loads flags with a schema of the Consul sink alone.
func loadConsul(t *testing.T, flags map[string]any) (*config.Config, error) {
	t.Helper()
	all := map[string]any{"sinks": []string{"consul"}, "bridge_id": "b1", "consul_addr": "127.0.0.1:1"}
	for k, v := range flags {
		all[k] = v
	}
	return sink.NewRegistry(Factory()).Schema().Load(config.Inputs{Flags: all})
}

// TestSectionLoadsByMode: the section fills the shared part and the
// configured mode's; consul_parallel is agent mode's writes per apply and
// catalog mode's transactions in flight, with the same bounds.
func TestSectionLoadsByMode(t *testing.T) {
	cfg, err := loadConsul(t, map[string]any{"consul_parallel": "3", "consul_tags": []string{"lab"}})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.SinkSettings("consul").(Config)
	if a.Mode != ModeAgent || a.Agent.Parallel != 3 || a.Agent.TTL <= 0 || a.Catalog != (catalog.Settings{}) || a.Tags[0] != "lab" || a.BridgeID != "b1" {
		t.Errorf("agent mode loaded %+v", a)
	}

	cfg, err = loadConsul(t, map[string]any{"consul_mode": "catalog", "consul_parallel": "3", "consul_deregister_after": "10s"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.SinkSettings("consul").(Config)
	if c.Mode != ModeCatalog || c.Catalog.InFlight != 3 || c.Catalog.KVPrefix != "udp-discovery-bridge/django" || c.Catalog.StartupGrace <= 0 ||
		c.Agent != (agent.Settings{}) || c.DeregisterAfter.Seconds() != 10 {
		t.Errorf("catalog mode loaded %+v", c)
	}
	// Built by another registry than the one whose schema loaded it: the
	// catalog-mode sink (which keeps Catalog.InFlight transactions in
	// flight: catalog.TestCatalogInFlight).
	s, err := sink.NewRegistry(Factory()).Build(cfg, sink.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s[0].(*catalog.Catalog); !ok {
		t.Errorf("catalog mode built %T", s[0])
	}

	for _, mode := range []string{ModeAgent, ModeCatalog} {
		for _, v := range []string{"0", "65"} {
			_, err := loadConsul(t, map[string]any{"consul_mode": mode, "consul_parallel": v})
			if err == nil || !strings.Contains(err.Error(), `consul_parallel (flag --consul-parallel): bad value "`+v+`": want 1..64`) {
				t.Errorf("%s mode, consul_parallel %s: %v", mode, v, err)
			}
		}
	}
	_, err = loadConsul(t, map[string]any{"consul_mode": "catalog", "consul_lock": "k"})
	if err == nil || !strings.Contains(err.Error(), "consul_lock (flag --consul-lock): bad value \"k\": catalog mode elects its leader") {
		t.Errorf("catalog mode with consul_lock: %v", err)
	}
	_, err = loadConsul(t, map[string]any{"consul_deregister_after": "10s"})
	if err == nil || !strings.Contains(err.Error(), "Consul's floor is 1m") {
		t.Errorf("agent mode, consul_deregister_after 10s: %v", err)
	}
}
