// Package relaymetrics exports the relay's counters (relay.Stats) and its
// source's state (source.State) as Prometheus metrics, read when scraped.
package relaymetrics

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
)

const ns, sub = "udp_discovery_bridge", "relay"

// Metrics is a prometheus.Collector of the relay's metrics: each scrape
// reads the relay's Stats and the source's State and brings the metrics
// up to them. Register it once (New does).
type Metrics struct {
	stats func() relay.Stats
	state func() source.State

	received, bytesIn, relayed    prometheus.Counter
	replies, bytesOut, sendErrors prometheus.Counter
	interfaceErrors               prometheus.Counter
	dropped                       *prometheus.CounterVec
	queued, targets, targetsAge   prometheus.Gauge
	sourceOK                      *prometheus.GaugeVec
	sourceErrors                  *prometheus.CounterVec
	all                           []prometheus.Collector

	mu       sync.Mutex // serialises scrapes: last is theirs
	last     relay.Stats
	lastErrs uint64
}

// New registers the relay's metrics with reg (nil: not exported) and
// returns them, reading stats (a Relay's Stats) and state (its source's
// Keeper.State) at every scrape.
func New(reg prometheus.Registerer, stats func() relay.Stats, state func() source.State) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &Metrics{stats: stats, state: state,
		received:        counter("probes_received_total", "Datagrams the relay read on its port, probes or not, on any interface (each is relayed or dropped)."),
		bytesIn:         counter("received_bytes_total", "UDP payload bytes of the datagrams the relay read (28 more per datagram on the wire)."),
		relayed:         counter("probes_relayed_total", "Probes the relay answered (their replies sent, or waiting for relay_delay)."),
		replies:         counter("replies_sent_total", "Replies the relay sent, one per target relayed."),
		bytesOut:        counter("sent_bytes_total", "UDP payload bytes of the replies the relay sent (28 more per reply on the wire): over received_bytes_total, its amplification."),
		sendErrors:      counter("send_errors_total", "Replies the relay's socket refused to send."),
		interfaceErrors: counter("interface_errors_total", "Failed readings of the host's interfaces (the relay keeps the last networks read), and failures to listen on a relay network's broadcast address (tried again at the next reading, every 10 s)."),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "probes_dropped_total",
			Help: "Datagrams the relay did not answer, by reason (the first rule each failed, docs/operations/relay.md): " + reasons() + "."}, []string{"reason"}),
		queued:     gauge("queued_replies", "Replies waiting for relay_delay now."),
		targets:    gauge("targets", "Servers in the relayed set: the last set read from the source, stale or not (relay_source_ok says which)."),
		targetsAge: gauge("targets_age_seconds", "Seconds since the source's set was last read (0 before the first read)."),
		sourceOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "source_ok",
			Help: "1 while the relay answers from its source's set (read, and no older than the source's period + relay_max_stale), 0 before the first read and while stale; source is consul, kubernetes or local."}, []string{"source"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "source_errors_total",
			Help: "Failed reads of the relay's source (the set is kept until stale); source is consul, kubernetes or local (a failed round)."}, []string{"source"}),
	}
	for _, r := range relay.Reasons() {
		m.dropped.WithLabelValues(r.String())
	}
	m.all = []prometheus.Collector{m.received, m.bytesIn, m.relayed, m.replies, m.bytesOut, m.sendErrors, m.interfaceErrors,
		m.dropped, m.queued, m.targets, m.targetsAge, m.sourceOK, m.sourceErrors}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// reasons lists the names of the relay's reasons, "a, b, c".
func reasons() string {
	var names []string
	for _, r := range relay.Reasons() {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector: it brings the metrics up to the
// relay's Stats and the source's State, then exports them.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	m.sync()
	m.mu.Unlock()
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// sync adds what the counters gained since the last scrape and sets the
// gauges.
func (m *Metrics) sync() {
	st, src := m.stats(), m.state()
	add := func(c prometheus.Counter, now, last uint64) {
		if now > last {
			c.Add(float64(now - last))
		}
	}
	l := m.last
	add(m.received, st.Received, l.Received)
	add(m.bytesIn, st.BytesIn, l.BytesIn)
	add(m.relayed, st.Relayed, l.Relayed)
	add(m.replies, st.Replies, l.Replies)
	add(m.bytesOut, st.BytesOut, l.BytesOut)
	add(m.sendErrors, st.SendErrors, l.SendErrors)
	add(m.interfaceErrors, st.RefreshErrors, l.RefreshErrors)
	for _, r := range relay.Reasons() {
		add(m.dropped.WithLabelValues(r.String()), st.Dropped[r], l.Dropped[r])
	}
	add(m.sourceErrors.WithLabelValues(src.Name), src.Errors, m.lastErrs)
	m.last, m.lastErrs = st, src.Errors
	m.queued.Set(float64(st.Queued))
	m.targets.Set(float64(src.Size))
	m.targetsAge.Set(src.Age.Seconds())
	ok := 0.0
	if src.Read && !src.Stale {
		ok = 1
	}
	m.sourceOK.WithLabelValues(src.Name).Set(ok)
}
