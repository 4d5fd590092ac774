package runner

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

const namespace = "udp_discovery_bridge"

// Metrics are the loop's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	rounds          *prometheus.CounterVec
	roundDuration   prometheus.Histogram
	endpoints       prometheus.Gauge
	replies         *prometheus.CounterVec
	probesSent      prometheus.Counter
	probeSendErrors prometheus.Counter
	changes         *prometheus.CounterVec
	earlyAdds       prometheus.Counter
	earlySnapshots  prometheus.Counter
	sinkApplies     *prometheus.CounterVec
	sinkWrites      *prometheus.CounterVec
	sinkErrors      *prometheus.CounterVec
	sinkLastSuccess *prometheus.GaugeVec
	sinkLastAttempt *prometheus.GaugeVec
	sinkFailing     *prometheus.GaugeVec
	scanHosts       prometheus.Gauge
	scanProbed      prometheus.Counter
	scanKeepAlives  prometheus.Counter
	scanCycles      prometheus.Counter
	scanProgress    prometheus.Gauge
	removalsHeld    prometheus.Gauge
	guardEpisodes   prometheus.Counter
	interval        prometheus.Gauge
	refused         *prometheus.CounterVec
	receiveDrops    prometheus.Counter
	limitRefused    *prometheus.CounterVec
	healthPosts     prometheus.Counter
}

// Outcome label values.
const (
	outcomeOK     = "ok"
	outcomeFailed = "failed"
	outcomeError  = "error"
)

// NewMetrics creates the metrics and registers them with reg (which may be
// nil to leave them unregistered). It panics if a metric is already
// registered, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rounds_total",
			Help: "Discovery rounds by outcome (ok, failed: no interface or no probe could be sent).",
		}, []string{"outcome"}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "round_duration_seconds",
			Help:    "Duration of discovery rounds.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60},
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "endpoints",
			Help: "Endpoints currently held by the planner (including those missing fewer than missed-rounds rounds).",
		}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "replies_total",
			Help: "Reply datagrams by outcome (valid: a server kept, duplicate, invalid, oversized, rejected, dropped).",
		}, []string{"outcome"}),
		probesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "probes_sent_total",
			Help: "Discovery probes sent (broadcast, retries and scan probes).",
		}),
		probeSendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "probe_send_errors_total",
			Help: "Discovery probes the kernel refused to send.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "endpoint_changes_total",
			Help: "Endpoints added to or removed from the desired set.",
		}, []string{"op"}),
		earlyAdds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "early_adds_total",
			Help: "Endpoints added as their first reply arrived, before their round ended (each also counts in endpoint_changes_total{op=\"add\"}).",
		}),
		earlySnapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "early_snapshots_total",
			Help: "Snapshots handed to the sinks during a round for endpoints that arrived (coalesced over a few milliseconds).",
		}),
		sinkApplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sink_applies_total",
			Help: "Sink Apply calls by sink and outcome (ok, error).",
		}, []string{"sink", "outcome"}),
		sinkWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sink_writes_total",
			Help: "Registry write operations made by each sink.",
		}, []string{"sink"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sink_errors_total",
			Help: "Failed sink Apply calls.",
		}, []string{"sink"}),
		sinkLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sink_last_success_timestamp_seconds",
			Help: "Unix time of each sink's last successful Apply.",
		}, []string{"sink"}),
		sinkLastAttempt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sink_last_attempt_timestamp_seconds",
			Help: "Unix time each sink's last Apply ended, successful or not.",
		}, []string{"sink"}),
		sinkFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sink_consecutive_failures",
			Help: "Failed Apply calls of each sink since its last success (0 while it succeeds).",
		}, []string{"sink"}),
		scanHosts: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "scan", Name: "hosts",
			Help: "Hosts of the configured scan CIDRs: one scan cycle probes each once.",
		}),
		scanProbed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "scan", Name: "hosts_probed_total",
			Help: "Hosts the rolling subnet scan probed.",
		}),
		scanKeepAlives: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "scan", Name: "keepalive_probes_total",
			Help: "Unicast keep-alive probes to held servers outside broadcast reach.",
		}),
		scanCycles: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "scan", Name: "cycles_total",
			Help: "Completed scan cycles (every host of the scan CIDRs probed once).",
		}),
		scanProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "scan", Name: "cycle_progress_ratio",
			Help: "Fraction of the current scan cycle done, 0..1.",
		}),
		removalsHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "removals_held",
			Help: "Removals the removal guard holds: servers unseen for missed-rounds rounds that the sinks keep (max_removal_fraction, removal_guard_rounds).",
		}),
		guardEpisodes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "removal_guard_episodes_total",
			Help: "Times the removal guard started holding removals (one round would have removed more than max_removal_fraction of the known servers).",
		}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "interval_seconds",
			Help: "The configured time between round starts (interval), for alerts that count rounds.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "replies_refused_total",
			Help: "Replies the admission policy refused, by reason (source_port, off_link_source, replay, unroutable_address, subnet_address, foreign_address, source_cap).",
		}, []string{"reason"}),
		receiveDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "receive_drops_total",
			Help: "Reply datagrams the kernel dropped on a round's socket because its receive buffer was full.",
		}),
		limitRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "servers_refused_total",
			Help: "New servers refused because the bridge held max_servers, or their source held max_servers_per_source (limit).",
		}, []string{"limit"}),
		healthPosts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "health_snapshots_total",
			Help: "Snapshots handed to the sinks between rounds because a server's app check health changed (app_check).",
		}),
	}
	for _, r := range discover.Refusals() {
		m.refused.WithLabelValues(r.String())
	}
	for _, l := range []string{limitMaxServers, limitPerSource} {
		m.limitRefused.WithLabelValues(l)
	}
	for _, o := range []string{outcomeOK, outcomeFailed} {
		m.rounds.WithLabelValues(o)
	}
	for _, o := range []string{"valid", "duplicate", "invalid", "oversized", "rejected", "dropped"} {
		m.replies.WithLabelValues(o)
	}
	for _, o := range []string{"add", "remove"} {
		m.changes.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.rounds, m.roundDuration, m.endpoints, m.replies, m.probesSent,
			m.probeSendErrors, m.changes, m.earlyAdds, m.earlySnapshots, m.sinkApplies, m.sinkWrites, m.sinkErrors, m.sinkLastSuccess,
			m.sinkLastAttempt, m.sinkFailing,
			m.scanHosts, m.scanProbed, m.scanKeepAlives, m.scanCycles, m.scanProgress,
			m.removalsHeld, m.guardEpisodes, m.interval, m.refused, m.receiveDrops, m.limitRefused, m.healthPosts)
	}
	return m
}

func (m *Metrics) round(ok bool, d time.Duration, st discover.Stats) {
	if m == nil {
		return
	}
	o := outcomeOK
	if !ok {
		o = outcomeFailed
	}
	m.rounds.WithLabelValues(o).Inc()
	m.roundDuration.Observe(d.Seconds())
	m.probesSent.Add(float64(st.ProbesSent))
	m.probeSendErrors.Add(float64(st.SendErrors))
	// Stats.Valid includes duplicates, the per-source cap's refusals and
	// the dropped; count each datagram once.
	m.replies.WithLabelValues("valid").Add(float64(max(st.Valid-st.Duplicates-st.Dropped-st.Refused[discover.RefusedSourceCap], 0)))
	for _, r := range discover.Refusals() {
		if n := st.Refused[r]; n > 0 {
			m.refused.WithLabelValues(r.String()).Add(float64(n))
		}
	}
	m.receiveDrops.Add(float64(st.KernelDrops))
	m.replies.WithLabelValues("duplicate").Add(float64(st.Duplicates))
	m.replies.WithLabelValues("invalid").Add(float64(st.Invalid))
	m.replies.WithLabelValues("oversized").Add(float64(st.Oversized))
	m.replies.WithLabelValues("rejected").Add(float64(st.Rejected))
	m.replies.WithLabelValues("dropped").Add(float64(st.Dropped))
	if st.ScanHosts > 0 {
		m.scanHosts.Set(float64(st.ScanHosts))
		m.scanProbed.Add(float64(st.ScanTargets))
		m.scanKeepAlives.Add(float64(st.ScanKeepAlives))
		m.scanCycles.Add(float64(st.ScanCycles))
		m.scanProgress.Set(st.ScanProgress)
	}
}

// Label values of servers_refused_total.
const (
	limitMaxServers = "max_servers"
	limitPerSource  = "max_servers_per_source"
)

// limited records the new servers a round refused at the limits.
func (m *Metrics) limited(r plan.Refused) {
	if m == nil {
		return
	}
	m.limitRefused.WithLabelValues(limitMaxServers).Add(float64(r.MaxServers))
	m.limitRefused.WithLabelValues(limitPerSource).Add(float64(r.MaxPerSource))
}

// healthSnapshot counts a snapshot handed over for a health transition.
func (m *Metrics) healthSnapshot() {
	if m == nil {
		return
	}
	m.healthPosts.Inc()
}

func (m *Metrics) started(interval time.Duration) {
	if m == nil {
		return
	}
	m.interval.Set(interval.Seconds())
}

func (m *Metrics) scanPlanned(hosts int) {
	if m == nil {
		return
	}
	m.scanHosts.Set(float64(hosts))
}

func (m *Metrics) planned(held, adds, removes int) {
	if m == nil {
		return
	}
	m.endpoints.Set(float64(held))
	m.changes.WithLabelValues("add").Add(float64(adds))
	m.changes.WithLabelValues("remove").Add(float64(removes))
}

// arrived records an early snapshot that added adds endpoints, after which
// held are held.
func (m *Metrics) arrived(held, adds int) {
	if m == nil {
		return
	}
	m.endpoints.Set(float64(held))
	m.changes.WithLabelValues("add").Add(float64(adds))
	m.earlyAdds.Add(float64(adds))
	m.earlySnapshots.Inc()
}

// guard records the removals held after a round and whether an episode
// started in it.
func (m *Metrics) guard(held int, started bool) {
	if m == nil {
		return
	}
	m.removalsHeld.Set(float64(held))
	if started {
		m.guardEpisodes.Inc()
	}
}

func (m *Metrics) addSink(name string) {
	if m == nil {
		return
	}
	m.sinkApplies.WithLabelValues(name, outcomeOK)
	m.sinkApplies.WithLabelValues(name, outcomeError)
	m.sinkWrites.WithLabelValues(name)
	m.sinkErrors.WithLabelValues(name)
	m.sinkFailing.WithLabelValues(name)
}

// sinkWrote counts n writes a sink made during an apply still running.
func (m *Metrics) sinkWrote(name string, n int) {
	if m == nil {
		return
	}
	m.sinkWrites.WithLabelValues(name).Add(float64(n))
}

// sinkApply records an Apply of sink name that ended at at, after which
// the sink has failed failures times in a row.
func (m *Metrics) sinkApply(name string, writes int, err error, at time.Time, failures int) {
	if m == nil {
		return
	}
	m.sinkWrites.WithLabelValues(name).Add(float64(writes))
	m.sinkLastAttempt.WithLabelValues(name).Set(float64(at.UnixNano()) / 1e9)
	m.sinkFailing.WithLabelValues(name).Set(float64(failures))
	if err != nil {
		m.sinkApplies.WithLabelValues(name, outcomeError).Inc()
		m.sinkErrors.WithLabelValues(name).Inc()
		return
	}
	m.sinkApplies.WithLabelValues(name, outcomeOK).Inc()
	m.sinkLastSuccess.WithLabelValues(name).Set(float64(at.UnixNano()) / 1e9)
}

// NewBuildInfo returns udp_discovery_bridge_build_info: a gauge of 1
// labelled with the bridge's version, the Go version it was built with and
// the VCS revision from bi (bi may be nil; "unknown" when the binary
// carries no revision, as a build outside a git checkout).
func NewBuildInfo(version string, bi *debug.BuildInfo) prometheus.Collector {
	revision := "unknown"
	if bi != nil {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "The bridge's build: version, Go version and VCS revision, as labels of a constant 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "revision": revision},
	})
	g.Set(1)
	return g
}
