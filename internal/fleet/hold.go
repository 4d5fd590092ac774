package fleet

import (
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// Hold is the leader's hold on the life cycle: until it ends, a missing
// observation is unknown rather than unobserved, so nothing turns
// unobserved or is removed. The zero value holds nothing.
type Hold struct{ until time.Time }

// Extend holds until now+d at least.
func (h *Hold) Extend(now time.Time, d time.Duration) {
	if until := now.Add(d); until.After(h.until) {
		h.until = until
	}
}

// Holds reports whether the hold lasts at now.
func (h Hold) Holds(now time.Time) bool { return now.Before(h.until) }

// Until is when the hold ends.
func (h Hold) Until() time.Time { return h.until }

// Standins keeps the last observation of each bridge that decoded, so that
// one overwritten key does not cost the bridge's servers while the bridge
// repairs it (it reads its keys back every round). The zero value is ready.
type Standins struct {
	good map[string]standin
}

type standin struct {
	obs      observation.Observation
	holder   string
	badSince time.Time // zero while the keys decode
	warned   uint64    // revision of the bad key last reported
}

// Apply records the observations of obs that decoded and stands the last
// good observation in (in obs.ByBridge) for a bridge whose keys do not
// decode, for as long as the holder of its keys is the one that published
// it and for grace at most: the owner rewrites its keys within a round. It
// returns the bad observations not reported before (each bad key is
// reported once per revision), and forgets the bridges whose keys are gone.
func (s *Standins) Apply(obs Observations, now time.Time, grace time.Duration) []Bad {
	if s.good == nil {
		s.good = map[string]standin{}
	}
	for b, o := range obs.ByBridge {
		s.good[b] = standin{obs: o, holder: obs.Holders[b]}
	}
	var fresh []Bad
	for _, bad := range obs.Bad {
		g, ok := s.good[bad.Bridge]
		if bad.Revision != g.warned {
			fresh = append(fresh, bad)
			g.warned = bad.Revision
			s.good[bad.Bridge] = g
		}
		if !ok || g.holder != bad.Holder {
			continue
		}
		if g.badSince.IsZero() {
			g.badSince = now
			s.good[bad.Bridge] = g
		}
		if now.Sub(g.badSince) <= grace {
			obs.ByBridge[bad.Bridge] = g.obs
		}
	}
	for b := range s.good {
		if _, ok := obs.Holders[b]; !ok {
			delete(s.good, b) // its keys are gone: its holder ended
		}
	}
	return fresh
}
