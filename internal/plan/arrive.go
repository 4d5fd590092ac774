package plan

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is the planner's half of adds as they arrive: a round in
// progress reports each new server at once, and Arrive adds it to the
// state before the round's end.

// Arrive adds to prev the servers of seen that it does not hold, as a
// round in progress reports them (their first valid reply of the round),
// and returns the new state and those endpoints, sorted by
// endpoint.Compare. An endpoint arrives with FirstSeen = LastSeen =
// Seen.At (at when that is zero) and no miss.
//
// A server prev already holds is left as it is, even one that missed
// rounds or whose removal the guard holds: it is in the snapshot already,
// and the round's end (Next) refreshes it and resets its misses. So is a
// Seen with an invalid Addr; for duplicate Addr the first entry wins.
// Nothing is ever removed here: removals and the hysteresis stay with
// Next, at the round's end.
//
// Next then finds an arrived endpoint known: the round's Plan lists it in
// Kept (with its FirstSeen), not in Added, so no add is reported twice.
// An arrived endpoint is not established (it counts for the removal guard
// once MissedRounds complete rounds in a row saw it).
//
// New endpoints beyond lim are refused and counted in the Refused
// returned, as Next refuses them. prev is not modified; when nothing is
// new, Arrive returns prev itself and no endpoints.
func Arrive(prev State, seen []Seen, at time.Time, lim Limits) (State, []endpoint.Endpoint, Refused) {
	var next map[netip.AddrPort]entry
	var added []endpoint.Endpoint
	adm := newAdmitter(lim, prev.held)
	for _, s := range seen {
		if !s.Addr.IsValid() {
			continue
		}
		if _, known := prev.held[s.Addr]; known {
			continue
		}
		if _, dup := next[s.Addr]; dup {
			continue
		}
		if !adm.admit(s.Source) {
			continue
		}
		if next == nil {
			next = make(map[netip.AddrPort]entry, len(prev.held)+len(seen))
			maps.Copy(next, prev.held)
		}
		t := s.At
		if t.IsZero() {
			t = at
		}
		e := entry{source: s.Source, iface: s.Interface, network: s.Network, firstSeen: t, lastSeen: t}
		next[s.Addr] = e
		added = append(added, e.endpoint(s.Addr))
	}
	if next == nil {
		return prev, nil, adm.refused
	}
	slices.SortFunc(added, endpoint.Compare)
	return State{held: next, holdSince: prev.holdSince}, added, adm.refused
}

// Snapshot returns the desired set the state stands for, stamped with
// round and at: every endpoint it holds (those missing rounds and those
// the removal guard holds included), as the last Plan's Snapshot lists
// them plus what arrived since.
func (s State) Snapshot(round uint64, at time.Time) endpoint.Snapshot {
	return endpoint.Snapshot{Round: round, At: at, Endpoints: s.Endpoints()}
}
