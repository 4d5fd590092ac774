package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleettest"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// TestCatalogConformance runs the fleet member conformance suite on the
// fake Consul: catalog mode hands over on exit (on_exit deregister).
func TestCatalogConformance(t *testing.T) {
	fleettest.RunEach(t, inBubble, func(t *testing.T) fleettest.Fleet { return &catFleet{h: newCatHarness(t)} })
}

type catFleet struct {
	h       *catHarness
	bridges []*Catalog // every bridge started, in order
}

const confRound = 6 * time.Second

func (f *catFleet) bridge(t *testing.T, id string) *catBridge {
	b := f.h.bridge(id, func(c *Config) { c.Round = confRound })
	f.h.start(b)
	f.bridges = append(f.bridges, b.c)
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

// Settle waits, without moving the clock, until the leader has read every
// observation published so far and written what it called for: it waits
// again, in a blocking read from the observations' current index. (Moving
// the clock until the leader reads again could take it past a hand-over's
// grace.) When no bridge of the fleet leads (another holder has the lock:
// EndTerm), it lets two rounds pass instead, in which a leader would have
// written.
func (f *catFleet) Settle(t *testing.T) {
	t.Helper()
	if !slices.ContainsFunc(f.bridges, (*Catalog).Leader) {
		f.h.passRounds(2)
		return
	}
	f.h.eventually("the leader caught up with the observations", func() bool { return f.h.fc.CaughtUp(testObsPrefix) })
}

func (f *catFleet) Observed(addr string) bool {
	_, _, c, ok := f.h.server(addr)
	return ok && c.Status == api.HealthPassing
}

func (f *catFleet) Refuse(t *testing.T, leader fleettest.Bridge) {
	// Let the leader finish what it is writing first: refused, it would
	// fail the Apply below with its standing fault.
	f.Settle(t)
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

// EndTerm implements fleettest.TermEnder: a session of no bridge (another
// holder) takes the leader key, as a standby takes it once the leader's
// lock is lost, and keeps it. The leader's lock sees the key change hands
// and ends its term; its session lives on, so it keeps publishing, and
// stands for the key again, which never comes free.
func (f *catFleet) EndTerm(t *testing.T, leader fleettest.Bridge) {
	t.Helper()
	c := leader.(*Catalog)
	f.h.takeLock("another holder")
	f.h.pump("the leader's term ends", 50*time.Millisecond, func() bool { return !c.Leader() })
}

var _ fleettest.TermEnder = (*catFleet)(nil)

// takeLock makes a session of holder (on a node of its own) take the
// fleet's leader key, whoever holds it, and returns the session.
func (h *catHarness) takeLock(holder string) string {
	h.t.Helper()
	if err := h.fc.RegisterNode(&api.CatalogRegistration{Node: holder, Address: "127.0.0.2"}, nil); err != nil {
		h.t.Fatal(err)
	}
	sid, err := h.fc.CreateSession(&api.SessionEntry{Name: holder, Node: holder, Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.fc.PutKV(testLockKey, []byte(holder), sid)
	return sid
}

// passRounds advances the clock by n rounds of the conformance fleet, in
// 50 ms steps, each once the bridges are idle (pump).
func (h *catHarness) passRounds(n int) {
	h.t.Helper()
	end := h.clk.Now().Add(time.Duration(n) * confRound)
	h.pump(fmt.Sprintf("%d rounds", n), 50*time.Millisecond, func() bool { return !h.clk.Now().Before(end) })
}

// TestCatalogEndTerm: after EndTerm the old leader is no leader, stays
// one (the other holder keeps the key), and writes nothing to the catalog
// however its observation changes; it still publishes its observation.
func TestCatalogEndTerm(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		f := &catFleet{h: newCatHarness(t)}
		a := f.Lead(t, "a")
		ctx := context.Background()
		if _, err := a.Apply(ctx, fleettest.Snap(f, 1, "10.0.0.1:8000")); err != nil {
			t.Fatal(err)
		}
		f.Settle(t)
		if !f.Observed("10.0.0.1:8000") {
			t.Fatal("the leader did not register its server")
		}
		before := catalogOps(f.h.fc.Applied())
		f.EndTerm(t, a)
		res, err := a.Apply(ctx, fleettest.Snap(f, 2, "10.0.0.1:8000", "10.0.0.2:8000"))
		if err != nil || res.Writes == 0 {
			t.Fatalf("Apply after the term ended = %d writes, %v; want its observation published", res.Writes, err)
		}
		f.Settle(t)
		if a.Leader() {
			t.Error("the old leader leads again while another holder has the lock")
		}
		if got := catalogOps(f.h.fc.Applied()); len(got) != len(before) {
			t.Errorf("the old leader wrote %v to the catalog after its term ended", got[len(before):])
		}
		if kv, _ := f.h.fc.KV(testLockKey); string(kv.Value) != "another holder" {
			t.Errorf("leader key %q, want the other holder's", kv.Value)
		}
	})
}
