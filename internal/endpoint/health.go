package endpoint

import "time"

// Health is a server's readiness as the bridge's app check (app_check)
// judges it. Discovery decides whether a server is held at all; Health
// decides whether the sinks call it ready. The whole state model of a
// server is:
//
//	pending     discovered and admitted, its app check has not yet passed
//	            rise times in a row (a new server starts here when an app
//	            check is configured); held, not ready
//	ready       the app check passed rise times in a row, or no app check
//	            is configured (the zero Health); held, ready
//	failing     the app check failed fall times in a row; held, not ready:
//	            a failing check never removes a server on its own
//	unobserved  it stopped answering discovery: held while its misses are
//	            below missed_rounds (and while the removal guard holds it);
//	            in a fleet, no live bridge observes it (critical in Consul,
//	            terminating in an EndpointSlice) until deregister_after
//	removed     gone from every sink
//
// Health carries the first three; unobserved and removed are the
// planner's and the fleet's (internal/plan, internal/fleet).
type Health uint8

const (
	// Ready is the zero Health: with no app check every held server is
	// ready.
	Ready Health = iota
	// Pending is a server not yet checked, or still rising.
	Pending
	// Failing is a server whose app check failed fall times in a row.
	Failing
)

// String is the state's name as logs, metrics, sinks and `bridge explain`
// spell it: "ready", "pending", "failing".
func (h Health) String() string {
	switch h {
	case Ready:
		return "ready"
	case Pending:
		return "pending"
	case Failing:
		return "failing"
	}
	return "unknown"
}

// IsReady reports whether h is Ready.
func (h Health) IsReady() bool { return h == Ready }

// ParseHealth is the inverse of Health.String; ok is false for any other
// name.
func ParseHealth(s string) (Health, bool) {
	for _, h := range []Health{Ready, Pending, Failing} {
		if h.String() == s {
			return h, true
		}
	}
	return Ready, false
}

// Check is the app check's verdict on one endpoint as the sinks export
// it. It changes only on a transition of State, so a sink that writes it
// writes once per transition, never once per check.
type Check struct {
	// State is the endpoint's Health.
	State Health
	// Output describes the check result that made the transition, e.g.
	// "HTTP GET /healthz: 503 in 4 ms" ("" with no app check).
	Output string
	// Since is when State began (zero with no app check).
	Since time.Time
}
