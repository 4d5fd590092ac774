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
	switch resource {
	case "key":
		if p := c.cfg.Catalog.KVPrefix + "/"; strings.HasPrefix(name, p) || name == c.cfg.Catalog.KVPrefix {
			return "key_prefix", p
		}
	case "node", "session":
		if p := consulclient.BridgeServiceName + "-"; strings.HasPrefix(name, p) {
			return resource + "_prefix", p
		}
		if p := c.cfg.Service + "-"; resource == "node" && strings.HasPrefix(name, p) {
			return "node_prefix", p
		}
	}
	return resource, name
}
