// Package fleetview words what a fleet's leader last reported of the
// fleet's removal guard (fleet.GuardRecord) as every registry's sink
// reports it alike: bridge explain (sink.Explainer, sink.FleetExplainer)
// and /readyz (sink.ReadyNoter).
package fleetview

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Words are how a sink's consumers see a server.
type Words struct {
	// Ready is how they see an observed server ("passing in Consul"),
	// Unobserved one no bridge observes ("critical in Consul").
	Ready, Unobserved string
}

// Guard is a fleet sink's view of its fleet's removal guard. Build it when
// asked (it reads Leading once); the zero value knows nothing.
type Guard struct {
	// Sink names the sink.
	Sink string
	// Record is what the sink's leader reported last (fleet.Leader's
	// Record); Leading is whether this bridge leads now.
	Record  *fleet.GuardRecord
	Leading bool
	// Clock is the sink's clock (nil: the real one).
	Clock clock.Clock
	// Metric is the sink's removals_held metric, for bridges that do not
	// lead.
	Metric string
	Words  Words
}

// Explain is the sink's account of the server at addr when the fleet's
// removal guard holds it (false otherwise): state held, and since when,
// until when, why and what consumers see meanwhile.
func (g Guard) Explain(addr netip.AddrPort) (sink.Explanation, bool) {
	rep, ok := g.Record.Last()
	if !ok {
		return sink.Explanation{}, false
	}
	hs := rep.At(addr.Addr(), addr.Port())
	if len(hs) == 0 {
		return sink.Explanation{}, false
	}
	return sink.Explanation{Sink: g.Sink, State: sink.ExplainHeld, Detail: g.hold(rep, hs[0]).Detail}, true
}

// At is what this bridge knows of the fleet's removal guard at ip on port
// (0: any port), for sink.FleetExplainer.
func (g Guard) At(ip netip.Addr, port uint16) sink.FleetGuard {
	out := sink.FleetGuard{Sink: g.Sink, Leading: g.Leading}
	where := ip.String()
	if port != 0 {
		where = netip.AddrPortFrom(ip, port).String()
	}
	if !g.Leading {
		out.Note = "this bridge does not lead the fleet: whether the fleet's removal guard holds a server at " + where +
			" only the leader knows; while it holds removals, the leader's /readyz names the hold (its notes) and its " +
			g.Metric + " counts the servers held"
		return out
	}
	rep, ok := g.Record.Last()
	if !ok {
		out.Note = "this bridge leads the fleet but has not planned yet: its removal guard holds nothing so far"
		return out
	}
	for _, h := range rep.At(ip, port) {
		out.Holds = append(out.Holds, g.hold(rep, h))
	}
	if len(out.Holds) == 0 {
		out.Note = "this bridge leads the fleet: its removal guard holds no server at " + where
		if n := len(rep.State.Held); n > 0 {
			out.Note += fmt.Sprintf(" (it holds %d others: see /readyz)", n)
		}
	}
	return out
}

// Notes is the line /readyz shows while the fleet's removal guard holds
// removals (nothing otherwise), for sink.ReadyNoter.
func (g Guard) Notes() []string {
	rep, ok := g.Record.Last()
	if !ok {
		return nil
	}
	if r := rep.Reason(clock.OrReal(g.Clock).Now()); r != "" {
		return []string{r}
	}
	return nil
}

// hold words h, held as rep says.
func (g Guard) hold(rep fleet.GuardReport, h fleet.GuardHold) sink.FleetHold {
	now := clock.OrReal(g.Clock).Now()
	st, cfg := rep.State, rep.Config
	out := sink.FleetHold{Address: h.Addr.String(), Since: st.Since.UTC(), Until: h.Until.UTC(),
		Unobserved: st.Going, Established: st.Known, Held: len(st.Held), RemovalGuardHeld: "ready"}
	if !cfg.HeldReady {
		out.RemovalGuardHeld = "unobserved"
	}
	until := h.Until.UTC().Format(time.RFC3339)
	var b strings.Builder
	fmt.Fprintf(&b, "the fleet's removal guard holds its removal since %s until %s (in %s, its confirmation: removal_guard_rounds): "+
		"%d of the fleet's %d established servers went unobserved at once, more than max_removal_fraction %g, and the leader holds %d of them; ",
		st.Since.UTC().Format(time.RFC3339), until, max(h.Until.Sub(now), 0).Round(time.Second),
		st.Going, st.Known, cfg.MaxFraction, len(st.Held))
	if cfg.HeldReady {
		fmt.Fprintf(&b, "meanwhile consumers see it %s, as when observed (removal_guard_held: ready). Observed again, it simply stays; "+
			"still unobserved at %s, it turns %s then and is removed deregister_after (%s) later",
			g.Words.Ready, until, g.Words.Unobserved, rep.DeregisterAfter)
	} else {
		fmt.Fprintf(&b, "meanwhile consumers see it %s, but it is not removed (removal_guard_held: unobserved). Observed again, it is %s again; "+
			"still unobserved at %s, it is removed deregister_after (%s) later",
			g.Words.Unobserved, g.Words.Ready, until, rep.DeregisterAfter)
	}
	out.Detail = b.String()
	return out
}
