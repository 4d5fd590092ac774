package agent

import (
	"context"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Explain implements sink.Explainer for agent mode: the server's service
// on the local agent.
func (c *Agent) Explain(_ context.Context, addr netip.AddrPort, applied bool) sink.Explanation {
	x := sink.Explanation{Sink: c.Name()}
	if !applied {
		x.State, x.Detail = sink.ExplainAbsent, "not in the snapshot this bridge applied last"
		return x
	}
	x.State = sink.ExplainWritten
	x.Detail = "registered with the local agent as service " + c.cfg.Service + ", ID " + consulclient.ServiceID(c.cfg.Service, addr) +
		" (passing while this bridge's heartbeat is, and its app check when one runs)"
	return x
}

var _ sink.Explainer = (*Agent)(nil)
