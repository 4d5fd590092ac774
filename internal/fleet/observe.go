package fleet

import (
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// ObservationOf is bridge's observation of snapshot s: each server with a
// port once, by address (IPv4-mapped addresses unmapped), on segment, or
// when segment is empty on the network it was seen on, with its app
// check's verdict (Check.State, and Check.Output made valid UTF-8 and cut
// to observation.MaxOutputLen bytes). A server the bridge's removal guard
// holds (Endpoint.Held) is left out: it stopped answering, and the
// fleet's leader judges whether that is a mass silence (guard.go).
func ObservationOf(bridge, segment string, s endpoint.Snapshot) observation.Observation {
	o := observation.Observation{Bridge: bridge, Entries: make([]observation.Entry, 0, len(s.Endpoints))}
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 || e.Held {
			// A server the bridge's own removal guard holds stopped
			// answering: the leader judges the silence fleet-wide.
			continue
		}
		seg := segment
		if seg == "" && e.Network.IsValid() {
			seg = e.Network.String()
		}
		o.Entries = append(o.Entries, observation.Entry{Addr: netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port()), Segment: seg,
			Health: e.Check.State, Output: clampOutput(e.Check.Output)})
	}
	slices.SortStableFunc(o.Entries, func(a, b observation.Entry) int { return a.Addr.Compare(b.Addr) }) // the first of a server wins
	o.Entries = slices.CompactFunc(o.Entries, func(a, b observation.Entry) bool { return a.Addr == b.Addr })
	return o
}

// clampOutput is a check's output as an observation carries it: valid
// UTF-8 (an HTTP reason phrase is the server's bytes) of at most
// observation.MaxOutputLen bytes, cut at a character's start.
func clampOutput(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= observation.MaxOutputLen {
		return s
	}
	n := observation.MaxOutputLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
