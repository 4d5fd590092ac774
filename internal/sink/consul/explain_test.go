package consul

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

func TestCatalogExplain(t *testing.T) {
	c := &Catalog{cfg: Config{SharedConfig: SharedConfig{Service: "django"}}}
	c.cfg.Catalog.KVPrefix = DefaultKVPrefix("django")
	a := netip.MustParseAddrPort("10.1.0.5:8000")
	ctx := context.Background()
	if x := c.Explain(ctx, a, true); x.State != sink.ExplainWritten || !strings.Contains(x.Detail, "node django-10.1.0.5-8000") {
		t.Errorf("written: %+v", x)
	}
	if x := c.Explain(ctx, a, false); x.State != sink.ExplainAbsent {
		t.Errorf("absent: %+v", x)
	}
	c.foreign.inWay = map[string]string{"django-10.1.0.5-8000": "team-b's bridge"}
	if x := c.Explain(ctx, a, true); x.State != sink.ExplainSkipped || !strings.Contains(x.Detail, "team-b's bridge") {
		t.Errorf("foreign: %+v", x)
	}
}

func TestAgentExplain(t *testing.T) {
	a := &Agent{cfg: Config{SharedConfig: SharedConfig{Service: "django"}}}
	addr := netip.MustParseAddrPort("10.1.0.5:8000")
	if x := a.Explain(context.Background(), addr, true); x.State != sink.ExplainWritten || !strings.Contains(x.Detail, "ID django-10.1.0.5-8000") {
		t.Errorf("written: %+v", x)
	}
}
