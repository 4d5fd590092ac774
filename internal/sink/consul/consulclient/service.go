package consulclient

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Service is what matters of one registered service to decide whether it
// must be written again: the agent holds it as such (agent mode), the
// catalog on a node (catalog mode).
type Service struct {
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

// Equal reports whether r and o say the same.
func (r Service) Equal(o Service) bool {
	return r.Name == o.Name && r.Address == o.Address && r.Port == o.Port &&
		slices.Equal(r.Tags, o.Tags) && maps.Equal(r.Meta, o.Meta)
}

// Endpoint reconstructs the endpoint a service describes (for Diff.Removed).
func (r Service) Endpoint() endpoint.Endpoint {
	var e endpoint.Endpoint
	if a, err := netip.ParseAddr(r.Address); err == nil && r.Port > 0 && r.Port <= 65535 {
		e.Addr = netip.AddrPortFrom(a, uint16(r.Port))
	}
	if s, err := netip.ParseAddrPort(r.Meta[MetaSourceAddress]); err == nil {
		e.Source = s
	}
	e.Interface = r.Meta[MetaInterface]
	return e
}
