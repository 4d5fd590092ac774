package fleetmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

func TestGuard(t *testing.T) {
	reg := prometheus.NewRegistry()
	on := Guard(reg, "kubernetes")
	on(fleet.GuardState{Held: []string{"a", "b", "c"}, Started: true})
	on(fleet.GuardState{Held: []string{"a", "b"}})
	want := `
# HELP udp_discovery_bridge_kubernetes_removal_guard_episodes_total Episodes of the fleet's removal guard this bridge saw begin as the leader.
# TYPE udp_discovery_bridge_kubernetes_removal_guard_episodes_total counter
udp_discovery_bridge_kubernetes_removal_guard_episodes_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "udp_discovery_bridge_kubernetes_removal_guard_episodes_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "udp_discovery_bridge_kubernetes_removals_held"); err != nil || n != 1 {
		t.Fatalf("removals_held series = %d, %v", n, err)
	}
	on(fleet.GuardState{Ended: true})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "udp_discovery_bridge_kubernetes_removals_held" && mf.GetMetric()[0].GetGauge().GetValue() != 0 {
			t.Errorf("removals_held after the episode = %v, want 0", mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
}
