package runner_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// notingSink is a fakeSink with notes for /readyz (sink.ReadyNoter), as a
// fleet's leader has while the fleet's removal guard holds removals.
type notingSink struct {
	*fakeSink
	notes []string
}

func (s notingSink) ReadyNotes() []string { return s.notes }

// TestReadyzNotes: a sink's notes (the fleet's removal guard holding, on
// the fleet's leader) are on /readyz, named by the sink, and never make the
// bridge unready; what does still does.
func TestReadyzNotes(t *testing.T) {
	const hold = "fleet removal guard: holding 2 of 3 servers since 2026-12-07T12:00:00Z, kept passing (removal_guard_held: ready) " +
		"(more than max_removal_fraction 0.5 went unobserved across the fleet); they go ahead in 5m0s (at 2026-12-07T12:05:00Z) if still unobserved"
	tests := []struct {
		name    string
		notes   []string
		fail    error
		code    int
		want    []string // the notes on /readyz
		reasons []string
	}{
		{"no notes", nil, nil, http.StatusOK, nil, nil},
		{"a fleet hold: ready, the hold named", []string{hold}, nil, http.StatusOK, []string{"sink consul: " + hold}, nil},
		{"a fleet hold and a failing sink: not ready for the sink", []string{hold}, errors.New("ACL not found"), http.StatusServiceUnavailable,
			[]string{"sink consul: " + hold}, []string{"sink consul: ACL not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
			s := newSink("consul")
			if tt.fail != nil {
				s.fail = func(int) error { return tt.fail }
			}
			h.start(h.config(notingSink{s, tt.notes}))
			h.d.nextRound(t)
			s.nextApply(t)
			srv := h.health.Handler()
			var rz struct {
				Ready   bool     `json:"ready"`
				Reasons []string `json:"reasons"`
				Notes   []string `json:"notes"`
			}
			var code int
			var body string
			waitFor(t, "the round and the apply on /readyz", func() bool {
				code, body = get(t, srv, "/readyz")
				rz.Reasons, rz.Notes = nil, nil
				if err := json.Unmarshal([]byte(body), &rz); err != nil {
					t.Fatalf("readyz body %q: %v", body, err)
				}
				return code == tt.code && slices.Equal(rz.Reasons, tt.reasons)
			})
			if rz.Ready != (tt.code == http.StatusOK) || !slices.Equal(rz.Notes, tt.want) {
				t.Errorf("readyz = %d %s, want notes %q", code, body, tt.want)
			}
			if tt.want == nil && strings.Contains(body, "notes") {
				t.Errorf("readyz = %s, want no notes", body)
			}
			if got := h.health.Notes(); !slices.Equal(got, tt.want) {
				t.Errorf("Notes = %q, want %q", got, tt.want)
			}
		})
	}
}

// noter is a ReadyNoter of fixed notes.
type noter []string

func (n noter) ReadyNotes() []string { return n }

// TestAddNoter: the notes of a part other than a sink (the relay) follow
// the sinks' notes, prefixed with the part's name, and leave the bridge
// ready; a nil noter adds nothing.
func TestAddNoter(t *testing.T) {
	tests := []struct {
		name  string
		sink  []string // the sink's notes
		parts map[string]noter
		want  []string
	}{
		{"none", nil, nil, nil},
		{"the relay alone", nil, map[string]noter{"relay": {"source consul stale"}}, []string{"relay: source consul stale"}},
		{"after the sinks'", []string{"hold"}, map[string]noter{"relay": {"a", "b"}}, []string{"sink consul: hold", "relay: a", "relay: b"}},
		{"a part with nothing to say", nil, map[string]noter{"relay": nil}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
			s := newSink("consul")
			for name, n := range tt.parts {
				h.health.AddNoter(name, n)
			}
			h.health.AddNoter("nil", nil)
			h.start(h.config(notingSink{s, tt.sink}))
			h.d.nextRound(t)
			s.nextApply(t)
			srv := h.health.Handler()
			waitFor(t, "ready", func() bool {
				code, _ := get(t, srv, "/readyz")
				return code == http.StatusOK
			})
			if got := h.health.Notes(); !slices.Equal(got, tt.want) {
				t.Errorf("Notes = %q, want %q", got, tt.want)
			}
		})
	}
}
