package relaymetrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/relay/relaymetrics"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
)

// TestMetrics: each scrape brings the metrics up to the relay's counters
// and the source's state: counters by what they gained, gauges as they
// are; every reason has its series from the start.
func TestMetrics(t *testing.T) {
	var st relay.Stats
	src := source.State{Name: "consul"}
	reg := prometheus.NewPedanticRegistry()
	relaymetrics.New(reg, func() relay.Stats { return st }, func() source.State { return src })

	steps := []struct {
		name  string
		set   func()
		want  string
		names []string
	}{
		{"before anything", func() {}, `
# HELP udp_discovery_bridge_relay_source_ok 1 while the relay answers from its source's set (read, and no older than the source's period + relay_max_stale), 0 before the first read and while stale; source is consul, kubernetes or local.
# TYPE udp_discovery_bridge_relay_source_ok gauge
udp_discovery_bridge_relay_source_ok{source="consul"} 0
# HELP udp_discovery_bridge_relay_targets Servers in the relayed set: the last set read from the source, stale or not (relay_source_ok says which).
# TYPE udp_discovery_bridge_relay_targets gauge
udp_discovery_bridge_relay_targets 0
`, []string{"udp_discovery_bridge_relay_source_ok", "udp_discovery_bridge_relay_targets"}},
		{"probes answered and dropped, a set read", func() {
			st.Received, st.BytesIn, st.Relayed, st.Replies, st.BytesOut = 5, 75, 2, 16, 416
			st.Dropped[relay.ReasonOffLink], st.Dropped[relay.ReasonRate] = 2, 1
			src = source.State{Name: "consul", Read: true, Size: 8, Age: 1500 * time.Millisecond}
		}, `
# HELP udp_discovery_bridge_relay_probes_received_total Datagrams the relay read on its port, probes or not, on any interface (each is relayed or dropped).
# TYPE udp_discovery_bridge_relay_probes_received_total counter
udp_discovery_bridge_relay_probes_received_total 5
# HELP udp_discovery_bridge_relay_replies_sent_total Replies the relay sent, one per target relayed.
# TYPE udp_discovery_bridge_relay_replies_sent_total counter
udp_discovery_bridge_relay_replies_sent_total 16
# HELP udp_discovery_bridge_relay_sent_bytes_total UDP payload bytes of the replies the relay sent (28 more per reply on the wire): over received_bytes_total, its amplification.
# TYPE udp_discovery_bridge_relay_sent_bytes_total counter
udp_discovery_bridge_relay_sent_bytes_total 416
# HELP udp_discovery_bridge_relay_source_ok 1 while the relay answers from its source's set (read, and no older than the source's period + relay_max_stale), 0 before the first read and while stale; source is consul, kubernetes or local.
# TYPE udp_discovery_bridge_relay_source_ok gauge
udp_discovery_bridge_relay_source_ok{source="consul"} 1
# HELP udp_discovery_bridge_relay_targets Servers in the relayed set: the last set read from the source, stale or not (relay_source_ok says which).
# TYPE udp_discovery_bridge_relay_targets gauge
udp_discovery_bridge_relay_targets 8
# HELP udp_discovery_bridge_relay_targets_age_seconds Seconds since the source's set was last read (0 before the first read).
# TYPE udp_discovery_bridge_relay_targets_age_seconds gauge
udp_discovery_bridge_relay_targets_age_seconds 1.5
`, []string{"udp_discovery_bridge_relay_probes_received_total", "udp_discovery_bridge_relay_replies_sent_total", "udp_discovery_bridge_relay_sent_bytes_total",
			"udp_discovery_bridge_relay_source_ok", "udp_discovery_bridge_relay_targets", "udp_discovery_bridge_relay_targets_age_seconds"}},
		{"more, stale, failing", func() {
			st.Received, st.Dropped[relay.ReasonStaleTargets] = 9, 4
			src = source.State{Name: "consul", Read: true, Size: 8, Age: time.Minute, Stale: true, LastError: errors.New("refused"), Errors: 3}
		}, `
# HELP udp_discovery_bridge_relay_probes_received_total Datagrams the relay read on its port, probes or not, on any interface (each is relayed or dropped).
# TYPE udp_discovery_bridge_relay_probes_received_total counter
udp_discovery_bridge_relay_probes_received_total 9
# HELP udp_discovery_bridge_relay_source_errors_total Failed reads of the relay's source (the set is kept until stale); source is consul, kubernetes or local (a failed round).
# TYPE udp_discovery_bridge_relay_source_errors_total counter
udp_discovery_bridge_relay_source_errors_total{source="consul"} 3
# HELP udp_discovery_bridge_relay_source_ok 1 while the relay answers from its source's set (read, and no older than the source's period + relay_max_stale), 0 before the first read and while stale; source is consul, kubernetes or local.
# TYPE udp_discovery_bridge_relay_source_ok gauge
udp_discovery_bridge_relay_source_ok{source="consul"} 0
`, []string{"udp_discovery_bridge_relay_probes_received_total", "udp_discovery_bridge_relay_source_errors_total", "udp_discovery_bridge_relay_source_ok"}},
	}
	for _, s := range steps {
		s.set()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(s.want), s.names...); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	for reason, want := range map[relay.Reason]float64{relay.ReasonOffLink: 2, relay.ReasonRate: 1, relay.ReasonStaleTargets: 4, relay.ReasonQueueFull: 0} {
		got, err := testutil.GatherAndCount(reg, "udp_discovery_bridge_relay_probes_dropped_total")
		if err != nil || got != len(relay.Reasons()) {
			t.Fatalf("%d dropped series (%v), want one per reason (%d)", got, err, len(relay.Reasons()))
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "udp_discovery_bridge_relay_probes_dropped_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == reason.String() && m.GetCounter().GetValue() != want {
					t.Errorf("dropped{reason=%q} = %v, want %v", reason, m.GetCounter().GetValue(), want)
				}
			}
		}
	}
}
