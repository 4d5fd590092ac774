package runner

import "github.com/udp-discovery-bridge/bridge/internal/plan"

// planConfig is the planner's configuration.
func (r *runner) planConfig() plan.Config {
	return plan.Config{
		MissedRounds:       r.cfg.MissedRounds,
		MaxRemovalFraction: r.cfg.MaxRemovalFraction,
		GuardRounds:        r.cfg.RemovalGuardRounds,
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
