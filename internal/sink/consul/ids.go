package consul

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// ServiceID returns the deterministic Consul service ID of the endpoint at
// addr: "<service>-<ip>-<port>" with every character outside
// [A-Za-z0-9._-] replaced by '-' (so IPv6 colons and zones are safe in URL
// paths), e.g. "django-10.213.1.5-8000". The same endpoint always gets the
// same ID, so a restarted bridge never duplicates an instance.
func ServiceID(service string, addr netip.AddrPort) string {
	return sanitizeID(service + "-" + addr.Addr().String() + "-" + strconv.Itoa(int(addr.Port())))
}

// CatalogNodeName returns the node name, and service ID, of the server at
// addr in catalog mode for the fleet whose KV prefix is fleet. The default
// fleet of service (DefaultKVPrefix) uses ServiceID(service, addr), e.g.
// "django-10.213.1.5-8000", the names catalog mode has always used; any
// other fleet appends "-" and FleetNodeSuffix(fleet), e.g.
// "django-10.213.1.5-8000-5d41402a", so that two fleets registering the
// same service on one Consul never share a node. Every name starts with
// "<service>-", so one ACL rule (node_prefix "<service>-") covers all
// fleets.
func CatalogNodeName(service, fleet string, addr netip.AddrPort) string {
	id := ServiceID(service, addr)
	if fleet == DefaultKVPrefix(service) {
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
	name := sanitizeID(service + "-servers")
	if fleet == DefaultKVPrefix(service) {
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

// BridgeServiceID is the ID of the bridge's own service for bridgeID.
func BridgeServiceID(bridgeID string) string {
	return sanitizeID(BridgeServiceName + "-" + bridgeID)
}

// bridgeCheckID is the ID of the bridge's heartbeat TTL check.
func bridgeCheckID(bridgeID string) string {
	return BridgeServiceID(bridgeID) + ":ttl"
}

// appCheckID is the ID of the bridge's app check on the server whose
// service ID is serviceID (agent mode).
func appCheckID(serviceID string) string { return serviceID + ":app" }

// sanitizeID replaces every byte outside [A-Za-z0-9._-] with '-'.
func sanitizeID(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// errUnquotable is returned for strings that cannot be written as a
// go-bexpr string literal.
var errUnquotable = errors.New("contains both '\"' and '`' or a control character; cannot be used in a Consul filter")

// quoteFilterString returns s as a go-bexpr string literal. Consul's filter
// grammar ends a double-quoted literal at the first '"' (no \" escape) and
// then applies strconv.Unquote, so strings with '"' use a raw `...` literal;
// control characters are rejected (raw literals would drop '\r').
func quoteFilterString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", errUnquotable
		}
	}
	if !strings.Contains(s, `"`) {
		return strconv.Quote(s), nil
	}
	if !strings.Contains(s, "`") {
		return "`" + s + "`", nil
	}
	return "", errUnquotable
}

// appChecksFilter returns the server-side filter that selects the app
// checks of the servers registered under service (of every bridge: the
// caller keeps those of the services it owns).
func appChecksFilter(service string) (string, error) {
	q, err := quoteFilterString(service)
	if err != nil {
		return "", err
	}
	return `Name == "` + AppCheckName + `" and ServiceName == ` + q, nil
}

// ownedFilter returns the server-side filter that selects the services a
// bridge with bridgeID owns.
func ownedFilter(bridgeID string) (string, error) {
	q, err := quoteFilterString(bridgeID)
	if err != nil {
		return "", err
	}
	return `Meta["` + MetaManagedBy + `"] == "` + ManagedByValue + `" and Meta["` + MetaBridgeID + `"] == ` + q, nil
}
