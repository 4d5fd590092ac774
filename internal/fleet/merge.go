package fleet

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// Observed is one server as the merged observations describe it.
type Observed struct {
	Segments []string // sorted, unique
	Bridges  int      // live bridges that observe it
	// Health is the fleet's verdict from the observers' app checks: ready
	// when at least one observer's check passes, failing when every
	// observer that has a verdict says it fails, pending otherwise.
	Health endpoint.Health
}

// Merge folds the observations of live bridges into one desired set: a
// server is wanted while at least one bridge observes it. An observation
// listing a server twice (in a row, as sorted observations do) counts once.
func Merge(obs []observation.Observation) map[netip.AddrPort]Observed {
	out := map[netip.AddrPort]Observed{}
	for _, o := range obs {
		for i, e := range o.Entries {
			if i > 0 && o.Entries[i-1].Addr == e.Addr {
				continue
			}
			d := out[e.Addr]
			d.Bridges++
			if e.Segment != "" && !slices.Contains(d.Segments, e.Segment) {
				d.Segments = append(d.Segments, e.Segment)
			}
			out[e.Addr] = d
		}
	}
	for _, d := range out {
		slices.Sort(d.Segments)
	}
	return out
}

// Observations are the fleet's observations as a Store read them.
type Observations struct {
	// ByBridge holds the observations that decoded, by bridge ID.
	ByBridge map[string]observation.Observation
	// Holders holds the holder (a session, a lease) of each bridge's keys,
	// decoded or not; a bridge whose keys have no holder is not live.
	Holders map[string]string
	// Bad are the bridges whose keys did not decode, sorted by bridge.
	Bad []Bad
	// Index is the store's index of this read, for the next blocking read.
	Index uint64
	// Reset: the index went backwards (a snapshot restore, a new cluster
	// at the same addresses).
	Reset bool
	// Wake, when set, is when the observations change without a write to
	// the store (a stand-in of the store's own expires): the leader reads
	// them again then at the latest.
	Wake time.Time
}

// Bad is a bridge whose keys do not decode.
type Bad struct {
	Bridge, Key, Holder string
	Revision            uint64 // the store's revision of the newest bad key
	Err                 error
}

// List is the observations in the order of their bridge IDs.
func (o Observations) List() []observation.Observation {
	out := make([]observation.Observation, 0, len(o.ByBridge))
	for _, b := range slices.Sorted(maps.Keys(o.ByBridge)) {
		out = append(out, o.ByBridge[b])
	}
	return out
}
