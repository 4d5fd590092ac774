package plan

import (
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Info is what the planner knows of one held endpoint, for `bridge
// explain`: how it was seen, how many complete rounds it missed, whether
// it counts for the removal guard, and the rule that removes it next.
type Info struct {
	Endpoint endpoint.Endpoint
	// Misses counts the complete rounds in a row that did not see it.
	Misses int
	// Established: seen in MissedRounds complete rounds in a row once;
	// only established endpoints count for the removal guard.
	Established bool
	// Held: its removal is due and the removal guard holds it (since the
	// episode's first round, HoldSince).
	Held      bool
	HoldSince uint64
	// RoundsLeft is how many more complete rounds without a reply remove
	// it (the guard's hold included when held).
	RoundsLeft int
}

// Lookup returns what s knows of the endpoint at addr, under cfg's
// MissedRounds and GuardRounds; ok is false when s does not hold it.
func (s State) Lookup(cfg Config, addr netip.AddrPort) (Info, bool) {
	e, ok := s.held[addr]
	if !ok {
		return Info{}, false
	}
	missed := max(cfg.MissedRounds, 1)
	in := Info{Endpoint: e.endpoint(addr), Misses: e.misses, Established: e.established}
	if e.misses >= missed {
		// Past MissedRounds only a held removal stays in the state.
		in.Held, in.HoldSince = true, s.holdSince
		in.RoundsLeft = max(missed+cfg.GuardRounds-e.misses, 1)
		return in, true
	}
	in.RoundsLeft = missed - e.misses
	return in, true
}

// Lookups returns Lookup of every endpoint s holds whose address is ip
// (any port), sorted by endpoint.Compare.
func (s State) Lookups(cfg Config, ip netip.Addr) []Info {
	var out []Info
	for _, e := range s.Endpoints() {
		if e.Addr.Addr().Unmap() != ip.Unmap() {
			continue
		}
		if in, ok := s.Lookup(cfg, e.Addr); ok {
			out = append(out, in)
		}
	}
	return out
}
