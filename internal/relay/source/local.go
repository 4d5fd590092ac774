package source

import (
	"fmt"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Local is the source of a bridge that relays its own servers (relay_source
// local: a bridge whose sinks are local, stdout, file or Consul agent
// mode): the ready servers of every snapshot the loop hands over. It is a
// runner.Inventory; its methods do not block.
type Local struct{ k *Keeper }

// NewLocal returns the Local source feeding k. k's Period should be a
// round (interval + timeout): a completed round refreshes the set.
func NewLocal(k *Keeper) *Local { return &Local{k: k} }

// Round records the snapshot of a completed round.
func (l *Local) Round(s endpoint.Snapshot) { l.k.Good(Ready(s.Endpoints)) }

// Arrived records a snapshot handed over between round ends (servers that
// just arrived, a health transition): the set changes at once.
func (l *Local) Arrived(s endpoint.Snapshot) { l.k.Good(Ready(s.Endpoints)) }

// Failed records a failed round: the set is kept, and ages.
func (l *Local) Failed(err error) { l.k.Failed(fmt.Errorf("discovery round: %w", err)) }

// Ready returns the addresses of the ready endpoints of eps (every
// endpoint without an app check; with one, those whose check passes, and
// those the removal guard holds as ready), as every sink calls them ready.
func Ready(eps []endpoint.Endpoint) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(eps))
	for _, e := range eps {
		if e.Check.State.IsReady() {
			out = append(out, e.Addr)
		}
	}
	return out
}
