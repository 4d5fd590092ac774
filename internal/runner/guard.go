package runner

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
)

// planConfig is the planner's configuration.
func (r *runner) planConfig() plan.Config {
	return plan.Config{
		MissedRounds:       r.cfg.MissedRounds,
		MaxRemovalFraction: r.cfg.MaxRemovalFraction,
		GuardRounds:        r.cfg.RemovalGuardRounds,
		Limits:             r.cfg.Limits,
	}
}

// reportLimits tells the metrics, /readyz and the log what the limits
// refused in a completed round: a WARN when an episode (a run of rounds
// refusing new servers) starts, an INFO when it ends, the reason on
// /readyz while it lasts.
func (r *runner) reportLimits(p plan.Plan, held int) {
	ref := p.Refused
	r.cfg.Metrics.limited(ref)
	was := r.limiting
	r.limiting = ref.Total() > 0
	reason := ""
	if r.limiting {
		reason = fmt.Sprintf("limits: %d new servers refused in round %d (%d at max_servers %d, %d at max_servers_per_source %d); %d held, which stay",
			ref.Total(), p.Round, ref.MaxServers, r.cfg.Limits.MaxServers, ref.MaxPerSource, r.cfg.Limits.MaxPerSource, held)
	}
	r.cfg.Health.limit(reason)
	switch {
	case r.limiting && !was:
		r.log.Warn().Uint64("round", p.Round).Int("refused_max_servers", ref.MaxServers).Int("refused_max_servers_per_source", ref.MaxPerSource).
			Int("held", held).Int("max_servers", r.cfg.Limits.MaxServers).Int("max_servers_per_source", r.cfg.Limits.MaxPerSource).
			Msg("limits: new servers refused (a reply flood, or more servers than max_servers?); the servers held stay, /readyz says so until a round refuses none")
	case !r.limiting && was:
		r.log.Info().Uint64("round", p.Round).Int("held", held).Msg("limits: no new server refused any more")
	}
}

// reportGuard tells the metrics, /readyz and the log what the removal guard
// did in a completed round: a WARN when an episode starts, an INFO when it
// ends, the reason on /readyz while removals are held.
func (r *runner) reportGuard(p plan.Plan) {
	g := p.Guard
	r.cfg.Metrics.guard(len(g.Held), g.Started)
	r.cfg.Health.guard(g.Reason(p.Round, r.cfg.MaxRemovalFraction))
	switch {
	case g.Started:
		r.log.Warn().Uint64("round", p.Round).Int("held", len(g.Held)).Int("known", g.Known).
			Float64("max_removal_fraction", r.cfg.MaxRemovalFraction).Int("removal_guard_rounds", r.cfg.RemovalGuardRounds).
			Uint64("release_round", g.Release).
			Msg("removal guard: too many servers unseen at once (a network or firewall hiccup?); holding their removals, the sinks keep them")
	case g.Ended:
		r.log.Info().Uint64("round", p.Round).Int("released", g.Released).Int("returned", g.Returned).
			Int("removed", len(p.Removed)).Msg("removal guard: no removal held any more (released after the guard rounds, or the servers answered again)")
	case len(g.Held) > 0 && (g.Released > 0 || g.Returned > 0):
		r.log.Info().Uint64("round", p.Round).Int("held", len(g.Held)).Int("released", g.Released).Int("returned", g.Returned).
			Uint64("release_round", g.Release).Msg("removal guard: still holding removals")
	}
}
