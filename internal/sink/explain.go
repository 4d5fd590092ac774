package sink

import (
	"context"
	"net/netip"
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
// bridges whose observations hold the server at addr, sorted by bridge.
type FleetExplainer interface {
	Observers(ctx context.Context, addr netip.AddrPort) ([]Observer, error)
}
