package runner

import (
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
)

// changeExamples is how many addresses of each kind the per-round summary
// lists.
const changeExamples = 5

// logChanges logs what a round changed: one info line with the counts and
// the first changeExamples addresses added and removed, in address order
// (a first round that finds 10,000 servers is one line, not 10,000), then
// each endpoint at debug with its fields. A round that changed nothing
// logs nothing here ("round complete" at debug has its counts).
func (r *runner) logChanges(p plan.Plan) {
	if len(p.Added) == 0 && len(p.Removed) == 0 {
		return
	}
	ev := r.log.Info().Uint64("round", r.round).Int("added", len(p.Added)).Int("removed", len(p.Removed)).Int("held", r.state.Len())
	if len(p.Added) > 0 {
		ev = ev.Strs("added_first", firstAddrs(p.Added))
	}
	if len(p.Removed) > 0 {
		ev = ev.Strs("removed_first", firstAddrs(p.Removed))
	}
	ev.Msg("endpoints changed")
	for _, e := range p.Added {
		if ev := r.log.Debug(); ev != nil { // nil when debug is off: no fields built
			logEndpoint(ev, e).Uint64("round", r.round).Msg("endpoint added")
		}
	}
	for _, e := range p.Removed {
		if ev := r.log.Debug(); ev != nil {
			logEndpoint(ev, e).Uint64("round", r.round).Time("last_seen", e.LastSeen).Msg("endpoint removed")
		}
	}
}

// firstAddrs returns the "ip:port" of the first changeExamples of eps.
func firstAddrs(eps []endpoint.Endpoint) []string {
	out := make([]string, 0, min(len(eps), changeExamples))
	for _, e := range eps[:min(len(eps), changeExamples)] {
		out = append(out, e.Addr.String())
	}
	return out
}

func logEndpoint(ev *zerolog.Event, e endpoint.Endpoint) *zerolog.Event {
	ev = ev.Str("ip", e.Addr.Addr().String()).Uint16("port", e.Addr.Port()).Str("interface", e.Interface)
	if e.Source.IsValid() {
		ev = ev.Str("source", e.Source.String())
	} else {
		ev = ev.Str("source", "")
	}
	return ev
}
