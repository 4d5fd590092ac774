package sink

import (
	"context"
	"net/netip"
	"time"
)

// The states a sink reports for one server in an Explanation.
const (
	// ExplainWritten: the registry holds the server as the sink last
	// wrote it (Detail says how: "passing", "ready: true").
	ExplainWritten = "written"
	// ExplainSkipped: the sink does not export the server (Detail says
	// why: a foreign owner, an address it cannot carry, a failing check
	// where the sink lists ready servers only).
	ExplainSkipped = "skipped"
	// ExplainPending: the server is in the newest snapshot but the sink
	// has not applied it yet (or its last apply failed).
	ExplainPending = "pending"
	// ExplainAbsent: the sink holds nothing for the server.
	ExplainAbsent = "absent"
	// ExplainHeld: no bridge of the fleet observes the server any more,
	// but the fleet's removal guard holds its removal (Detail says since
	// when, until when and what consumers see meanwhile).
	ExplainHeld = "held"
)

// Explanation is one sink's account of one server, for `bridge explain`.
type Explanation struct {
	Sink   string `json:"sink"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Explainer is implemented by sinks that can say, for the server at addr
// as the snapshot they last applied holds it (applied false: it is not in
// that snapshot), what they did with it and why. Sinks that do not
// implement it are explained from the snapshot they last applied alone.
// Explain must not block on the registry for long: ctx bounds it.
type Explainer interface {
	Explain(ctx context.Context, addr netip.AddrPort, applied bool) Explanation
}

// Observer is one bridge of a fleet that observes a server, as the fleet's
// registry holds its observation: its segment and its app check verdict.
type Observer struct {
	Bridge  string `json:"bridge"`
	Segment string `json:"segment,omitempty"`
	Health  string `json:"health"`
	Output  string `json:"output,omitempty"`
}

// FleetExplainer is implemented by sinks that keep a fleet (Consul catalog
// mode, Kubernetes): Observers reads, from the fleet's registry, the live
// bridges whose observations hold the server at addr, sorted by bridge;
// FleetGuard says, without I/O, what this bridge knows of the fleet's
// removal guard at ip on port (0: any port).
type FleetExplainer interface {
	Observers(ctx context.Context, addr netip.AddrPort) ([]Observer, error)
	FleetGuard(ip netip.Addr, port uint16) FleetGuard
}

// FleetGuard is what a bridge knows of its fleet's removal guard at one
// address: the leader knows what it holds there, another bridge only that
// the leader does.
type FleetGuard struct {
	// Sink is the fleet's sink.
	Sink string `json:"sink"`
	// Leading: this bridge leads the fleet (its leader runs the guard).
	Leading bool `json:"leading"`
	// Holds are the servers at the address whose removal the guard holds
	// (known to the leader only), sorted by address.
	Holds []FleetHold `json:"holds,omitempty"`
	// Note says what the bridge knows when Holds says nothing: the guard
	// holds no server there, or only the leader knows.
	Note string `json:"note,omitempty"`
}

// FleetHold is one server whose removal the fleet's removal guard holds.
type FleetHold struct {
	Address string `json:"address"`
	// Since is when the episode began; Until when this server's hold ends
	// (its confirmation): it goes ahead then if still unobserved.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Unobserved is how many established servers went unobserved across
	// the fleet together, Established how many the fleet had, Held how
	// many the guard holds.
	Unobserved  int `json:"unobserved"`
	Established int `json:"established"`
	Held        int `json:"held"`
	// RemovalGuardHeld is what consumers see during the hold: ready (it
	// stays passing and ready) or unobserved (critical, not ready, but not
	// removed).
	RemovalGuardHeld string `json:"removal_guard_held"`
	// Detail words it all.
	Detail string `json:"detail"`
}
