// Package fleetmetrics exports what a fleet's leader does that every
// registry's sink reports alike: the fleet's removal guard (fleet.Guard).
package fleetmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

const ns, heldName = "udp_discovery_bridge", "removals_held"

// HeldName is the name of the removals_held metric of the sink of
// subsystem (what /readyz and bridge explain point to).
func HeldName(subsystem string) string { return prometheus.BuildFQName(ns, subsystem, heldName) }

// Guard registers the fleet removal guard's metrics of a sink under
// subsystem (e.g. "consul_catalog": udp_discovery_bridge_consul_catalog_removals_held)
// with reg (nil: not exported) and returns the fleet.Leader's OnGuard that
// keeps them.
func Guard(reg prometheus.Registerer, subsystem string) func(fleet.GuardState) {
	held := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: subsystem, Name: heldName,
		Help: "Servers whose removal the fleet's removal guard holds (leader only): more than max_removal_fraction of the fleet went unobserved at once; with removal_guard_held ready they stay passing and ready."})
	episodes := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: subsystem, Name: "removal_guard_episodes_total",
		Help: "Episodes of the fleet's removal guard this bridge saw begin as the leader."})
	if reg != nil {
		reg.MustRegister(held, episodes)
	}
	return func(st fleet.GuardState) {
		held.Set(float64(len(st.Held)))
		if st.Started {
			episodes.Inc()
		}
	}
}
