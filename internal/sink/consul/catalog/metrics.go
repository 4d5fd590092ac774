package catalog

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetmetrics"
)

// catalogMetrics are the catalog mode's Prometheus metrics.
type catalogMetrics struct {
	// leading is the sink whose Leader the leader gauge reads (set once by
	// newCatalog; nil: 0).
	leading         atomic.Pointer[Catalog]
	leader          prometheus.GaugeFunc
	observers       prometheus.Gauge
	catalogWrites   prometheus.Counter
	txns            prometheus.Counter
	kvWrites        prometheus.Counter
	sessionRenewals prometheus.Counter
	mergeSeconds    prometheus.Gauge
	repairs         prometheus.Counter
	errors          *prometheus.CounterVec
	foreignNodes    prometheus.Gauge
	foreignFound    prometheus.Counter
	rateLimited     *prometheus.CounterVec
	// guard keeps the fleet removal guard's metrics (fleet.Leader.OnGuard).
	guard func(fleet.GuardState)
}

// newCatalogMetrics creates the metrics and registers them with reg (nil:
// not exported, as in tests).
func newCatalogMetrics(reg prometheus.Registerer) *catalogMetrics {
	const ns, sub = "udp_discovery_bridge", "consul_catalog"
	m := &catalogMetrics{}
	*m = catalogMetrics{
		leader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "leader",
			Help: "1 while this bridge holds the lock and writes the catalog, else 0."}, func() float64 {
			if c := m.leading.Load(); c != nil && c.Leader() {
				return 1
			}
			return 0
		}),
		observers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "observers",
			Help: "Bridges whose observations the leader merged last (leader only)."}),
		catalogWrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "writes_total",
			Help: "Catalog operations (node, service, check set or delete) written by this bridge as leader."}),
		txns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "txns_total",
			Help: "Transactions (of at most 64 operations) sent by this bridge as leader."}),
		kvWrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "kv_writes_total",
			Help: "KV operations written to publish this bridge's observation."}),
		sessionRenewals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "session_renewals_total",
			Help: "Successful renewals of this bridge's Consul session."}),
		mergeSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_merge_seconds",
			Help: "Time the leader took to merge the observations and plan its last reconcile."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "observation_repairs_total",
			Help: "Times this bridge found its own observation keys changed by someone else (overwritten, deleted, extra keys) and rewrote them."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failures by stage: session, kv_read, catalog_read, catalog_write, observation (undecodable)."}, []string{"stage"}),
		foreignNodes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "foreign_nodes",
			Help: "Nodes this fleet would register that belong to someone else (another fleet, another tool, a hand-registered node): skipped, never overwritten (leader only)."}),
		foreignFound: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "foreign_nodes_found_total",
			Help: "Times a node of someone else was found in the way of a registration (once per node and owner)."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rate_limited_total",
			Help: "Requests Consul refused for its write rate limit (429/503 \"rate limit exceeded\"), by op: txn (leader), publish, renew, session (create)."}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.observers, m.catalogWrites, m.txns, m.kvWrites, m.sessionRenewals, m.mergeSeconds, m.repairs, m.errors, m.foreignNodes, m.foreignFound, m.rateLimited)
	}
	m.guard = fleetmetrics.Guard(reg, sub)
	return m
}
