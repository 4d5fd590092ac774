package consul

import (
	"cmp"
	"errors"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Mode values (consul_mode).
const (
	ModeAgent   = "agent"
	ModeCatalog = "catalog"
)

// DefaultConfig returns the sink's defaults, every part filled. They are
// written beside their types (consulclient.DefaultSharedConfig,
// agent.DefaultSettings, catalog.DefaultSettings): the configuration keys
// (section.go) take their defaults from them, and each mode fills zero
// fields of its part from them.
func DefaultConfig() Config {
	return Config{
		SharedConfig: consulclient.DefaultSharedConfig(),
		Mode:         ModeAgent,
		Agent:        agent.DefaultSettings(),
		Catalog:      catalog.DefaultSettings(),
	}
}

// Config configures the Consul sink: what both modes share (SharedConfig,
// embedded: the client, the service, the checks), the mode, and the
// settings of that mode, Agent or Catalog (the other part is ignored). The
// comment of each field names its configuration key; fields without one are
// for Go callers (and tests) only. Zero fields take DefaultConfig's values.
type Config struct {
	consulclient.SharedConfig
	// Mode is "agent" (register with the local agent) or "catalog" (write
	// the catalog on the servers through one elected bridge; consul_mode).
	Mode string
	// Agent is agent mode's part, Catalog catalog mode's.
	Agent   agent.Settings
	Catalog catalog.Settings
}

// agentConfig is c as agent mode takes it.
func (c Config) agentConfig() agent.Config {
	return agent.Config{SharedConfig: c.SharedConfig, Agent: c.Agent}
}

// catalogConfig is c as catalog mode takes it.
func (c Config) catalogConfig() catalog.Config {
	return catalog.Config{SharedConfig: c.SharedConfig, Catalog: c.Catalog}
}

// withDefaults returns c with zero fields set from DefaultConfig: the
// shared part's and its mode's.
func (c Config) withDefaults() Config {
	c.Mode = cmp.Or(c.Mode, DefaultConfig().Mode)
	switch c.Mode {
	case ModeAgent:
		a := c.agentConfig().WithDefaults()
		c.SharedConfig, c.Agent = a.SharedConfig, a.Agent
	case ModeCatalog:
		k := c.catalogConfig().WithDefaults()
		c.SharedConfig, c.Catalog = k.SharedConfig, k.Catalog
	default:
		c.SharedConfig = c.SharedConfig.WithDefaults()
	}
	return c
}

// Validate reports every problem of a (defaulted) configuration at once,
// each a *config.KeyError naming the configuration key (or, for fields
// without a key, the Go field): the shared part's, then its mode's. This is
// the only validation of the sink's settings: the configuration section
// calls it, and each mode's New the same checks.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeAgent:
		return c.agentConfig().Validate()
	case ModeCatalog:
		err := c.catalogConfig().Validate()
		if c.Agent.LockKey != "" {
			err = errors.Join(err, &config.KeyError{Key: "consul_lock", Value: c.Agent.LockKey,
				Why: "catalog mode elects its leader under consul_kv_prefix; leave consul_lock empty"})
		}
		return err
	default:
		return errors.Join(c.SharedConfig.Validate(), config.OneOf("consul_mode", c.Mode, ModeAgent, ModeCatalog))
	}
}
