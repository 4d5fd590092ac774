// Package metricsdoc renders the reference of the bridge's Prometheus
// metrics (docs/operations/metrics.md) from the collectors the bridge
// registers, the way internal/config renders the key tables from the keys:
// a Recorder stands in for the bridge's registry, the metrics' constructors
// register with it, and Markdown turns what they declared into a table.
// The test of this package builds the bridge's metrics and fails when the
// page is stale (go test ./internal/metricsdoc -update rewrites it).
package metricsdoc

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric is one metric family as the bridge declares it.
type Metric struct {
	Name string
	// Type is counter, gauge, histogram, summary or untyped.
	Type string
	Help string
	// Labels are the variable labels, in declaration order; ConstLabels
	// the names of the constant ones (their values are the build's).
	Labels      []string
	ConstLabels []string
}

// Recorder is a prometheus.Registerer that keeps every collector registered
// with it, and registers it with a registry of its own as well, so that a
// name registered twice fails as it would in the bridge.
type Recorder struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{reg: prometheus.NewRegistry()}
}

var _ prometheus.Registerer = (*Recorder)(nil)

// Register implements prometheus.Registerer.
func (r *Recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister implements prometheus.Registerer: it panics on the first
// collector that cannot be registered.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (r *Recorder) Unregister(c prometheus.Collector) bool {
	if !r.reg.Unregister(c) {
		return false
	}
	r.collectors = slices.DeleteFunc(r.collectors, func(x prometheus.Collector) bool { return x == c })
	return true
}

// descString matches prometheus.Desc.String(): the only way to read a
// descriptor's name, help and labels outside client_golang.
var descString = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), (?:unit: "(?:[^"\\]|\\.)*", )?constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)

// constLabel matches one name="value" pair of Desc.String's constLabels.
var constLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// Metrics returns every metric family the registered collectors declare,
// sorted by name. A family's type comes from a series the collector
// exports, or, for a vector with no series yet, from the vector's type; a
// collector whose type cannot be told that way is an error.
func (r *Recorder) Metrics() ([]Metric, error) {
	var out []Metric
	for _, c := range r.collectors {
		descs := describe(c)
		types, err := collectTypes(c)
		if err != nil {
			return nil, err
		}
		for _, d := range descs {
			m, err := parseDesc(d)
			if err != nil {
				return nil, err
			}
			m.Type = types[d.String()]
			if m.Type == "" {
				m.Type = vectorType(c)
			}
			if m.Type == "" {
				return nil, fmt.Errorf("metric %s: cannot tell its type (a %T exporting no series)", m.Name, c)
			}
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("metric %s declared twice", out[i].Name)
		}
	}
	return out, nil
}

func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}

// collectTypes maps the descriptors of the series c exports now to their
// types.
func collectTypes(c prometheus.Collector) (map[string]string, error) {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	types := map[string]string{}
	var err error
	for m := range ch {
		var pb dto.Metric
		if e := m.Write(&pb); e != nil && err == nil {
			err = fmt.Errorf("metric %s: %w", m.Desc(), e)
			continue
		}
		types[m.Desc().String()] = seriesType(&pb)
	}
	return types, err
}

func seriesType(pb *dto.Metric) string {
	switch {
	case pb.Counter != nil:
		return "counter"
	case pb.Gauge != nil:
		return "gauge"
	case pb.Histogram != nil:
		return "histogram"
	case pb.Summary != nil:
		return "summary"
	}
	return "untyped"
}

func vectorType(c prometheus.Collector) string {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	return ""
}

func parseDesc(d *prometheus.Desc) (Metric, error) {
	s := d.String()
	m := descString.FindStringSubmatch(s)
	if m == nil {
		return Metric{}, fmt.Errorf("descriptor %s: not in the form this package reads (did client_golang change Desc.String?)", s)
	}
	name, err1 := strconv.Unquote(m[1])
	help, err2 := strconv.Unquote(m[2])
	if err1 != nil || err2 != nil {
		return Metric{}, fmt.Errorf("descriptor %s: bad quoting", s)
	}
	out := Metric{Name: name, Help: help}
	for _, cl := range constLabel.FindAllStringSubmatch(m[3], -1) {
		out.ConstLabels = append(out.ConstLabels, cl[1])
	}
	if m[4] != "" {
		for _, l := range strings.Split(m[4], ",") {
			// A constrained label reads c(name).
			l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
			out.Labels = append(out.Labels, l)
		}
	}
	return out, nil
}

// Markdown renders ms as the metrics page's table: name, type, labels and
// help, one row per metric.
func Markdown(ms []Metric) string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	cell := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, m := range ms {
		var labels []string
		for _, l := range m.Labels {
			labels = append(labels, "`"+l+"`")
		}
		for _, l := range m.ConstLabels {
			labels = append(labels, "`"+l+"` (constant)")
		}
		ls := strings.Join(labels, ", ")
		if ls == "" {
			ls = "none"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, ls, cell.Replace(m.Help))
	}
	return b.String()
}
