package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// NodeName returns the node name, and service ID, of the server at addr
// in catalog mode for the fleet whose KV prefix is fleet. The default fleet
// of service (consulclient.DefaultKVPrefix) uses
// consulclient.ServiceID(service, addr), e.g. "django-10.213.1.5-8000",
// the names catalog mode has always used; any other fleet appends "-" and FleetNodeSuffix(fleet), e.g.
// "django-10.213.1.5-8000-5d41402a", so that two fleets registering the
// same service on one Consul never share a node. Every name starts with
// "<service>-", so one ACL rule (node_prefix "<service>-") covers all
// fleets.
func NodeName(service, fleet string, addr netip.AddrPort) string {
	id := consulclient.ServiceID(service, addr)
	if fleet == consulclient.DefaultKVPrefix(service) {
		return id
	}
	return id + "-" + FleetNodeSuffix(fleet)
}

// SharedNodeName returns the name of the synthetic node that holds every
// server of the fleet whose KV prefix is fleet in the shared-node layout:
// "<service>-servers" for the default fleet of service, and
// "<service>-servers-<FleetNodeSuffix(fleet)>" for any other, e.g.
// "django-servers-5d41402a". It starts with "<service>-" like every node
// name of catalog mode, and never equals a server's node name (those end
// in an address and a port).
func SharedNodeName(service, fleet string) string {
	name := consulclient.SanitizeID(service + "-servers")
	if fleet == consulclient.DefaultKVPrefix(service) {
		return name
	}
	return name + "-" + FleetNodeSuffix(fleet)
}

// FleetNodeSuffix is the fleet-scoping suffix of the catalog node names of
// the fleet with KV prefix fleet: the first 8 hex digits of the SHA-256 of
// the prefix. Short (a node name with an IPv6 address stays within a DNS
// label's 63 bytes for service names up to 8 characters) and stable across
// versions and restarts.
func FleetNodeSuffix(fleet string) string {
	sum := sha256.Sum256([]byte(fleet))
	return hex.EncodeToString(sum[:4])
}
