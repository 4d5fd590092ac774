package catalog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleettest"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// TestCatalogConformance runs the fleet member conformance suite on the
// fake Consul: catalog mode hands over on exit (on_exit deregister).
func TestCatalogConformance(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) fleettest.Fleet { return &catFleet{h: newCatHarness(t)} })
}

type catFleet struct{ h *catHarness }

const confRound = 6 * time.Second

func (f *catFleet) bridge(t *testing.T, id string) *catBridge {
	b := f.h.bridge(id, func(c *Config) { c.Round = confRound })
	f.h.start(b)
	return b
}

func (f *catFleet) Bridge(t *testing.T, id string) fleettest.Bridge { return f.bridge(t, id).c }

func (f *catFleet) HandOverBridge(t *testing.T, id string) fleettest.Bridge {
	return f.Bridge(t, id) // on_exit deregister is the default: release the keys
}

func (f *catFleet) Lead(t *testing.T, id string) fleettest.Bridge {
	b := f.bridge(t, id)
	f.h.pump(id+" leads", 50*time.Millisecond, b.c.Leader)
	return b.c
}

func (f *catFleet) Now() time.Time       { return f.h.clk.Now() }
func (f *catFleet) Round() time.Duration { return confRound }

func (f *catFleet) Settle(t *testing.T) { f.h.replanned(1, 50*time.Millisecond) }

func (f *catFleet) Observed(addr string) bool {
	_, _, c, ok := f.h.server(addr)
	return ok && c.Status == api.HealthPassing
}

func (f *catFleet) Refuse(t *testing.T, leader fleettest.Bridge) {
	f.h.fc.Deny(func(op *api.TxnOp) error {
		if op.Node != nil || op.Service != nil {
			return errors.New(consultest.Denied("node:write", "django-"))
		}
		return nil
	})
	c := leader.(*Catalog)
	if _, err := c.Apply(context.Background(), fleettest.Snap(f, 2, "10.0.0.1:8000", "10.0.0.3:8000")); err != nil {
		t.Fatal(err)
	}
	f.h.pump("the leader refused", 100*time.Millisecond, func() bool { return c.member.Fault() != nil })
}
