package kubernetes

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleettest"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

func TestExplain(t *testing.T) {
	s := &Sink{cfg: Config{Service: "django", BridgeID: "b1"}, ns: "default"}
	ctx := context.Background()
	tests := []struct {
		addr    string
		applied bool
		state   string
		detail  string
	}{
		{"127.0.0.1:8000", true, sink.ExplainSkipped, "cannot carry the address (loopback)"},
		{"169.254.169.254:80", true, sink.ExplainSkipped, "(link-local)"},
		{"10.1.0.5:8000", false, sink.ExplainAbsent, "not in the snapshot"},
		{"10.1.0.5:8000", true, sink.ExplainWritten, "EndpointSlices of service default/django (another bridge of the fleet leads)"},
	}
	for _, tt := range tests {
		x := s.Explain(ctx, netip.MustParseAddrPort(tt.addr), tt.applied)
		if x.State != tt.state || !strings.Contains(x.Detail, tt.detail) {
			t.Errorf("Explain(%s, %v) = %+v, want %s with %q", tt.addr, tt.applied, x, tt.state, tt.detail)
		}
	}
	s.leading.Store(true)
	if x := s.Explain(ctx, netip.MustParseAddrPort("10.1.0.5:8000"), true); !strings.Contains(x.Detail, "this bridge leads") {
		t.Errorf("leader: %+v", x)
	}
}

// Observers reads the fleet's observations as published: two bridges, one
// of which says the server fails its app check.
func TestExplainObservers(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	ctx := context.Background()
	srv := netip.MustParseAddrPort("10.213.0.1:8000")
	var sinks []*Sink
	for _, b := range []struct {
		id string
		h  endpoint.Health
	}{{"a", endpoint.Ready}, {"b", endpoint.Failing}} {
		s := newTestSink(t, f, clk, testConfig(b.id))
		if err := s.own.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		s.stop = func() {}
		snap := endpoint.Snapshot{At: clk.Now(), Endpoints: []endpoint.Endpoint{{Addr: srv, Check: endpoint.Check{State: b.h, Output: "HTTP GET /: " + b.h.String()}}}}
		if _, err := s.Apply(ctx, snap); err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
	}
	got, err := sinks[0].Observers(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Bridge != "a" || got[0].Health != "ready" || got[1].Bridge != "b" || got[1].Health != "failing" || got[1].Output != "HTTP GET /: failing" {
		t.Fatalf("observers %+v", got)
	}
	if got, err := sinks[0].Observers(ctx, netip.MustParseAddrPort("10.9.9.9:1")); err != nil || len(got) != 0 {
		t.Fatalf("unknown server: %+v %v", got, err)
	}
}

// TestExplainFleetGuard: while the fleet's removal guard holds servers,
// the leading bridge explains each as held (whatever its own snapshot), its
// /readyz notes name the hold, and explain finds the hold at the server's
// address; once its term ends it knows nothing of a hold.
func TestExplainFleetGuard(t *testing.T) {
	x, y, z := netip.MustParseAddrPort("10.213.0.1:8000"), netip.MustParseAddrPort("10.213.0.2:8000"), netip.MustParseAddrPort("10.213.0.3:8000")
	tests := []struct {
		name      string
		ready     bool
		consumers string // in the held server's detail
	}{
		{"held ready", true, "consumers see it a ready endpoint of the EndpointSlices, as when observed (removal_guard_held: ready)"},
		{"held unobserved", false, "consumers see it a not-ready, terminating endpoint of the EndpointSlices, but it is not removed (removal_guard_held: unobserved)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			k := newK8sFleet(t)
			cfg := testConfig("a")
			cfg.Guard = fleet.GuardConfig{MaxFraction: 0.5, Confirm: time.Hour, Window: time.Minute, Established: time.Second, HeldReady: tt.ready}
			s := k.startConfig(t, cfg)
			k.pump(t, "a leads", 100*time.Millisecond, s.Leader)
			if _, err := s.Apply(ctx, fleettest.Snap(k, 1, x.String(), y.String(), z.String())); err != nil {
				t.Fatal(err)
			}
			k.pump(t, "the three written", 100*time.Millisecond, func() bool {
				return k.Observed(x.String()) && k.Observed(y.String()) && k.Observed(z.String())
			})
			if n := s.ReadyNotes(); len(n) != 0 {
				t.Errorf("notes before any silence: %q", n)
			}
			if _, err := s.Apply(ctx, fleettest.Snap(k, 2, x.String())); err != nil {
				t.Fatal(err)
			}
			k.pump(t, "the fleet's guard holds", time.Second, func() bool { return len(s.ReadyNotes()) > 0 })
			if n := s.ReadyNotes(); len(n) != 1 || !strings.Contains(n[0], "fleet removal guard: holding 2 of 3 servers since") {
				t.Errorf("notes = %q, want the hold of 2 of 3", n)
			}
			if e := s.Explain(ctx, y, false); e.State != sink.ExplainHeld || !strings.Contains(e.Detail, tt.consumers) {
				t.Errorf("Explain(%s) = %+v, want held, with %q", y, e, tt.consumers)
			}
			if e := s.Explain(ctx, x, true); e.State != sink.ExplainWritten {
				t.Errorf("Explain(%s), observed = %+v, want written", x, e)
			}
			if g := s.FleetGuard(z.Addr(), z.Port()); !g.Leading || len(g.Holds) != 1 || g.Holds[0].Address != z.String() {
				t.Errorf("FleetGuard(%s) = %+v, want the leader's hold", z, g)
			}
			k.EndTerm(t, s)
			k.pump(t, "the hold forgotten", 100*time.Millisecond, func() bool { return len(s.ReadyNotes()) == 0 })
			if g := s.FleetGuard(z.Addr(), 0); g.Leading || len(g.Holds) != 0 || !strings.Contains(g.Note, "udp_discovery_bridge_kubernetes_removals_held") {
				t.Errorf("FleetGuard after the term = %+v", g)
			}
		})
	}
}
