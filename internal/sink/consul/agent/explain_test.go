package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func TestAgentExplain(t *testing.T) {
	a := &Agent{cfg: Config{SharedConfig: consulclient.SharedConfig{Service: "django"}}}
	addr := netip.MustParseAddrPort("10.1.0.5:8000")
	if x := a.Explain(context.Background(), addr, true); x.State != sink.ExplainWritten || !strings.Contains(x.Detail, "ID django-10.1.0.5-8000") {
		t.Errorf("written: %+v", x)
	}
}
