package catalog

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// Unit tests of catalog mode through fakeCatalog: bridges (Catalog
// instances) on one fake Consul and one manual clock. The leader works in
// the background, so each test runs in a synctest bubble (synctest.Test,
// or bubble for a subtest) and looks at the fake's state once every
// goroutine of the bubble is blocked (synctest.Wait): the bridges have done
// all they can without the clock. The steps that wait on the sink's clock
// (the lock's retries, the start-up grace, session renewals, the
// deregister delay) are driven by advancing it, a step at a time and only
// then (pump), so the clock never runs ahead of a busy bridge.

const testFleet = "udp-discovery-bridge/django"

var (
	testObsPrefix = testFleet + "/obs/"
	testLockKey   = testFleet + "/leader"
)

var testStart = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// ep is an endpoint at addr seen from addr's IP on eth0.
func ep(addr string) endpoint.Endpoint {
	a := netip.MustParseAddrPort(addr)
	return endpoint.Endpoint{Addr: a, Source: netip.AddrPortFrom(a.Addr(), 9999), Interface: "eth0"}
}

// snap is a snapshot of round with servers at addrs.
func snap(round uint64, addrs ...string) endpoint.Snapshot {
	s := endpoint.Snapshot{Round: round, At: testStart}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, ep(a))
	}
	s.Endpoints = endpoint.Sorted(s.Endpoints)
	return s
}

// sid is the service ID of a django server at addr.
func sid(addr string) string { return consulclient.ServiceID("django", netip.MustParseAddrPort(addr)) }

// addrsOf is the addresses of eps.
func addrsOf(eps []endpoint.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Addr.String())
	}
	return out
}

type catHarness struct {
	t   *testing.T
	fc  *fakeCatalog
	clk *clocktest.Clock
	// layout is every bridge's consul_catalog_layout: node-per-server
	// unless a test says otherwise (catalog_layout_test.go).
	layout string
	// leaderLogs, when set, returns the leader's log lines (for failures).
	leaderLogs func() []string
}

// catBridge is one bridge of the fleet.
type catBridge struct {
	id   string
	c    *Catalog
	logs *consultest.LogBuffer
}

func newCatHarness(t *testing.T) *catHarness {
	clk := clocktest.New(testStart)
	return &catHarness{t: t, fc: newFakeCatalog(t, clk), clk: clk, layout: LayoutNodePerServer}
}

// bridge builds a bridge with ID id observing on segment "lan-<id>", with a
// start-up grace of 10s and the observers meta on (so that tests see the
// count) unless mod changes it; Close runs at cleanup.
func (h *catHarness) bridge(id string, mod ...func(*Config)) *catBridge {
	h.t.Helper()
	log, logs := consultest.NewLogger()
	cfg := Config{SharedConfig: consulclient.SharedConfig{BridgeID: id, Tags: []string{"lab"}, Clock: h.clk},
		Catalog: Settings{Segment: "lan-" + id, StartupGrace: 10 * time.Second, LockWait: 100 * time.Millisecond, ObserversMeta: true, Layout: h.layout}}
	for _, m := range mod {
		m(&cfg)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		h.t.Fatal(err)
	}
	b := &catBridge{id: id, c: newCatalog(cfg, log, h.fc, nil, newCatalogMetrics(nil)), logs: logs}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.c.Close(ctx); err != nil {
			h.t.Errorf("Close %s: %v", id, err)
		}
	})
	return b
}

// inBubble runs test in a synctest bubble (synctest.Test). A goroutine
// that never blocks (a bridge spinning) would keep synctest.Wait, and the
// test, waiting for good: after bubbleGuard of real time, a guard against
// such a hang and no measure of anything, the run ends with every
// goroutine's stack.
func inBubble(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	guard := time.AfterFunc(bubbleGuard, func() {
		debug.SetTraceback("all")
		panic(fmt.Sprintf("%s still running after %v: a goroutine of its bubble never blocks", t.Name(), bubbleGuard))
	})
	defer guard.Stop()
	synctest.Test(t, test)
}

// bubbleGuard is how long inBubble lets a test run: a test takes
// milliseconds, so this is thousands of times that.
const bubbleGuard = 2 * time.Minute

// bubble is a subtest (t.Run's function) run inBubble.
func bubble(test func(t *testing.T)) func(t *testing.T) {
	return func(t *testing.T) { inBubble(t, test) }
}

// maxPumpSteps bounds a pump: cond has not come about after this many
// steps of the clock, and will not.
const maxPumpSteps = 1000

// pump checks cond each time the bridges are idle (every goroutine of the
// test's bubble is blocked: synctest.Wait) and, until it holds, advances
// the clock by step: only then, so that each step finds every bridge
// waiting on the clock, whatever the machine's load. A step of 0 never
// moves the clock: cond must hold once the bridges are idle.
func (h *catHarness) pump(what string, step time.Duration, cond func() bool) {
	h.t.Helper()
	for n := 0; ; n++ {
		synctest.Wait()
		if cond() {
			return
		}
		switch {
		case step == 0:
			h.t.Fatalf("no %s once the bridges were idle (the clock not moved)", what)
		case n == maxPumpSteps:
			h.t.Fatalf("no %s after %d steps of %v", what, n, step)
		}
		h.clk.Advance(step)
	}
}

// eventually checks cond once the bridges are idle, without moving the
// clock.
func (h *catHarness) eventually(what string, cond func() bool) { h.t.Helper(); h.pump(what, 0, cond) }

// start runs Start, moving the clock through its waits.
func (h *catHarness) start(b *catBridge) {
	h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.c.Start(context.Background()) }()
	var err error
	h.pump("Start of "+b.id, 50*time.Millisecond, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		h.t.Fatalf("Start %s: %v", b.id, err)
	}
}

func (h *catHarness) apply(b *catBridge, s endpoint.Snapshot) int {
	h.t.Helper()
	res, err := b.c.Apply(context.Background(), s)
	if err != nil {
		h.t.Fatalf("Apply %s round %d: %v", b.id, s.Round, err)
	}
	return res.Writes
}

// session is the ID of b's live session.
func (h *catHarness) session(b *catBridge) string { return h.fc.SessionNamed(sessionName(b.id)) }

// server is the catalog entry of the server at addr (node, service and
// observed check); ok is false when any is missing.
func (h *catHarness) server(addr string) (fakeNode, api.AgentService, api.HealthCheck, bool) {
	if h.layout == LayoutSharedNode {
		return h.fc.Entry(SharedNodeName("django", testFleet), sid(addr), ObservedCheckID+":"+sid(addr))
	}
	return h.fc.Entry(sid(addr), sid(addr), ObservedCheckID)
}

// observed reports whether addr is registered, with its check in status and
// its observers meta equal to observers.
func (h *catHarness) observed(addr, status, observers string) bool {
	_, s, c, ok := h.server(addr)
	return ok && c.Status == status && s.Meta[MetaObservers] == observers
}

// settled waits until each addr is registered and passing with the given
// observers meta.
func (h *catHarness) settled(observers map[string]string) {
	h.t.Helper()
	h.eventually("servers registered", func() bool {
		for a, n := range observers {
			if !h.observed(a, api.HealthPassing, n) {
				return false
			}
		}
		return true
	})
}

// replanned waits until the leader has gone through n more reads of the
// observations, advancing the clock by step to wake it.
func (h *catHarness) replanned(n int, step time.Duration) {
	h.t.Helper()
	from := h.fc.Count("ListKV")
	h.pump("leader re-plan", step, func() bool { return h.fc.Count("ListKV") >= from+n })
}

// replannedAfter makes change, which wakes the leader's blocking read of
// the observations, and waits without moving the clock until the leader
// merged it and read again. The reads are counted from before the change:
// the leader may be through with it before a count taken after.
func (h *catHarness) replannedAfter(change func()) {
	h.t.Helper()
	from := h.fc.Count("ListKV")
	change()
	h.eventually("leader re-plan", func() bool { return h.fc.Count("ListKV") >= from+1 })
}

// count returns how many applied ops start with prefix.
func (h *catHarness) count(prefix string) int {
	n := 0
	for _, op := range h.fc.Applied() {
		if strings.HasPrefix(op, prefix) {
			n++
		}
	}
	return n
}

// TestCatalogLoneBridge: Start creates the fleet node and a session and
// takes the lock; Apply publishes the observation under the session; the
// leader registers each server once, passing, with the fleet's meta.
func TestCatalogLoneBridge(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		h.start(a)
		sess := h.session(a)
		if sess == "" || !slices.Contains(h.fc.Nodes(), bridgesNode(testFleet)) {
			t.Fatalf("after Start: session %q, nodes %v; want a session and node %s", sess, h.fc.Nodes(), bridgesNode(testFleet))
		}
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		if kv, ok := h.fc.KV(testLockKey); !ok || kv.Session != sess || string(kv.Value) != "a" {
			t.Errorf("lock key = %+v (%v), want held by %s with value a", kv, ok, sess)
		}

		if n := h.apply(a, snap(1, "10.0.0.1:8000", "10.0.0.2:8000")); n != 1 {
			t.Errorf("first Apply wrote %d keys, want 1", n)
		}
		kv, ok := h.fc.KV(testObsPrefix + "a/0")
		if !ok || kv.Session != sess {
			t.Fatalf("observation key = %+v (%v), want held by %s", kv, ok, sess)
		}
		if o, err := observation.Decode([][]byte{kv.Value}); err != nil || o.Bridge != "a" || len(o.Entries) != 2 || o.Entries[0].Segment != "lan-a" {
			t.Errorf("published observation = %+v, %v", o, err)
		}

		h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1"})
		for _, addr := range []string{"10.0.0.1:8000", "10.0.0.2:8000"} {
			n, s, _, _ := h.server(addr)
			host, _, _ := strings.Cut(addr, ":")
			if n.Address != host || n.Meta[consulclient.MetaManagedBy] != consulclient.ManagedByValue || n.Meta[MetaFleet] != testFleet {
				t.Errorf("%s node = %+v", addr, n)
			}
			if s.Service != "django" || s.Address != host || s.Port != 8000 || !slices.Equal(s.Tags, []string{"lab"}) ||
				s.Meta[consulclient.MetaManagedBy] != consulclient.ManagedByValue || s.Meta[MetaFleet] != testFleet || s.Meta[MetaSegments] != "lan-a" {
				t.Errorf("%s service = %+v", addr, s)
			}
			for _, op := range []string{"node cas " + sid(addr), "service set " + sid(addr) + "/", "check set " + sid(addr) + "/"} {
				if got := h.count(op); got != 1 {
					t.Errorf("%q applied %d times, want 1", op, got)
				}
			}
		}
	})
}

// loneBridge is a started lone bridge, leading, whose servers are
// registered.
func loneBridge(t *testing.T, mod func(*Config), addrs ...string) (*catHarness, *catBridge) {
	return loneBridgeIn(t, LayoutNodePerServer, mod, addrs...)
}

// loneBridgeIn is loneBridge in the catalog layout layout.
func loneBridgeIn(t *testing.T, layout string, mod func(*Config), addrs ...string) (*catHarness, *catBridge) {
	h := newCatHarness(t)
	h.layout = layout
	a := h.bridge("a", func(c *Config) {
		if mod != nil {
			mod(c)
		}
	})
	h.start(a)
	h.pump("leadership", 50*time.Millisecond, a.c.Leader)
	h.apply(a, snap(1, addrs...))
	want := map[string]string{}
	for _, addr := range addrs {
		want[addr] = "1"
	}
	h.settled(want)
	return h, a
}

// TestCatalogQuiet: the same snapshot again writes no key, and the leader,
// woken by its timers, writes nothing.
func TestCatalogQuiet(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridge(t, nil, "10.0.0.1:8000", "10.0.0.2:8000")
		txns := h.fc.Count("Txn")
		if n := h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000")); n != 0 {
			t.Errorf("same snapshot wrote %d keys, want 0", n)
		}
		h.replanned(3, time.Second) // past the grace, and a resync
		if got := h.fc.Count("Txn"); got != txns {
			t.Errorf("%d transactions in quiet rounds, want 0 (applied %v)", got-txns, h.fc.Applied())
		}
	})
}

// twoBridges starts a (the leader) and b, publishing {1,2} and {2,3}.
func twoBridges(t *testing.T) (*catHarness, *catBridge, *catBridge) {
	h := newCatHarness(t)
	a, b := h.bridge("a"), h.bridge("b")
	h.start(a)
	h.pump("a leads", 50*time.Millisecond, a.c.Leader)
	h.start(b)
	h.apply(a, snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
	h.apply(b, snap(1, "10.0.0.2:8000", "10.0.0.3:8000"))
	h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "2", "10.0.0.3:8000": "1"})
	return h, a, b
}

// TestCatalogTwoBridges: the union is registered once per server, shared
// servers have both observers and segments, and only a leads.
func TestCatalogTwoBridges(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a, b := twoBridges(t)
		want := []string{bridgesNode(testFleet), sid("10.0.0.1:8000"), sid("10.0.0.2:8000"), sid("10.0.0.3:8000")}
		slices.Sort(want)
		if got := h.fc.Nodes(); !slices.Equal(got, want) {
			t.Errorf("nodes = %v, want %v", got, want)
		}
		if _, s, _, _ := h.server("10.0.0.2:8000"); s.Meta[MetaSegments] != "lan-a,lan-b" {
			t.Errorf("shared server segments = %q, want lan-a,lan-b", s.Meta[MetaSegments])
		}
		h.replanned(2, 200*time.Millisecond) // b waits for the lock meanwhile
		if !a.c.Leader() || b.c.Leader() {
			t.Errorf("leaders: a %v, b %v; want a only", a.c.Leader(), b.c.Leader())
		}
		for _, id := range []string{"a", "b"} {
			if kv, ok := h.fc.KV(testObsPrefix + id + "/0"); !ok || kv.Session != h.fc.SessionNamed(sessionName(id)) {
				t.Errorf("observation of %s = %+v (%v), want held by its session", id, kv, ok)
			}
		}
	})
}

// TestCatalogObserverLeavesItsSegment: two bridges of one segment see the
// same servers and one of them goes (its session lapses). By default
// nothing about the servers changed, and the leader writes nothing; with
// consul_observers_meta the count drops from 2 to 1 and every server's
// service is rewritten.
func TestCatalogObserverLeavesItsSegment(t *testing.T) {
	for _, tt := range []struct {
		name          string
		meta          bool
		before, after string
		wantTxns      bool
	}{
		{name: "default", meta: false, before: "", after: ""},
		{name: "observers meta", meta: true, before: "2", after: "1", wantTxns: true},
	} {
		t.Run(tt.name, bubble(func(t *testing.T) {
			h := newCatHarness(t)
			mod := func(c *Config) { c.Catalog.Segment = "lan"; c.Catalog.ObserversMeta = tt.meta }
			a, b := h.bridge("a", mod), h.bridge("b", mod)
			h.start(a)
			h.pump("a leads", 50*time.Millisecond, a.c.Leader)
			h.start(b)
			servers := []string{"10.0.0.1:8000", "10.0.0.2:8000"}
			h.apply(a, snap(1, servers...))
			h.apply(b, snap(1, servers...))
			h.settled(map[string]string{servers[0]: tt.before, servers[1]: tt.before})
			h.replanned(2, time.Second) // past the grace: settled for good
			txns, ops := h.fc.Count("Txn"), len(h.fc.Applied())

			h.die(b)
			h.replanned(3, time.Second)
			for _, s := range servers {
				if !h.observed(s, api.HealthPassing, tt.after) {
					_, svc, c, _ := h.server(s)
					t.Errorf("%s after b left: %s, observers %q; want passing, %q", s, c.Status, svc.Meta[MetaObservers], tt.after)
				}
			}
			if got := h.fc.Count("Txn") - txns; (got > 0) != tt.wantTxns {
				t.Errorf("b leaving made %d transactions (%v), want any: %v", got, h.fc.Applied()[ops:], tt.wantTxns)
			}
		}))
	}
}
