package catalog

import (
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// catalogRules is the consulclient.RulePrefixes of catalog mode: a fleet writes one node
// per server (node_prefix "<service>-"), its own node and sessions
// (node_prefix and session_prefix "udp-discovery-bridge-") and its keys
// (key_prefix "<consul_kv_prefix>/").
func (c *Catalog) catalogRules(resource, name string) (string, string) {
	return rulesOf(c.cfg.Service, c.cfg.Catalog.KVPrefix)(resource, name)
}

// rulesOf is the consulclient.RulePrefixes of the fleet of service whose
// KV prefix is fleet (catalogRules).
func rulesOf(service, fleet string) consulclient.RulePrefixes {
	return func(resource, name string) (string, string) {
		switch resource {
		case "key":
			if p := fleet + "/"; strings.HasPrefix(name, p) || name == fleet {
				return "key_prefix", p
			}
		case "node", "session":
			if p := consulclient.BridgeServiceName + "-"; strings.HasPrefix(name, p) {
				return resource + "_prefix", p
			}
			if p := service + "-"; resource == "node" && strings.HasPrefix(name, p) {
				return "node_prefix", p
			}
		}
		return resource, name
	}
}
