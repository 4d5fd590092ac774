package catalog

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func TestCatalogExplain(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
	})
}

// TestCatalogObservers: explain's view of the fleet, from the KV store.
func TestCatalogObservers(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
	})
}

// TestCatalogFleetGuard: while the fleet's removal guard holds servers,
// the leading bridge explains each as held (whatever its own snapshot), its
// /readyz notes name the hold, and explain finds the hold at the server's
// address; once its term ends it knows nothing of a hold. In both layouts
// (the held servers' keys differ) and both removal_guard_held values.
func TestCatalogFleetGuard(t *testing.T) {
	const x, y, z = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	tests := []struct {
		name, layout string
		ready        bool
		consumers    string // in the held server's detail
	}{
		{"node per server, held ready", LayoutNodePerServer, true, "consumers see it passing in Consul, as when observed (removal_guard_held: ready)"},
		{"shared node, held unobserved", LayoutSharedNode, false, "consumers see it critical in Consul, but it is not removed (removal_guard_held: unobserved)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			ctx := context.Background()
			h, a := loneBridgeIn(t, tt.layout, func(c *Config) {
				c.Catalog.Guard = fleet.GuardConfig{MaxFraction: 0.5, Confirm: time.Hour, Window: time.Minute, Established: time.Second, HeldReady: tt.ready}
			}, x, y, z)
			if n := a.c.ReadyNotes(); len(n) != 0 {
				t.Errorf("notes before any silence: %q", n)
			}
			h.apply(a, snap(2, x))
			h.pump("the fleet's guard holds", time.Second, func() bool { return len(a.c.ReadyNotes()) > 0 })
			if n := a.c.ReadyNotes(); len(n) != 1 || !strings.Contains(n[0], "fleet removal guard: holding 2 of 3 servers since") {
				t.Errorf("notes = %q, want the hold of 2 of 3", n)
			}
			if e := a.c.Explain(ctx, netip.MustParseAddrPort(y), false); e.State != sink.ExplainHeld || !strings.Contains(e.Detail, tt.consumers) ||
				!strings.Contains(e.Detail, "2 of the fleet's 3 established servers went unobserved at once") {
				t.Errorf("Explain(%s) = %+v, want held, with %q", y, e, tt.consumers)
			}
			if e := a.c.Explain(ctx, netip.MustParseAddrPort(x), true); e.State != sink.ExplainWritten {
				t.Errorf("Explain(%s), observed = %+v, want written", x, e)
			}
			if g := a.c.FleetGuard(netip.MustParseAddr("10.0.0.3"), 0); !g.Leading || len(g.Holds) != 1 || g.Holds[0].Address != z {
				t.Errorf("FleetGuard(10.0.0.3) = %+v, want the leader's hold of %s", g, z)
			}
			h.takeLock("another holder")
			h.pump("the term ends", 50*time.Millisecond, func() bool { return !a.c.Leader() && len(a.c.ReadyNotes()) == 0 })
			if e := a.c.Explain(ctx, netip.MustParseAddrPort(y), false); e.State == sink.ExplainHeld {
				t.Errorf("Explain(%s) after the term = %+v", y, e)
			}
			if g := a.c.FleetGuard(netip.MustParseAddr("10.0.0.3"), 0); g.Leading || len(g.Holds) != 0 ||
				!strings.Contains(g.Note, "only the leader knows") || !strings.Contains(g.Note, "udp_discovery_bridge_consul_catalog_removals_held") {
				t.Errorf("FleetGuard after the term = %+v", g)
			}
		}))
	}
}
