package catalog

import (
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

// This file is catalog mode's app check: the bridge-owned check the
// leader writes per server from the fleet's verdict, and its comparison.

// appCheck is a server's app check as the leader writes it, or as the
// catalog holds it.
type appCheck struct {
	// status is api.HealthPassing or api.HealthCritical (as read: any).
	status string
	// output is the state and the check's output, "<state>: <output>",
	// e.g. "failing: HTTP GET /healthz: 503 in 4 ms".
	output string
}

// sameApp reports whether a and b are the same app check, or both none.
func sameApp(a, b *appCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// appCheckOf is the app check of a server the fleet observes with the
// verdict h and its output: passing while h is Ready; critical while it is
// Pending or Failing, so that ?passing (which ANDs a service's checks)
// leaves the server out while the observed check stays passing (a failing
// app never removes a server). Its output names the state, since critical
// is both.
func appCheckOf(h endpoint.Health, output string) appCheck {
	if output == "" {
		switch h {
		case endpoint.Ready:
			output = "the app check passes"
		case endpoint.Pending:
			output = "the app check has not passed yet"
		default:
			output = "the app check fails"
		}
	}
	c := appCheck{status: api.HealthCritical, output: h.String() + ": " + output}
	if h == endpoint.Ready {
		c.status = api.HealthPassing
	}
	return c
}

// wantsApp reports whether a server observed as d gets an app check: not
// when no observer runs one (a verdict Ready with no output is what a
// bridge without app checks publishes).
func wantsApp(d fleet.Observed) bool { return d.Health != endpoint.Ready || d.Output != "" }

// healthOf is the state an app check's output names (Ready without one).
func healthOf(c *appCheck) endpoint.Health {
	if c == nil {
		return endpoint.Ready
	}
	state, _, _ := strings.Cut(c.output, ": ")
	h, _ := endpoint.ParseHealth(state)
	return h
}
