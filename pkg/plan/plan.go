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
//     Observation.At when that is unknown);
//   - seen again, it is kept unchanged: LastSeen, Source and Interface are
//     refreshed and its miss count is reset;
//   - not seen in a complete round, its miss count grows by one (plus the
//     rounds the loop skipped since the previous one, Observation.Skipped),
//     and it is removed when the count reaches Config.MissedRounds;
//   - a failed round (Observation.Failed) changes nothing: no miss is
//     counted and nothing is added;
//   - nothing is removed before the first complete round (a State restored
//     with Seed keeps its endpoints through failed rounds at start-up).
package plan

import (
	"net/netip"
	"slices"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/endpoint"
)

// Config tunes the planner.
type Config struct {
	// MissedRounds is how many consecutive complete rounds without a reply
	// remove an endpoint. Values below 1 are treated as 1.
	MissedRounds int
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
}

func newEntry(e endpoint.Endpoint) entry {
	return entry{source: e.Source, iface: e.Interface, network: e.Network, firstSeen: e.FirstSeen, lastSeen: e.LastSeen}
}

func (e entry) endpoint(addr netip.AddrPort) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: addr, Source: e.source, Interface: e.iface, Network: e.network, FirstSeen: e.firstSeen, LastSeen: e.lastSeen}
}

// State is what the planner knows between rounds. The zero value is the
// state at start-up. A State is immutable: Next never modifies the State it
// is given, so old States stay valid and may be shared between goroutines.
type State struct {
	held     map[netip.AddrPort]entry
	complete bool
}

// Seed returns a start-up State holding eps (for example restored from a
// previous run), each with no misses and no complete round yet. Later
// duplicates of an Addr replace earlier ones; invalid Addrs are ignored.
func Seed(eps []endpoint.Endpoint) State {
	s := State{held: make(map[netip.AddrPort]entry, len(eps))}
	for _, e := range eps {
		if e.Addr.IsValid() {
			s.held[e.Addr] = newEntry(e)
		}
	}
	return s
}

// Len reports how many endpoints the state holds.
func (s State) Len() int { return len(s.held) }

// Complete reports whether at least one complete (non-failed) round has been
// observed.
func (s State) Complete() bool { return s.complete }

// Endpoints returns the held endpoints sorted by endpoint.Compare.
func (s State) Endpoints() []endpoint.Endpoint {
	out := make([]endpoint.Endpoint, 0, len(s.held))
	for k, e := range s.held {
		out = append(out, e.endpoint(k))
	}
	slices.SortFunc(out, endpoint.Compare)
	return out
}

// Misses reports the consecutive missed complete rounds of addr and whether
// the state holds it.
func (s State) Misses(addr netip.AddrPort) (int, bool) {
	e, ok := s.held[addr]
	return e.misses, ok
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
	// Removed are endpoints that reached MissedRounds, with their last known
	// fields.
	Removed []endpoint.Endpoint
	// Kept are endpoints still held: seen again this round, or missing
	// fewer than MissedRounds rounds. For a failed round it is every held
	// endpoint.
	Kept []endpoint.Endpoint
}

// Empty reports whether the plan adds and removes nothing.
func (p Plan) Empty() bool { return len(p.Added) == 0 && len(p.Removed) == 0 }

// Snapshot returns the desired set after the plan: Added and Kept,
// sorted, stamped with the plan's round and time.
func (p Plan) Snapshot() endpoint.Snapshot {
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

// Op values.
const (
	OpAdd    = "add"
	OpRemove = "remove"
	OpNoop   = "noop"
)

// Op is one line of --dry-run output.
type Op struct {
	Op            string `json:"op"` // OpAdd, OpRemove or OpNoop
	IP            string `json:"ip"`
	Port          uint16 `json:"port"`
	SourceAddress string `json:"source_address"`
	Interface     string `json:"interface"`
	Round         uint64 `json:"round"`
	Sink          string `json:"sink,omitempty"`
}

// NewOp describes e as an operation op in round.
func NewOp(op string, e endpoint.Endpoint, round uint64) Op {
	o := Op{Op: op, Port: e.Addr.Port(), Interface: e.Interface, Round: round}
	if e.Addr.IsValid() {
		o.IP = e.Addr.Addr().String()
	}
	if e.Source.IsValid() {
		o.SourceAddress = e.Source.String()
	}
	return o
}

// Ops lists the plan as operations: adds, then removes, then one noop per
// unchanged endpoint. A failed round proposes nothing and returns nil.
func (p Plan) Ops() []Op {
	if p.Failed {
		return nil
	}
	ops := make([]Op, 0, len(p.Added)+len(p.Removed)+len(p.Kept))
	for _, e := range p.Added {
		ops = append(ops, NewOp(OpAdd, e, p.Round))
	}
	for _, e := range p.Removed {
		ops = append(ops, NewOp(OpRemove, e, p.Round))
	}
	for _, e := range p.Kept {
		ops = append(ops, NewOp(OpNoop, e, p.Round))
	}
	return ops
}

// Next applies obs to prev and returns the new state and the plan. prev is
// not modified.
func Next(cfg Config, prev State, obs Observation) (State, Plan) {
	missed := max(cfg.MissedRounds, 1)
	p := Plan{Round: obs.Round, At: obs.At, Failed: obs.Failed}
	if obs.Failed {
		p.Kept = prev.Endpoints()
		// State is never mutated in place, so sharing the map is safe.
		return prev, p
	}

	next := State{held: make(map[netip.AddrPort]entry, max(len(prev.held), len(obs.Seen))), complete: true}
	p.Kept = make([]endpoint.Endpoint, 0, len(prev.held))
	for _, s := range obs.Seen {
		if !s.Addr.IsValid() {
			continue
		}
		if _, dup := next.held[s.Addr]; dup {
			continue
		}
		old, known := prev.held[s.Addr]
		at := s.At
		if at.IsZero() {
			at = obs.At
		}
		first := at
		if known {
			first = old.firstSeen
		}
		e := entry{source: s.Source, iface: s.Interface, network: s.Network, firstSeen: first, lastSeen: at}
		next.held[s.Addr] = e
		if known {
			p.Kept = append(p.Kept, e.endpoint(s.Addr))
		} else {
			p.Added = append(p.Added, e.endpoint(s.Addr))
		}
	}
	for k, old := range prev.held {
		if _, seen := next.held[k]; seen {
			continue
		}
		old.misses += 1 + max(obs.Skipped, 0)
		if old.misses >= missed {
			p.Removed = append(p.Removed, old.endpoint(k))
			continue
		}
		next.held[k] = old
		p.Kept = append(p.Kept, old.endpoint(k))
	}
	slices.SortFunc(p.Added, endpoint.Compare)
	slices.SortFunc(p.Removed, endpoint.Compare)
	slices.SortFunc(p.Kept, endpoint.Compare)
	return next, p
}
