package consul

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func validCatalogConfig() Config {
	return Config{Mode: ModeCatalog, SharedConfig: consulclient.SharedConfig{BridgeID: "host-1", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1"}}}.withDefaults()
}

// TestCatalogConfigValidate: catalog mode validates the shared part and its
// own, with its own floors; agent mode's part is not its business, except a
// lock key, which it refuses.
func TestCatalogConfigValidate(t *testing.T) {
	tests := []validateCase{
		{"defaults", func(*Config) {}, ""},
		{"deregister below agent floor", func(c *Config) { c.DeregisterAfter = 30 * time.Second }, ""},
		{"deregister at floor", func(c *Config) { c.DeregisterAfter = 5 * time.Second }, ""},
		{"deregister below floor", func(c *Config) { c.DeregisterAfter = 4 * time.Second }, "catalog mode's floor is 5s"},
		{"shared: check bad", func(c *Config) { c.Check = "grpc" }, "consul_check"},
		{"shared: reserved service name", func(c *Config) { c.Service = consulclient.BridgeServiceName }, "consul_service"},
		{"bridge id with slash", func(c *Config) { c.BridgeID = "a/b" }, "bridge_id"},
		{"kv prefix trailing slash", func(c *Config) { c.Catalog.KVPrefix = "a/" }, "consul_kv_prefix"},
		{"session ttl too short", func(c *Config) { c.Catalog.SessionTTL = 5 * time.Second }, "consul_lock_session_ttl"},
		{"lock key refused", func(c *Config) { c.Agent.LockKey = "k" }, "leave consul_lock empty"},
		{"agent part ignored", func(c *Config) { c.Agent.TTL = -time.Second; c.Agent.Parallel = 1000 }, ""},
		{"write rate", func(c *Config) { c.Catalog.WriteRate = 0.5 }, ""},
		{"negative write rate", func(c *Config) { c.Catalog.WriteRate = -1 }, "consul_write_rate"},
		{"NaN write rate", func(c *Config) { c.Catalog.WriteRate = math.NaN() }, "consul_write_rate"},
		{"in flight 1", func(c *Config) { c.Catalog.InFlight = 1 }, ""},
		{"in flight 64", func(c *Config) { c.Catalog.InFlight = 64 }, ""},
		{"in flight 65", func(c *Config) { c.Catalog.InFlight = 65 }, "consul_parallel"},
		{"in flight negative", func(c *Config) { c.Catalog.InFlight = -1 }, "consul_parallel"},
	}
	checkValidate(t, validCatalogConfig, tests)
}

// TestDefaultsByMode: withDefaults fills the shared part and the part of
// the mode; consul_parallel's default is the in-flight count of both modes.
func TestDefaultsByMode(t *testing.T) {
	a := Config{}.withDefaults()
	if a.Mode != ModeAgent || a.Agent.Parallel != consulclient.DefaultParallel || a.Agent.TTL == 0 || a.Catalog != (catalog.Settings{}) {
		t.Errorf("agent defaults: %+v", a)
	}
	c := validCatalogConfig()
	if c.Catalog.InFlight != consulclient.DefaultParallel || c.Catalog.SessionTTL != consulclient.MinSessionTTL || c.Catalog.KVPrefix != "udp-discovery-bridge/django" || c.Agent != (agent.Settings{}) {
		t.Errorf("catalog defaults: %+v", c)
	}
	if d := DefaultConfig(); d.Agent.Parallel != d.Catalog.InFlight || d.Agent.LockSessionTTL != d.Catalog.SessionTTL {
		t.Errorf("one key, two defaults: consul_parallel %d/%d, consul_lock_session_ttl %s/%s",
			d.Agent.Parallel, d.Catalog.InFlight, d.Agent.LockSessionTTL, d.Catalog.SessionTTL)
	}
}

// validateCase is one row of a Config.Validate table: a change to a valid
// Config and the key the error must name ("" when the result is valid).
type validateCase struct {
	name    string
	mod     func(*Config)
	wantErr string // substring; "" means valid
}

// checkValidate runs each case on a fresh valid() Config.
func checkValidate(t *testing.T, valid func() Config, tests []validateCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error naming %q", err, tt.wantErr)
			}
		})
	}
}
