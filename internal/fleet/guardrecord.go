package fleet

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// GuardHold is one server whose removal the fleet's removal guard holds.
type GuardHold struct {
	Key  string
	Addr netip.AddrPort
	// Until is when its hold ends (its confirmation, Confirm after it
	// was held): it goes ahead then if still unobserved.
	Until time.Time
}

// GuardReport is what the fleet's removal guard did in the leader's last
// plan, with what it takes to word it (bridge explain, /readyz).
type GuardReport struct {
	State  GuardState
	Config GuardConfig
	// DeregisterAfter is how long a released server stays unobserved
	// before it goes.
	DeregisterAfter time.Duration
	// Holds are the held servers (State.Held), sorted by address.
	Holds []GuardHold
}

// Reason spells the report for /readyz, "" when nothing is held.
func (r GuardReport) Reason(now time.Time) string {
	return r.State.Reason(now, r.Config.MaxFraction, r.Config.HeldReady)
}

// At lists the held servers at ip on port (0: any port).
func (r GuardReport) At(ip netip.Addr, port uint16) []GuardHold {
	ip = ip.Unmap()
	i, _ := slices.BinarySearchFunc(r.Holds, ip, func(h GuardHold, a netip.Addr) int { return h.Addr.Addr().Compare(a) })
	var out []GuardHold
	for _, h := range r.Holds[i:] {
		if h.Addr.Addr() != ip {
			break
		}
		if port == 0 || h.Addr.Port() == port {
			out = append(out, h)
		}
	}
	return out
}

// GuardRecord keeps the GuardReport of a leader's last plan for readers
// on other goroutines; it is safe for concurrent use. A sink keeps one
// across its terms of leadership and hands it to each term's Leader
// (Leader.Record), which empties it when the term ends: a bridge that
// does not lead has no report. The zero value is empty; a nil
// *GuardRecord keeps nothing.
type GuardRecord struct {
	last atomic.Pointer[GuardReport]
}

// Last returns the last report kept, false when there is none (this
// bridge does not lead, or its term has not planned yet).
func (r *GuardRecord) Last() (GuardReport, bool) {
	if r == nil {
		return GuardReport{}, false
	}
	p := r.last.Load()
	if p == nil {
		return GuardReport{}, false
	}
	return *p, true
}

// Keep stores rep as the last report. rep must not change afterwards:
// readers share it.
func (r *GuardRecord) Keep(rep GuardReport) {
	if r != nil {
		r.last.Store(&rep)
	}
}

// Clear forgets the last report.
func (r *GuardRecord) Clear() {
	if r != nil {
		r.last.Store(nil)
	}
}
