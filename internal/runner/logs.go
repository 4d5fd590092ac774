package runner

import (
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
)

// changeExamples is how many addresses of each kind the per-round summary
// lists.
const changeExamples = 5

// logChanges logs what a round's end changed: one info line with the
// counts and the first changeExamples addresses added and removed, in
// address order (a first round that finds 10,000 servers is one line, not
// 10,000), then each endpoint at debug with its fields. A round that
// changed nothing logs nothing here ("round complete" at debug has its
// counts); servers added as they arrived were logged then.
func (r *runner) logChanges(p plan.Plan) {
	r.logChange(r.round, p.Added, p.Removed, r.state.Len(), false)
}

// logChange logs one change of the desired set in round: at a round's end,
// or early (adds as they arrive: the lines say early=true) as arrivals are
// handed to the sinks; held is how many servers the state holds after it.
func (r *runner) logChange(round uint64, added, removed []endpoint.Endpoint, held int, early bool) {
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	ev := r.log.Info().Uint64("round", round).Int("added", len(added)).Int("removed", len(removed)).Int("held", held)
	if early {
		ev = ev.Bool("early", true)
	}
	if len(added) > 0 {
		ev = ev.Strs("added_first", firstAddrs(added))
	}
	if len(removed) > 0 {
		ev = ev.Strs("removed_first", firstAddrs(removed))
	}
	ev.Msg("endpoints changed")
	for _, e := range added {
		if ev := r.log.Debug(); ev != nil { // nil when debug is off: no fields built
			ev = logEndpoint(ev, e).Uint64("round", round)
			if early {
				ev = ev.Bool("early", true)
			}
			ev.Msg("endpoint added")
		}
	}
	for _, e := range removed {
		if ev := r.log.Debug(); ev != nil {
			logEndpoint(ev, e).Uint64("round", round).Time("last_seen", e.LastSeen).Msg("endpoint removed")
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
