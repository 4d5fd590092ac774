package plan

import "net/netip"

// This file is the limits: what a State may hold, whatever the rounds
// report (Next and Arrive admit new endpoints through an admitter).

// Limits bound the endpoints a State holds, whatever the rounds report: a
// new endpoint beyond one is refused (counted in Plan.Refused), while the
// endpoints already held stay. Zero fields are no limit.
type Limits struct {
	// MaxServers caps the endpoints held in all.
	MaxServers int
	// MaxPerSource caps the endpoints held whose reply came from one source
	// IP address.
	MaxPerSource int
}

// Refused counts the new endpoints a round (or Arrive) refused at a limit.
type Refused struct {
	MaxServers   int // the state held Limits.MaxServers endpoints
	MaxPerSource int // their source held Limits.MaxPerSource endpoints
}

// Total is the sum of the counts.
func (r Refused) Total() int { return r.MaxServers + r.MaxPerSource }

// admitter applies Limits to the new endpoints of one round or batch.
type admitter struct {
	lim       Limits
	held      int // endpoints held, those admitted so far included
	perSource map[netip.Addr]int
	base      map[netip.AddrPort]entry // what is held before any admission; counted into perSource on first use
	refused   Refused
}

// newAdmitter admits against held, the endpoints held before any of the
// new ones (the caller adds the admitted ones to it only after admit).
func newAdmitter(lim Limits, held map[netip.AddrPort]entry) *admitter {
	return &admitter{lim: lim, held: len(held), base: held}
}

// admit reports whether a new endpoint whose reply came from src may be
// held, and counts it when so.
func (a *admitter) admit(src netip.AddrPort) bool {
	if a.lim.MaxServers > 0 && a.held >= a.lim.MaxServers {
		a.refused.MaxServers++
		return false
	}
	ip := src.Addr().Unmap()
	if a.lim.MaxPerSource > 0 {
		if a.perSource == nil {
			a.perSource = make(map[netip.Addr]int)
			for _, e := range a.base {
				a.perSource[e.source.Addr().Unmap()]++
			}
		}
		if a.perSource[ip] >= a.lim.MaxPerSource {
			a.refused.MaxPerSource++
			return false
		}
		a.perSource[ip]++
	}
	a.held++
	return true
}
