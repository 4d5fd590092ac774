package fleet

import (
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// Observer is one live bridge's observation of one server: its segment
// and its app check verdict.
type Observer struct {
	Bridge, Segment string
	Health          endpoint.Health
	Output          string
}

// ObserversOf lists the bridges whose decoded observations in obs hold
// addr (IPv4-mapped addresses unmapped, as observations spell them),
// sorted by bridge ID. Only live bridges' observations are in obs.
func ObserversOf(obs Observations, addr netip.AddrPort) []Observer {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	var out []Observer
	for _, o := range obs.List() {
		i, ok := slices.BinarySearchFunc(o.Entries, addr, func(e observation.Entry, a netip.AddrPort) int { return e.Addr.Compare(a) })
		if !ok {
			continue
		}
		e := o.Entries[i]
		out = append(out, Observer{Bridge: o.Bridge, Segment: e.Segment, Health: e.Health, Output: e.Output})
	}
	return out
}
