package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetmetrics"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetview"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// Explain implements sink.Explainer: whether the server at addr can be an
// endpoint of the fleet's EndpointSlices, who writes them and, on the
// leader, whether the fleet's removal guard holds it. Each bridge
// publishes what it observes; the leader writes the slices.
func (s *Sink) Explain(_ context.Context, addr netip.AddrPort, applied bool) sink.Explanation {
	x := sink.Explanation{Sink: s.Name()}
	if why, bad := refusal(addr.Addr()); bad {
		x.State = sink.ExplainSkipped
		x.Detail = "Kubernetes cannot carry the address (" + why + "): the leader leaves it out of " + s.written() +
			"; it is still in this bridge's observation"
		return x
	}
	if held, ok := s.guardView().Explain(addr); ok {
		return held
	}
	if !applied {
		x.State, x.Detail = sink.ExplainAbsent, "not in the snapshot this bridge published last"
		return x
	}
	who := "another bridge of the fleet leads"
	if s.leading.Load() {
		who = "this bridge leads"
	}
	x.State = sink.ExplainWritten
	x.Detail = "in this bridge's observation (ConfigMap of bridge " + s.cfg.BridgeID + "); the leader writes it to " + s.written() + " (" + who + ")"
	return x
}

var _ sink.Explainer = (*Sink)(nil)

// written names what the leader writes (k8s_write).
func (s *Sink) written() string {
	var out []string
	if !s.cfg.NoSlices {
		out = append(out, "the EndpointSlices of service "+s.ns+"/"+s.cfg.Service)
	}
	if s.cfg.DNS != nil {
		out = append(out, "the DNSEndpoint "+s.ns+"/"+s.cfg.DNS.Object+" (the A records of "+s.cfg.DNS.Name+" while ready)")
	}
	return strings.Join(out, " and ")
}

// Observers implements sink.FleetExplainer: it reads the fleet's Leases
// and observation ConfigMaps once (as a leader would, with a reader of its
// own) and lists the live bridges whose observations hold addr.
func (s *Sink) Observers(ctx context.Context, addr netip.AddrPort) ([]sink.Observer, error) {
	io := newLeaderIO(s, s.log)
	obs, _, err := io.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the fleet's observations: %w", err)
	}
	return observers(fleet.ObserversOf(obs, addr)), nil
}

// observers spells fleet observers for `bridge explain`.
func observers(in []fleet.Observer) []sink.Observer {
	out := make([]sink.Observer, len(in))
	for i, o := range in {
		out[i] = sink.Observer{Bridge: o.Bridge, Segment: o.Segment, Health: o.Health.String(), Output: o.Output}
	}
	return out
}

var _ sink.FleetExplainer = (*Sink)(nil)

// FleetGuard implements sink.FleetExplainer: what this bridge knows of
// the fleet's removal guard at ip on port (0: any).
func (s *Sink) FleetGuard(ip netip.Addr, port uint16) sink.FleetGuard {
	return s.guardView().At(ip, port)
}

// ReadyNotes implements sink.ReadyNoter: on the leader, the fleet's
// removal guard's hold.
func (s *Sink) ReadyNotes() []string { return s.guardView().Notes() }

var _ sink.ReadyNoter = (*Sink)(nil)

// guardView is the fleet's removal guard as this bridge knows it.
func (s *Sink) guardView() fleetview.Guard {
	return fleetview.Guard{Sink: s.Name(), Record: &s.guards, Leading: s.leading.Load(), Clock: s.clk,
		Metric: fleetmetrics.HeldName("kubernetes"),
		Words:  fleetview.Words{Ready: "a ready endpoint of the EndpointSlices", Unobserved: "a not-ready, terminating endpoint of the EndpointSlices"}}
}
