package consul

import (
	"context"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Doctor tries, with cfg's client and token, each Consul operation the
// sink needs in its mode (agent.Doctor, catalog.Doctor), and changes
// nothing it does not own: writes are sent in transactions that roll back;
// it may create and destroy a session and, in catalog mode, register the
// fleet's node and write and delete a key of its own.
func Doctor(ctx context.Context, cfg Config) ([]consulclient.Finding, error) {
	cfg = cfg.withDefaults()
	if cfg.Mode == ModeCatalog {
		return catalog.Doctor(ctx, cfg.catalogConfig())
	}
	return agent.Doctor(ctx, cfg.agentConfig())
}
