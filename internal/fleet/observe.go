package fleet

import (
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// ObservationOf is bridge's observation of snapshot s: each server with a
// port once, by address (IPv4-mapped addresses unmapped), on segment, or
// when segment is empty on the network it was seen on.
func ObservationOf(bridge, segment string, s endpoint.Snapshot) observation.Observation {
	o := observation.Observation{Bridge: bridge, Entries: make([]observation.Entry, 0, len(s.Endpoints))}
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		seg := segment
		if seg == "" && e.Network.IsValid() {
			seg = e.Network.String()
		}
		o.Entries = append(o.Entries, observation.Entry{Addr: netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port()), Segment: seg})
	}
	slices.SortStableFunc(o.Entries, func(a, b observation.Entry) int { return a.Addr.Compare(b.Addr) }) // the first of a server wins
	o.Entries = slices.CompactFunc(o.Entries, func(a, b observation.Entry) bool { return a.Addr == b.Addr })
	return o
}
