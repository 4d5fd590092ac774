package catalog

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetmetrics"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetview"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// Explain implements sink.Explainer for catalog mode: the server's node,
// whether someone else holds that node, who writes the catalog and, on
// the leader, whether the fleet's removal guard holds the server.
func (c *Catalog) Explain(_ context.Context, addr netip.AddrPort, applied bool) sink.Explanation {
	x := sink.Explanation{Sink: c.Name()}
	node := NodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix, addr)
	if c.cfg.Catalog.Layout == LayoutSharedNode {
		node = SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix)
	}
	c.foreign.mu.Lock()
	owner, inWay := c.foreign.inWay[node]
	c.foreign.mu.Unlock()
	if inWay {
		x.State = sink.ExplainSkipped
		x.Detail = "the catalog node " + node + " belongs to someone else (" + owner + "): the leader leaves this server out until that node is gone"
		return x
	}
	if held, ok := c.guardView().Explain(addr); ok {
		return held
	}
	if !applied {
		x.State, x.Detail = sink.ExplainAbsent, "not in the snapshot this bridge published last"
		return x
	}
	who := "another bridge of the fleet leads"
	if c.Leader() {
		who = "this bridge leads"
	}
	x.State = sink.ExplainWritten
	x.Detail = "in this bridge's observation; the leader registers it as service " + c.cfg.Service + " on node " + node + " (" + who + ")"
	return x
}

var _ sink.Explainer = (*Catalog)(nil)

// Observers implements sink.FleetExplainer for catalog mode: it reads the
// fleet's observations from the KV store once and lists the live bridges
// (those whose keys a session holds) that observe addr.
func (c *Catalog) Observers(ctx context.Context, addr netip.AddrPort) ([]sink.Observer, error) {
	obs, err := c.readObservations(ctx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("read the fleet's observations: %w", err)
	}
	found := fleet.ObserversOf(obs, addr)
	out := make([]sink.Observer, len(found))
	for i, o := range found {
		out[i] = sink.Observer{Bridge: o.Bridge, Segment: o.Segment, Health: o.Health.String(), Output: o.Output}
	}
	return out, nil
}

var _ sink.FleetExplainer = (*Catalog)(nil)

// FleetGuard implements sink.FleetExplainer: what this bridge knows of
// the fleet's removal guard at ip on port (0: any).
func (c *Catalog) FleetGuard(ip netip.Addr, port uint16) sink.FleetGuard {
	return c.guardView().At(ip, port)
}

// ReadyNotes implements sink.ReadyNoter: on the leader, the fleet's
// removal guard's hold.
func (c *Catalog) ReadyNotes() []string { return c.guardView().Notes() }

var _ sink.ReadyNoter = (*Catalog)(nil)

// guardView is the fleet's removal guard as this bridge knows it.
func (c *Catalog) guardView() fleetview.Guard {
	return fleetview.Guard{Sink: c.Name(), Record: &c.guards, Leading: c.Leader(), Clock: c.cfg.Clock,
		Metric: fleetmetrics.HeldName("consul_catalog"), Words: fleetview.Words{Ready: "passing in Consul", Unobserved: "critical in Consul"}}
}
