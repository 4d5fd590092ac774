package runner

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Health tracks liveness and readiness of the loop. It is safe for
// concurrent use; a nil *Health records nothing. The runner feeds it; Handler
// serves it.
type Health struct {
	clock      clock.Clock
	staleAfter time.Duration
	gatherer   prometheus.Gatherer

	mu        sync.Mutex
	lastTick  time.Time
	completed bool   // a round completed since start
	roundErr  error  // the latest round failed with this error
	guarding  string // the removal guard's reason while it holds removals
	limiting  string // the limits' reason while they refuse new servers
	sinks     map[string]*sinkHealth
	order     []string
	// noters are the notes of parts other than the sinks (AddNoter).
	noters []namedNoter
}

// namedNoter is a part with notes for /readyz, and the name its notes are
// prefixed with.
type namedNoter struct {
	name string
	n    sink.ReadyNoter
}

type sinkHealth struct {
	applied bool
	err     error
	// noter, when set, has notes for /readyz (sink.ReadyNoter).
	noter sink.ReadyNoter
}

// NewHealth returns a Health whose loop counts as alive while it ticked
// within staleAfter (the CLI passes 3×interval + round timeout). clk may be
// nil for the real clock; g, when non-nil, is served at /metrics.
func NewHealth(clk clock.Clock, staleAfter time.Duration, g prometheus.Gatherer) *Health {
	clk = clock.OrReal(clk)
	return &Health{clock: clk, staleAfter: staleAfter, gatherer: g, lastTick: clk.Now(), sinks: map[string]*sinkHealth{}}
}

// Alive reports whether the loop ticked within staleAfter, and when it last
// ticked.
func (h *Health) Alive() (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock.Now().Sub(h.lastTick) <= h.staleAfter, h.lastTick
}

// Ready reports whether a round completed since start, the latest round did
// not fail, the removal guard holds no removal, the latest round refused no
// new server at a limit and every sink's last Apply succeeded; otherwise it
// says why.
func (h *Health) Ready() (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reasons := []string{}
	switch {
	case h.roundErr != nil:
		reasons = append(reasons, "round: "+h.roundErr.Error())
	case !h.completed:
		reasons = append(reasons, "round: no round completed yet")
	}
	if h.guarding != "" {
		reasons = append(reasons, h.guarding)
	}
	if h.limiting != "" {
		reasons = append(reasons, h.limiting)
	}
	for _, name := range h.order {
		s := h.sinks[name]
		switch {
		case s.err != nil:
			reasons = append(reasons, "sink "+name+": "+s.err.Error())
		case !s.applied:
			reasons = append(reasons, "sink "+name+": not applied yet")
		}
	}
	return len(reasons) == 0, reasons
}

// Notes are what /readyz says besides its reasons, whether ready or not:
// each sink's notes ("sink <name>: ..."), such as a hold of the fleet's
// removal guard on the fleet's leader, then the notes of the other parts
// added with AddNoter ("<name>: ...", such as the relay's source gone
// stale). They never make the bridge unready: a hold is the fleet working
// as designed, and its leader's readiness follows its own work.
func (h *Health) Notes() []string {
	var ns []namedNoter
	h.mu.Lock()
	for _, name := range h.order {
		if n := h.sinks[name].noter; n != nil {
			ns = append(ns, namedNoter{"sink " + name, n})
		}
	}
	ns = append(ns, h.noters...)
	h.mu.Unlock()
	var out []string
	for _, n := range ns { // outside h.mu: a sink takes its own locks
		for _, note := range n.n.ReadyNotes() {
			out = append(out, n.name+": "+note)
		}
	}
	return out
}

// AddNoter puts the notes of a part of the bridge other than a sink on
// /readyz, each prefixed with "name: ", after the sinks' notes. Like a
// sink's, they never make the bridge unready; n.ReadyNotes must not block.
func (h *Health) AddNoter(name string, n sink.ReadyNoter) {
	if h == nil || n == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noters = append(h.noters, namedNoter{name, n})
}

// Handler serves /healthz, /readyz and, when a Gatherer was given, /metrics.
// Other paths are 404.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, last := h.Alive()
		writeJSON(w, ok, struct {
			Alive    bool      `json:"alive"`
			LastTick time.Time `json:"last_tick"`
		}{ok, last})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reasons := h.Ready()
		body := struct {
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons,omitempty"`
			Notes   []string `json:"notes,omitempty"`
		}{ok, reasons, h.Notes()}
		writeJSON(w, ok, body)
	})
	if h.gatherer != nil {
		// Uncompressed: the page is a few tens of KiB, and gzip would
		// allocate a compressor (~1.2 MiB) per scrape.
		mux.Handle("GET /metrics", promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{DisableCompression: true}))
	}
	return mux
}

func writeJSON(w http.ResponseWriter, ok bool, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if ok {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (h *Health) tick() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastTick = h.clock.Now()
}

// round records the end of a round: err nil for a completed round.
func (h *Health) round(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastTick = h.clock.Now()
	h.roundErr = err
	if err == nil {
		h.completed = true
	}
}

// guard records the removal guard's reason after a completed round, ""
// when it holds nothing.
func (h *Health) guard(reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.guarding = reason
}

// limit records the limits' reason after a completed round, "" when they
// refused nothing.
func (h *Health) limit(reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limiting = reason
}

// addSink declares sink s, named name; its notes (sink.ReadyNoter) are
// on /readyz from now on.
func (h *Health) addSink(name string, s sink.Sink) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	sh, ok := h.sinks[name]
	if !ok {
		sh = &sinkHealth{}
		h.sinks[name] = sh
		h.order = append(h.order, name)
	}
	sh.noter, _ = s.(sink.ReadyNoter)
}

func (h *Health) sinkApply(name string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sinks[name]
	if !ok {
		s = &sinkHealth{}
		h.sinks[name] = s
		h.order = append(h.order, name)
	}
	s.err = err
	if err == nil {
		s.applied = true
	}
}
