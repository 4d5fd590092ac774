// Package endpoint holds the value types shared by the planner and the sinks:
// a discovered Django server as the registry should see it, and a snapshot of
// the whole desired set at the end of a round.
//
// It depends on nothing but the standard library, so sinks never learn about
// sockets and discovery never learns about registries.
package endpoint

import (
	"net/netip"
	"slices"
	"time"
)

// Endpoint is one server the bridge believes is alive. Addr is the identity
// (dedupe and diff key); the other fields describe how it was seen.
type Endpoint struct {
	// Addr is the address and port to register (after the address policy and
	// default port were applied).
	Addr netip.AddrPort `json:"-"`
	// Source is the UDP source address the reply came from.
	Source netip.AddrPort `json:"-"`
	// Interface is the name of the local interface the reply arrived on
	// ("" when unknown).
	Interface string `json:"interface"`
	// Network is the network of that interface: the LAN segment the server
	// was seen on (invalid when unknown).
	Network netip.Prefix `json:"-"`
	// FirstSeen is when the bridge first saw this endpoint in the current
	// lifetime of the process; LastSeen when it last answered.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Check is the app check's verdict (health.go); its zero value is
	// Ready, as every endpoint is when no app check is configured.
	Check Check `json:"-"`
	// Held marks an endpoint unseen during a removal guard episode: the
	// guard holds its removal (it stopped answering for missed_rounds
	// rounds in a mass silence), or it is due next round and would join
	// the hold. A fleet's bridge does not publish it as observed: the
	// fleet's leader judges the silence fleet-wide.
	Held bool `json:"-"`
}

// Compare orders endpoints by address then port, for deterministic output.
func Compare(a, b Endpoint) int { return a.Addr.Compare(b.Addr) }

// Snapshot is the complete desired set after one completed round. Sinks bring
// their registry in line with the latest snapshot they were given; a sink that
// falls behind skips straight to the newest one.
type Snapshot struct {
	// Round is the number of the round that produced it (1-based).
	Round uint64
	// At is when the round completed.
	At time.Time
	// Endpoints is sorted by Compare and holds no duplicate Addr. Sinks
	// share it and must not modify it.
	Endpoints []Endpoint
}

// Sorted returns a copy of eps sorted by Compare.
func Sorted(eps []Endpoint) []Endpoint {
	out := slices.Clone(eps)
	slices.SortFunc(out, Compare)
	return out
}

// Diff is what it takes to go from one set of endpoints to another.
type Diff struct {
	Added   []Endpoint
	Removed []Endpoint
	// Changed are endpoints present on both sides whose Check.State
	// differs (as the new side holds them): health transitions.
	Changed []Endpoint
	// Unchanged counts endpoints present on both sides (Changed
	// included).
	Unchanged int
}

// Empty reports whether the diff changes nothing: no add, no removal, no
// health transition.
func (d Diff) Empty() bool { return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0 }

// Between computes the diff from old to new, both sorted by Compare with no
// duplicate Addr (as Snapshot.Endpoints are), in one merge walk without maps.
// An endpoint present on both sides counts as unchanged even if its other
// fields differ; when its Check.State differs it is also listed in Changed
// (as new holds it). Added, Removed and Changed come out sorted.
func Between(old, new []Endpoint) Diff {
	var d Diff
	i, j := 0, 0
	for i < len(old) && j < len(new) {
		switch c := Compare(old[i], new[j]); {
		case c < 0:
			d.Removed = append(d.Removed, old[i])
			i++
		case c > 0:
			d.Added = append(d.Added, new[j])
			j++
		default:
			if old[i].Check.State != new[j].Check.State {
				d.Changed = append(d.Changed, new[j])
			}
			d.Unchanged++
			i++
			j++
		}
	}
	d.Removed = append(d.Removed, old[i:]...)
	d.Added = append(d.Added, new[j:]...)
	return d
}
