package kubernetes

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
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
