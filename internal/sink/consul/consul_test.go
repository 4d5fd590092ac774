package consul

import (
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func validConsulConfig() Config {
	return Config{SharedConfig: consulclient.SharedConfig{BridgeID: "host-1", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1"}}}.withDefaults()
}

func TestConsulConfigValidate(t *testing.T) {
	tests := []validateCase{
		{"defaults", func(*Config) {}, ""},
		{"deregister at floor", func(c *Config) { c.DeregisterAfter = time.Minute }, ""},
		{"deregister below floor", func(c *Config) { c.DeregisterAfter = 30 * time.Second }, "consul_deregister_after"},
		{"on exit keep", func(c *Config) { c.OnExit = "keep" }, ""},
		{"on exit bad", func(c *Config) { c.OnExit = "nuke" }, "on_exit"},
		{"check tcp", func(c *Config) { c.Check = "tcp" }, ""},
		{"check http", func(c *Config) { c.Check = "http" }, ""},
		{"check bad", func(c *Config) { c.Check = "grpc" }, "consul_check"},
		{"http path without slash", func(c *Config) { c.Check = "http"; c.HTTPPath = "health" }, "consul_http_path"},
		{"no bridge id", func(c *Config) { c.BridgeID = "" }, "bridge_id"},
		{"unquotable bridge id", func(c *Config) { c.BridgeID = "a\"`b" }, "bridge_id"},
		{"reserved service name", func(c *Config) { c.Service = consulclient.BridgeServiceName }, "consul_service"},
		{"lock session ttl too short", func(c *Config) { c.Agent.LockKey = "k"; c.Agent.LockSessionTTL = 5 * time.Second }, "consul_lock_session_ttl"},
		{"short lock ttl ignored without lock", func(c *Config) { c.Agent.LockSessionTTL = 5 * time.Second }, ""},
		{"parallel too high", func(c *Config) { c.Agent.Parallel = 1000 }, "consul_parallel"},
		{"negative ttl", func(c *Config) { c.Agent.TTL = -time.Second }, "consul_ttl"},
		{"parallel at most", func(c *Config) { c.Agent.Parallel = 64 }, ""},
		{"catalog part ignored", func(c *Config) { c.Catalog.WriteRate = -1; c.Catalog.KVPrefix = "/x/" }, ""},
	}
	checkValidate(t, validConsulConfig, tests)
}

func TestConsulValidateReportsAllProblems(t *testing.T) {
	c := validConsulConfig()
	c.OnExit = "x"
	c.Check = "y"
	c.DeregisterAfter = time.Second
	err := c.Validate()
	for _, key := range []string{"on_exit", "consul_check", "consul_deregister_after"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
}
