package connlimit

import "github.com/prometheus/client_golang/prometheus"

const namespace = "udp_discovery_bridge"

// Peer label values of the open-connections gauge.
const (
	peerHost  = "host"
	peerOther = "other"
)

// Metrics are the Prometheus metrics of one or more Listeners, told apart
// by the listener label. A nil *Metrics records nothing.
type Metrics struct {
	refused *prometheus.CounterVec
	open    *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil leaves
// them unregistered). It panics if they are already registered, like
// prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_connections_refused_total",
			Help: "HTTP connections closed as soon as accepted, by the cap that refused them (host: the host's own reserved pool; per_client: one address's cap; total: the cap on all other clients).",
		}, []string{"listener", "reason"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_connections_open",
			Help: "HTTP connections held now, by peer (host: from the host itself, in its reserved pool; other: every other client).",
		}, []string{"listener", "peer"}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.open)
	}
	return m
}

// init creates the series of listener, so that they read 0 before the
// first event.
func (m *Metrics) init(listener string) {
	if m == nil {
		return
	}
	for _, r := range reasons {
		m.refused.WithLabelValues(listener, string(r))
	}
	m.open.WithLabelValues(listener, peerHost)
	m.open.WithLabelValues(listener, peerOther)
}

func (m *Metrics) refuse(listener string, r Reason) {
	if m != nil {
		m.refused.WithLabelValues(listener, string(r)).Inc()
	}
}

func (m *Metrics) opened(listener string, host bool) {
	if m != nil {
		m.open.WithLabelValues(listener, peer(host)).Inc()
	}
}

func (m *Metrics) closed(listener string, host bool) {
	if m != nil {
		m.open.WithLabelValues(listener, peer(host)).Dec()
	}
}

func peer(host bool) string {
	if host {
		return peerHost
	}
	return peerOther
}
