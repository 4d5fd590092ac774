package checker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

const namespace = "udp_discovery_bridge"

// healths are the Health values, indexable by Health.
var healths = [...]endpoint.Health{endpoint.Ready, endpoint.Pending, endpoint.Failing}

// metrics are the checker's Prometheus metrics. Every series exists from
// the start (reading 0), and each is resolved once, not per check.
type metrics struct {
	pass, fail  prometheus.Counter
	duration    prometheus.Histogram
	transitions [len(healths)]prometheus.Counter
	skipped     prometheus.Counter
	late        prometheus.Histogram
	servers     [len(healths)]prometheus.Gauge
}

// newMetrics creates the metrics and registers them with reg (nil: not
// registered). It panics if they are already registered, like
// prometheus.MustRegister.
func newMetrics(reg prometheus.Registerer) *metrics {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "app_checks_total",
		Help: "App checks completed, by result (pass: the server answered as app_check_status wants; fail: any other outcome, timeouts included).",
	}, []string{"result"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "app_check_duration_seconds",
		Help:    "How long app checks took, from their start to their verdict (connect, TLS, request, headers and at most 4 KiB of body), passing or not.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60},
	})
	transitions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "app_check_transitions_total",
		Help: "Servers whose health changed, by the state they entered (pending: a server began to be checked; ready: rise passes in a row; failing: fall failures in a row).",
	}, []string{"to"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "app_checks_skipped_total",
		Help: "App checks not started when due, by reason (in_flight: the server's previous check was still running; one server never has two at once).",
	}, []string{"reason"})
	late := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "app_check_late_seconds",
		Help:    "App checks that started late because app_check_concurrency checks were already in flight, by how long they waited past their due time (the count is the number of late checks).",
		Buckets: []float64{.01, .05, .1, .5, 1, 2, 5, 10, 30, 60, 300},
	})
	servers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "servers_by_health",
		Help: "Servers held and app-checked, by health state (ready, pending: not yet passed rise times in a row, failing: failed fall times in a row, kept but not ready).",
	}, []string{"state"})
	m := &metrics{
		pass: checks.WithLabelValues("pass"), fail: checks.WithLabelValues("fail"),
		duration: duration, skipped: skipped.WithLabelValues("in_flight"), late: late,
	}
	for _, h := range healths {
		m.transitions[h] = transitions.WithLabelValues(h.String())
		m.servers[h] = servers.WithLabelValues(h.String())
	}
	if reg != nil {
		reg.MustRegister(checks, duration, transitions, skipped, late, servers)
	}
	return m
}
