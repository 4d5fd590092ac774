// Package plan is the bridge's pure planner: it turns the endpoints known so
// far and one discovery round's replies into the next known set and a Plan
// (adds, removes, unchanged).
//
// It has no clock, no I/O and no goroutines: time and round numbers come in
// with the Observation, so the hysteresis rules are tested as plain tables.
//
// Rules:
//   - an endpoint is added the first complete round it is seen
//     (FirstSeen = LastSeen = when its reply arrived, Seen.At, or
//     Observation.At when that is unknown), or earlier, as its first reply
//     of a round arrives (Arrive: adds as they arrive); the round's end
//     then finds it known and reports no add;
//   - seen again, it is kept unchanged: LastSeen, Source and Interface are
//     refreshed and its miss count is reset;
//   - not seen in a complete round, its miss count grows by one (plus the
//     rounds the loop skipped since the previous one, Observation.Skipped),
//     and it is removed when the count reaches Config.MissedRounds;
//   - a failed round (Observation.Failed) changes nothing: no miss is
//     counted and nothing is added;
//   - limits: a new endpoint is refused (Plan.Refused) when the state holds
//     Config.Limits.MaxServers endpoints, or MaxPerSource whose reply came
//     from its source IP; endpoints already held stay;
//   - established: an endpoint is established once MissedRounds complete
//     rounds in a row saw it; only established endpoints count for the
//     removal guard, so identities of a flood, or a server that came and
//     went, are removed when due and never hold the guard;
//   - the removal guard: when the removals due in a round (established
//     endpoints at or past MissedRounds misses, already held ones included)
//     together with the established endpoints due next round if they stay
//     unseen (MissedRounds-1 misses, at least 1: the guard's window) are at
//     least 2 and more than Config.MaxRemovalFraction of the
//     established endpoints known before the round, the due ones are held: kept
//     in the state and the snapshot (listed in Plan.Guard.Held), their
//     misses still counting, each until it has
//     missed Config.GuardRounds more complete rounds; a held removal stays
//     held for that long even if the others' servers answer meanwhile, and
//     an endpoint that answers simply stays. See Guard.
package plan

import (
	"net/netip"
	"slices"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Config tunes the planner.
type Config struct {
	// MissedRounds is how many consecutive complete rounds without a reply
	// remove an endpoint. Values below 1 are treated as 1.
	MissedRounds int
	// MaxRemovalFraction and GuardRounds tune the removal guard: a round
	// whose due removals are at least 2 and more than MaxRemovalFraction
	// of the endpoints known before it holds them for GuardRounds more
	// rounds. A fraction of 1 or more, or GuardRounds 0, turns the guard
	// off (the zero Config has it off).
	MaxRemovalFraction float64
	GuardRounds        int
	// Limits bound what the state holds.
	Limits Limits
}

// Seen is one server that answered in a round, as the planner needs it.
type Seen struct {
	// Addr is the address to register (identity of the endpoint).
	Addr netip.AddrPort
	// Source is the UDP source address of the reply.
	Source netip.AddrPort
	// Interface is the local interface the reply arrived on ("" if unknown)
	// and Network its network.
	Interface string
	Network   netip.Prefix
	// At is when its first reply of the round arrived; zero means the
	// Observation's At.
	At time.Time
}

// Observation is the outcome of one discovery round.
type Observation struct {
	// Round is the 1-based round number.
	Round uint64
	// At is when the round completed.
	At time.Time
	// Failed marks a round whose probes could not be sent; it changes
	// nothing.
	Failed bool
	// Seen lists the servers that answered. Entries with an invalid Addr are
	// ignored; for duplicate Addr the first entry wins.
	Seen []Seen
	// Skipped counts the rounds that should have run since the previous
	// one but did not (the process was paused or starved). Each counts as
	// a missed round for every endpoint not seen in this one, so that what
	// the planner holds after a pause is what a fresh round saw plus only
	// the hysteresis that time allows.
	Skipped int
}

// entry is a held endpoint without its Addr (the map key), which keeps the
// value small enough to be stored inline in the map.
type entry struct {
	source    netip.AddrPort
	iface     string
	network   netip.Prefix
	firstSeen time.Time
	lastSeen  time.Time
	misses    int
	// streak counts the complete rounds in a row that saw the endpoint
	// until it is established: seen in MissedRounds of them. Only
	// established endpoints count for the removal guard.
	streak      int32
	established bool
	// guarded is set while the removal guard holds the endpoint's
	// removal (a seen endpoint's entry is new, so it is clear).
	guarded bool
}

// seenEntry is the entry of a server seen in a round that completed at
// roundAt (its reply's time when known).
func seenEntry(s Seen, roundAt time.Time) entry {
	at := s.At
	if at.IsZero() {
		at = roundAt
	}
	return entry{source: s.Source, iface: s.Interface, network: s.Network, firstSeen: at, lastSeen: at}
}

// seenAgain returns e refreshed by a complete round that saw it.
func (e entry) seenAgain(missed int) entry {
	if !e.established {
		e.streak++
		e.established = int(e.streak) >= missed
	}
	return e
}

func (e entry) endpoint(addr netip.AddrPort) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: addr, Source: e.source, Interface: e.iface, Network: e.network, FirstSeen: e.firstSeen, LastSeen: e.lastSeen, Held: e.guarded}
}

// State is what the planner knows between rounds. The zero value is the
// state at start-up. A State is immutable: Next never modifies the State it
// is given, so old States stay valid and may be shared between goroutines.
type State struct {
	held map[netip.AddrPort]entry
	// holdSince is the round the current removal-guard episode began, 0
	// when no removal is held.
	holdSince uint64
}

// Len reports how many endpoints the state holds.
func (s State) Len() int { return len(s.held) }

// Endpoints returns the held endpoints sorted by endpoint.Compare.
func (s State) Endpoints() []endpoint.Endpoint {
	out := make([]endpoint.Endpoint, 0, len(s.held))
	for k, e := range s.held {
		out = append(out, e.endpoint(k))
	}
	slices.SortFunc(out, endpoint.Compare)
	return out
}

// Plan is what one round changes. Added, Removed and Kept are sorted by
// endpoint.Compare and disjoint. (endpoint.Diff, what a sink changed, uses
// the same words; its Unchanged is a count.)
type Plan struct {
	Round  uint64
	At     time.Time
	Failed bool
	// Added are endpoints seen for the first time (or again after removal).
	Added []endpoint.Endpoint
	// Removed are endpoints that reached MissedRounds (and, when the
	// removal guard held them, GuardRounds more), with their last known
	// fields.
	Removed []endpoint.Endpoint
	// Kept are endpoints still held: seen again this round, missing
	// fewer than MissedRounds rounds, or held by the removal guard. For a
	// failed round it is every held endpoint.
	Kept []endpoint.Endpoint
	// Guard is what the removal guard did this round.
	Guard Guard
	// Refused counts the new endpoints refused at Config.Limits.
	Refused Refused
}

// Snapshot returns the desired set after the plan: Added and Kept,
// sorted, stamped with the plan's round and time. When one of them is
// empty (a first round, a round with no add) the snapshot shares the other
// list instead of copying it (10,000 endpoints are 1.5 MiB); neither the
// plan nor the snapshot is modified after it is made.
func (p Plan) Snapshot() endpoint.Snapshot {
	switch {
	case len(p.Added) == 0 && len(p.Kept) > 0:
		return endpoint.Snapshot{Round: p.Round, At: p.At, Endpoints: slices.Clip(p.Kept)}
	case len(p.Kept) == 0 && len(p.Added) > 0:
		return endpoint.Snapshot{Round: p.Round, At: p.At, Endpoints: slices.Clip(p.Added)}
	}
	// Both halves are sorted: merge them instead of sorting again.
	eps := make([]endpoint.Endpoint, 0, len(p.Added)+len(p.Kept))
	a, u := p.Added, p.Kept
	for len(a) > 0 && len(u) > 0 {
		if endpoint.Compare(a[0], u[0]) < 0 {
			eps, a = append(eps, a[0]), a[1:]
		} else {
			eps, u = append(eps, u[0]), u[1:]
		}
	}
	eps = append(append(eps, a...), u...)
	return endpoint.Snapshot{Round: p.Round, At: p.At, Endpoints: eps}
}

// Next applies obs to prev and returns the new state and the plan. prev is
// not modified.
func Next(cfg Config, prev State, obs Observation) (State, Plan) {
	missed := max(cfg.MissedRounds, 1)
	p := Plan{Round: obs.Round, At: obs.At, Failed: obs.Failed}
	if obs.Failed {
		p.Kept = prev.Endpoints()
		p.Guard = Guard{Known: len(prev.held), Since: prev.holdSince}
		for _, e := range p.Kept {
			// Outside an episode no entry stays past MissedRounds misses.
			if m := prev.held[e.Addr].misses; m >= missed {
				p.Guard.Held = append(p.Guard.Held, e)
				p.Guard.Release = minRelease(p.Guard.Release, obs.Round+uint64(missed+cfg.GuardRounds-m))
			}
		}
		// State is never mutated in place, so sharing the map is safe.
		return prev, p
	}

	size := max(len(prev.held), len(obs.Seen)) // every seen server may be new
	if m := cfg.Limits.MaxServers; m > 0 {
		size = min(size, max(m, len(prev.held))) // but at most MaxServers are held
	}
	next := State{held: make(map[netip.AddrPort]entry, size)}
	for _, e := range prev.held {
		if e.established {
			p.Guard.Known++
		}
	}
	p.Kept = make([]endpoint.Endpoint, 0, len(prev.held))
	// The known servers seen first; the new ones wait until the removals
	// are decided, so that the limits count only what stays held.
	var fresh []Seen
	var freshSeen map[netip.AddrPort]struct{}
	for _, s := range obs.Seen {
		if !s.Addr.IsValid() {
			continue
		}
		if _, dup := next.held[s.Addr]; dup {
			continue
		}
		old, known := prev.held[s.Addr]
		if !known {
			if freshSeen == nil {
				freshSeen = make(map[netip.AddrPort]struct{})
			}
			if _, dup := freshSeen[s.Addr]; !dup {
				freshSeen[s.Addr] = struct{}{}
				fresh = append(fresh, s)
			}
			continue
		}
		e := seenEntry(s, obs.At)
		e.firstSeen, e.streak, e.established = old.firstSeen, old.streak, old.established
		e = e.seenAgain(missed)
		next.held[s.Addr] = e
		if old.misses >= missed {
			p.Guard.Returned++
		}
		p.Kept = append(p.Kept, e.endpoint(s.Addr))
	}
	// Removals due this round, decided below once their number is known.
	// Only established endpoints are guarded: one that never answered
	// MissedRounds rounds in a row (a flood's identity, a server that came
	// and went) is removed when due, and counts neither way.
	// soon is the misses of a server due next round if it stays unseen:
	// the guard's window. A silence that begins while a round's replies
	// arrive reaches some servers a round later than others; counting
	// those due next round with the due ones makes it one episode.
	soon := max(missed-1, 1)
	var due, going []netip.AddrPort
	for k, old := range prev.held {
		if _, seen := next.held[k]; seen {
			continue
		}
		old.misses += 1 + max(obs.Skipped, 0)
		if !old.established {
			old.streak = 0
		}
		if old.misses >= missed {
			if !old.established {
				p.Removed = append(p.Removed, old.endpoint(k))
				continue
			}
			due = append(due, k)
			continue
		}
		if old.established && old.misses >= soon {
			p.Guard.Going++
			going = append(going, k)
		}
		next.held[k] = old
		p.Kept = append(p.Kept, old.endpoint(k))
	}
	p.Guard.Due = len(due)
	hold := len(due) > 0 && cfg.Exceeds(len(due)+p.Guard.Going, p.Guard.Known)
	for _, k := range due {
		e := prev.held[k]
		// Past MissedRounds an entry was held last round: a held removal
		// goes ahead only once confirmed, whatever the others do. Rounds
		// skipped by a pause count towards MissedRounds, never as a
		// confirmation: only rounds that ran confirm a held removal.
		wasHeld := e.misses >= missed
		if wasHeld {
			e.misses++
		} else {
			e.misses = missed
		}
		if (hold || wasHeld) && e.misses < missed+cfg.GuardRounds {
			e.guarded = true
			next.held[k] = e
			p.Guard.Held = append(p.Guard.Held, e.endpoint(k))
			p.Guard.Release = minRelease(p.Guard.Release, obs.Round+uint64(missed+cfg.GuardRounds-e.misses))
			continue
		}
		if wasHeld {
			p.Guard.Released++
		}
		p.Removed = append(p.Removed, e.endpoint(k))
	}
	switch {
	case len(p.Guard.Held) > 0 && prev.holdSince == 0:
		next.holdSince, p.Guard.Started = obs.Round, true
	case len(p.Guard.Held) > 0:
		next.holdSince = prev.holdSince
	case prev.holdSince != 0:
		p.Guard.Ended = true
	}
	p.Guard.Since = next.holdSince
	if len(p.Guard.Held) > 0 && len(going) > 0 {
		// During an episode the servers due next round are unseen with
		// the held ones: marked Held too, so that a fleet's leader
		// counts them in the same silence (they are kept as before).
		for _, k := range going {
			e := next.held[k]
			e.guarded = true
			next.held[k] = e
		}
		for i, e := range p.Kept {
			if next.held[e.Addr].guarded {
				p.Kept[i].Held = true
			}
		}
	}
	p.Kept = append(p.Kept, p.Guard.Held...)
	// The new servers, against the limits of what stays held: a flood's
	// identities removed this round make room for this round's.
	adm := newAdmitter(cfg.Limits, next.held)
	for _, s := range fresh {
		if !adm.admit(s.Source) {
			continue
		}
		e := seenEntry(s, obs.At).seenAgain(missed)
		next.held[s.Addr] = e
		p.Added = append(p.Added, e.endpoint(s.Addr))
	}
	p.Refused = adm.refused
	slices.SortFunc(p.Added, endpoint.Compare)
	slices.SortFunc(p.Removed, endpoint.Compare)
	slices.SortFunc(p.Kept, endpoint.Compare)
	slices.SortFunc(p.Guard.Held, endpoint.Compare)
	return next, p
}
