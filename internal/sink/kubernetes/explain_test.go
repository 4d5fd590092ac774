package kubernetes

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
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
