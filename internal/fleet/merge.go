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
	// Health is the fleet's verdict from the observers' app checks (see
	// Merge): Ready when at least one observer says Ready, else Failing
	// when at least one says Failing, else Pending. A fleet without app
	// checks is Ready throughout.
	Health endpoint.Health
	// Output is the check output that goes with Health: the first
	// non-empty Output, in the order of the observations, of the
	// observers whose verdict is Health ("" when none has one, and
	// always in a fleet without app checks).
	Output string
}

// rank orders verdicts for the merge: a Ready verdict outweighs a Failing
// one, which outweighs a Pending one.
func rank(h endpoint.Health) int {
	switch h {
	case endpoint.Ready:
		return 3
	case endpoint.Failing:
		return 2
	}
	return 1
}

// Merge folds the observations of live bridges into one desired set: a
// server is wanted while at least one bridge observes it. An observation
// listing a server twice (in a row, as sorted observations do) counts once.
//
// The fleet's verdict on a server's app check follows the rule:
// ready when at least one live observer's check passes, failing when every
// observer that has a verdict says it fails. An observer whose check is
// Pending (not yet checked, or still rising) has no verdict yet, so:
//
//	any observer Ready                      -> Ready
//	else any observer Failing               -> Failing
//	else (every observer Pending)           -> Pending
//
// Ready wins because each bridge checks from where it stands: a bridge
// that cannot reach the app port (a firewall between it and the server)
// must not take a server out that others reach. Consumers reach it from
// somewhere too, and a server is taken out only when no bridge reaches it.
// A bridge that runs no app check says Ready of every server it sees (its
// entries carry no verdict), so every bridge of a fleet should run the
// same app_check. Output is taken from the observers in the order of obs;
// Observations.List gives them by bridge ID, so every leader merges to the
// same Output.
func Merge(obs []observation.Observation) map[netip.AddrPort]Observed {
	out := map[netip.AddrPort]Observed{}
	for _, o := range obs {
		for i, e := range o.Entries {
			if i > 0 && o.Entries[i-1].Addr == e.Addr {
				continue
			}
			d := out[e.Addr]
			switch r := rank(e.Health); {
			case d.Bridges == 0 || r > rank(d.Health):
				d.Health, d.Output = e.Health, e.Output
			case r == rank(d.Health) && d.Output == "":
				d.Output = e.Output
			}
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
