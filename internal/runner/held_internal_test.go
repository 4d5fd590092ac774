package runner

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// failingChecker says every server's app check fails.
type failingChecker struct{}

func (failingChecker) SetTargets([]endpoint.Endpoint) {}
func (failingChecker) Changed() <-chan struct{}       { return nil }
func (failingChecker) Decorate(s endpoint.Snapshot) endpoint.Snapshot {
	out := s
	out.Endpoints = append([]endpoint.Endpoint(nil), s.Endpoints...)
	for i := range out.Endpoints {
		out.Endpoints[i].Check = endpoint.Check{State: endpoint.Failing, Output: "TCP connect: connection refused"}
	}
	return out
}

// TestDecorateHeld: a server whose removal the guard holds reaches the
// sinks ready, its failing app check set aside (removal_guard_held ready,
// the default), or failing with the guard's output (unobserved); the
// others keep their checker's verdict.
func TestDecorateHeld(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:8000"), netip.MustParseAddrPort("10.0.0.2:8000")
	last := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	snap := endpoint.Snapshot{Round: 9, Endpoints: []endpoint.Endpoint{{Addr: a, LastSeen: last, Held: true}, {Addr: b}}}
	for _, tt := range []struct {
		unobserved bool
		want       endpoint.Health
		output     string
	}{
		{false, endpoint.Ready, "kept ready, its app check set aside (removal_guard_held: ready)"},
		{true, endpoint.Failing, "unseen since " + last.UTC().Format(time.RFC3339) + ", its removal held (removal_guard_held: unobserved)"},
	} {
		r := &runner{cfg: Config{Checker: failingChecker{}, HeldUnobserved: tt.unobserved}}
		got := r.decorate(snap)
		if c := got.Endpoints[0].Check; c.State != tt.want || !strings.Contains(c.Output, tt.output) {
			t.Errorf("unobserved %v: held server's check = %+v, want %v with %q", tt.unobserved, c, tt.want, tt.output)
		}
		if c := got.Endpoints[1].Check; c.State != endpoint.Failing {
			t.Errorf("unobserved %v: a server not held = %+v, want its checker's failing", tt.unobserved, c)
		}
		if snap.Endpoints[0].Check != (endpoint.Check{}) {
			t.Fatal("decorate modified the shared snapshot")
		}
	}
}
