package catalog

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func TestCatalogExplain(t *testing.T) {
	c := &Catalog{cfg: Config{SharedConfig: consulclient.SharedConfig{Service: "django"}}}
	c.cfg.Catalog.KVPrefix = consulclient.DefaultKVPrefix("django")
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

// TestCatalogObservers: explain's view of the fleet, from the KV store.
func TestCatalogObservers(t *testing.T) {
	_, a, b := twoBridges(t)
	ctx := context.Background()
	got, err := b.c.Observers(ctx, netip.MustParseAddrPort("10.0.0.2:8000"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Bridge != "a" || got[0].Segment != "lan-a" || got[0].Health != "ready" || got[1].Bridge != "b" {
		t.Fatalf("observers of a shared server: %+v", got)
	}
	if got, err := a.c.Observers(ctx, netip.MustParseAddrPort("10.0.0.3:8000")); err != nil || len(got) != 1 || got[0].Bridge != "b" {
		t.Fatalf("observers of b's server: %+v %v", got, err)
	}
}
