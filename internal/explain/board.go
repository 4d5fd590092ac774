package explain

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// CheckSource is the app check's history of one server
// (internal/checker, through an adapter in cmd/bridge).
type CheckSource interface {
	ExplainCheck(addr netip.AddrPort) (Check, bool)
}

// FleetSource reads, from the fleet's registry, which bridges observe the
// server at addr, and says what this bridge knows of the fleet's removal
// guard (a fleet sink: Consul catalog mode, Kubernetes).
type FleetSource = sink.FleetExplainer

// Config is what a Board reports besides what it is fed.
type Config struct {
	Bridge, Segment string
	// Plan is the planner's configuration (missed_rounds, the guard).
	Plan plan.Config
	// Interval is the time between rounds, for the removal rule's words.
	Interval time.Duration
	Clock    clock.Clock
	// Checks is nil when no app check runs.
	Checks CheckSource
	// Fleet is nil when no sink keeps a fleet.
	Fleet FleetSource
}

// Board holds the latest view of a running bridge for its reports. The
// loop feeds it (Planned, Applied); reports read it from any goroutine.
type Board struct {
	cfg  Config
	view atomic.Pointer[view]

	mu    sync.Mutex
	sinks []*sinkView
}

type view struct {
	round uint64
	state plan.State
}

type sinkView struct {
	name    string
	sink    sink.Sink
	applied endpoint.Snapshot
	ok      bool // a snapshot was applied
	err     error
}

// New returns a Board reporting under cfg.
func New(cfg Config) *Board {
	cfg.Clock = clock.OrReal(cfg.Clock)
	return &Board{cfg: cfg}
}

// Planned records the planner's state after round (plan.State is
// immutable, so the Board keeps it as it is).
func (b *Board) Planned(round uint64, s plan.State) {
	b.view.Store(&view{round: round, state: s})
}

// AddSink declares a sink, named as the loop names it, before the first
// Applied.
func (b *Board) AddSink(name string, s sink.Sink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sinks = append(b.sinks, &sinkView{name: name, sink: s})
}

// Applied records the outcome of an apply of snapshot s by the sink name:
// err nil, s is what the sink's registry now follows.
func (b *Board) Applied(name string, s endpoint.Snapshot, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range b.sinks {
		if v.name != name {
			continue
		}
		v.err = err
		if err == nil {
			v.applied, v.ok = s, true
		}
	}
}

// ParseQuery parses "ip" or "ip:port".
func ParseQuery(q string) (ip netip.Addr, port uint16, err error) {
	q = strings.TrimSpace(q)
	if ap, err := netip.ParseAddrPort(q); err == nil {
		return ap.Addr().Unmap(), ap.Port(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(q, "[]"))
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("server %q: want an IP address or ip:port such as 10.1.4.20 or 10.1.4.20:8000", q)
	}
	return a.Unmap(), 0, nil
}

// Report explains the servers the bridge holds at query ("ip" or
// "ip:port").
func (b *Board) Report(ctx context.Context, query string) (Report, error) {
	ip, port, err := ParseQuery(query)
	if err != nil {
		return Report{}, err
	}
	now := b.cfg.Clock.Now()
	r := Report{Query: query, Bridge: b.cfg.Bridge, Segment: b.cfg.Segment, At: now.UTC(), Servers: []Server{}}
	v := b.view.Load()
	if v == nil {
		r.Note = "no round has completed yet"
		return r, nil
	}
	r.Round = v.round
	for _, in := range v.state.Lookups(b.cfg.Plan, ip) {
		if port != 0 && in.Endpoint.Addr.Port() != port {
			continue
		}
		r.Servers = append(r.Servers, b.server(ctx, in, now))
	}
	if len(r.Servers) == 0 {
		r.Note = fmt.Sprintf("this bridge holds no server at %s: it never answered this bridge's probes, its replies were refused "+
			"(udp_discovery_bridge_replies_refused_total, logs at warn), or it was removed after missed_rounds (%d) rounds without a reply",
			query, max(b.cfg.Plan.MissedRounds, 1))
	}
	if b.cfg.Fleet != nil {
		if g := b.cfg.Fleet.FleetGuard(ip, port); len(g.Holds) > 0 || !observesAll(r.Servers) {
			r.FleetGuard = &g
		}
	}
	return r, nil
}

// observesAll reports whether this bridge holds servers and observed each
// in its last complete round: then none is a server no bridge observes,
// which the fleet's removal guard could hold.
func observesAll(servers []Server) bool {
	for _, s := range servers {
		if s.Discovery.Misses > 0 || s.Removal.HeldByGuard {
			return false
		}
	}
	return len(servers) > 0
}

func (b *Board) server(ctx context.Context, in plan.Info, now time.Time) Server {
	e := in.Endpoint
	s := Server{Addr: e.Addr, Address: e.Addr.String(), Discovery: Discovery{
		Interface: e.Interface, FirstSeen: e.FirstSeen.UTC(), LastSeen: e.LastSeen.UTC(),
		LastReplyAge: now.Sub(e.LastSeen).Round(time.Millisecond).Seconds(), Misses: in.Misses, Established: in.Established,
	}}
	if e.Source.IsValid() {
		s.Discovery.Source = e.Source.String()
	}
	if e.Network.IsValid() {
		s.Discovery.Network = e.Network.String()
	}
	s.Removal = b.removal(in)
	health := endpoint.Ready
	if b.cfg.Checks != nil {
		if c, ok := b.cfg.Checks.ExplainCheck(e.Addr); ok {
			s.Check = &c
			health, _ = endpoint.ParseHealth(c.State)
		} else {
			health = endpoint.Pending
			s.Check = &Check{State: endpoint.Pending.String(), History: []Result{}}
		}
	}
	s.State, s.Ready = health.String(), health.IsReady()
	if in.Misses > 0 {
		s.State = "unobserved"
	}
	s.Sinks = b.sinkStates(ctx, e.Addr)
	if b.cfg.Fleet != nil {
		obs, err := b.cfg.Fleet.Observers(ctx, e.Addr)
		s.Observers = obs
		if err != nil {
			s.FleetErr = err.Error()
		}
	}
	return s
}

// removal words the rule that removes the server next.
func (b *Board) removal(in plan.Info) Removal {
	rm := Removal{RoundsLeft: in.RoundsLeft, HeldByGuard: in.Held, GuardSince: in.HoldSince}
	missed := max(b.cfg.Plan.MissedRounds, 1)
	every := ""
	if b.cfg.Interval > 0 {
		every = fmt.Sprintf(" (a round every %s)", b.cfg.Interval)
	}
	switch {
	case in.Held:
		rm.Rule = fmt.Sprintf("its removal is due but held by the removal guard (episode since round %d: more than max_removal_fraction %g of the established servers went unseen together); "+
			"it is removed after %d more complete rounds without a reply%s, and stays if it answers", in.HoldSince, b.cfg.Plan.MaxRemovalFraction, in.RoundsLeft, every)
	case in.Misses > 0:
		rm.Rule = fmt.Sprintf("missed the last %d complete rounds: removed after %d more without a reply (missed_rounds %d)%s, unless the removal guard holds it",
			in.Misses, in.RoundsLeft, missed, every)
	default:
		rm.Rule = fmt.Sprintf("answered the last complete round: removed after missed_rounds (%d) complete rounds without a reply%s; a failing app check never removes it",
			missed, every)
	}
	if !in.Established {
		rm.Rule += "; not yet established (seen fewer than missed_rounds rounds in a row), so the removal guard would not hold it"
	}
	return rm
}

// sinkStates asks each sink about addr.
func (b *Board) sinkStates(ctx context.Context, addr netip.AddrPort) []Sink {
	b.mu.Lock()
	views := make([]sinkView, len(b.sinks))
	for i, v := range b.sinks {
		views[i] = *v
	}
	b.mu.Unlock()
	out := make([]Sink, 0, len(views))
	for _, v := range views {
		e, inApplied := find(v.applied.Endpoints, addr)
		if ex, ok := v.sink.(sink.Explainer); ok && v.ok {
			x := ex.Explain(ctx, addr, inApplied)
			out = append(out, Sink{Sink: v.name, State: x.State, Detail: x.Detail})
			continue
		}
		switch {
		case !v.ok && v.err != nil:
			out = append(out, Sink{Sink: v.name, State: sink.ExplainPending, Detail: "no apply succeeded yet: " + v.err.Error()})
		case !v.ok:
			out = append(out, Sink{Sink: v.name, State: sink.ExplainPending, Detail: "not applied yet"})
		case !inApplied && v.err != nil:
			out = append(out, Sink{Sink: v.name, State: sink.ExplainPending, Detail: "the last apply failed: " + v.err.Error()})
		case !inApplied:
			out = append(out, Sink{Sink: v.name, State: sink.ExplainPending, Detail: "not in the snapshot applied last (round " + fmt.Sprint(v.applied.Round) + ")"})
		default:
			out = append(out, Sink{Sink: v.name, State: sink.ExplainWritten, Detail: Health(e.Check)})
		}
	}
	return out
}

// Health words a Check as sinks export it.
func Health(c endpoint.Check) string {
	if c.Output == "" {
		return c.State.String()
	}
	return c.State.String() + ": " + c.Output
}

func find(eps []endpoint.Endpoint, addr netip.AddrPort) (endpoint.Endpoint, bool) {
	i, ok := slices.BinarySearchFunc(eps, addr, func(e endpoint.Endpoint, a netip.AddrPort) int { return e.Addr.Compare(a) })
	if !ok {
		return endpoint.Endpoint{}, false
	}
	return eps[i], true
}
