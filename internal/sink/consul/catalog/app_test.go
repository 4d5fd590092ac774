package catalog

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// The app check in catalog mode: the leader writes the fleet's verdict on
// each server's app (fleet.Merge) as a check of its own, on transitions
// only, and deletes the consul-esm check that --consul-check used to add.

// checked is snap with the app checks' verdicts: addr -> verdict; servers
// left out are pending, as a bridge's checker holds a server it has not
// checked yet.
func checked(round uint64, verdicts map[string]endpoint.Check, addrs ...string) endpoint.Snapshot {
	s := snap(round, addrs...)
	for i, e := range s.Endpoints {
		c, ok := verdicts[e.Addr.String()]
		if !ok {
			c = endpoint.Check{State: endpoint.Pending}
		}
		s.Endpoints[i].Check = c
	}
	return s
}

var (
	appReady   = endpoint.Check{State: endpoint.Ready, Output: "HTTP GET /healthz: 200 in 3 ms", Since: testStart}
	appFailing = endpoint.Check{State: endpoint.Failing, Output: "HTTP GET /healthz: 503 in 4 ms", Since: testStart}
	appRefused = endpoint.Check{State: endpoint.Failing, Output: "TCP connect: connection refused", Since: testStart}
)

// appCheck is the app check of the server at addr, in the harness's
// layout.
func (h *catHarness) appCheck(addr string) (api.HealthCheck, bool) {
	node, id := sid(addr), AppCheckID
	if h.layout == LayoutSharedNode {
		node, id = SharedNodeName("django", testFleet), AppCheckID+":"+sid(addr)
	}
	_, _, c, ok := h.fc.Entry(node, sid(addr), id)
	return c, ok
}

// appIs waits until the app check of addr has status and output ("":
// until it has none).
func (h *catHarness) appIs(addr, status, output string) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("app check of %s %s %q", addr, status, output), func() bool {
		c, ok := h.appCheck(addr)
		if status == "" {
			return !ok
		}
		return ok && c.Status == status && c.Output == output
	})
}

// guard is the applied operation that fences a leader's transaction.
const guard = "kv check-session " + testFleet + "/leader"

// PutCheck sets a check behind the sink's back.
func (f *fakeCatalog) PutCheck(c api.HealthCheck) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.checks[fakeRef{c.Node, c.CheckID}] = &c
	f.bumpLocked()
}

// PutNodeMeta sets the meta of an existing node behind the sink's back.
func (f *fakeCatalog) PutNodeMeta(node string, meta map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := *f.st.nodes[node]
	n.Meta = meta
	f.st.nodes[node] = &n
	f.bumpLocked()
}

func TestAppCheckOf(t *testing.T) {
	tests := []struct {
		h              endpoint.Health
		out            string
		status, output string
	}{
		{endpoint.Ready, "HTTP GET /: 200 in 3 ms", api.HealthPassing, "ready: HTTP GET /: 200 in 3 ms"},
		{endpoint.Pending, "", api.HealthCritical, "pending: the app check has not passed yet"},
		{endpoint.Pending, "HTTP GET /: 200 in 3 ms", api.HealthCritical, "pending: HTTP GET /: 200 in 3 ms"},
		{endpoint.Failing, "HTTP GET /: 503 in 4 ms", api.HealthCritical, "failing: HTTP GET /: 503 in 4 ms"},
		{endpoint.Failing, "", api.HealthCritical, "failing: the app check fails"},
	}
	for _, tt := range tests {
		c := appCheckOf(tt.h, tt.out)
		if c.status != tt.status || c.output != tt.output {
			t.Errorf("appCheckOf(%v, %q) = %s %q, want %s %q", tt.h, tt.out, c.status, c.output, tt.status, tt.output)
		}
		if got := healthOf(&c); got != tt.h {
			t.Errorf("healthOf(%q) = %v, want %v", c.output, got, tt.h)
		}
	}
	var cache metaCache
	if a, b := cache.app(endpoint.Failing, "x"), cache.app(endpoint.Failing, "x"); a != b {
		t.Error("equal verdicts got two app checks")
	}
}

// TestPlanCatalogHealth: what the leader plans and writes for a change of
// the fleet's verdict on one server, given what the catalog holds of it:
// one operation for a transition, nothing without app checks, the app
// check deleted once no bridge runs one, the consul-esm check deleted.
func TestPlanCatalogHealth(t *testing.T) {
	a := netip.MustParseAddrPort("10.1.0.5:8000")
	id := consulclient.ServiceID("django", a)
	obs := func(h endpoint.Health, out string) fleet.Observed {
		return fleet.Observed{Segments: []string{"s1"}, Bridges: 1, Health: h, Output: out}
	}
	none := obs(endpoint.Ready, "")
	held := func(d fleet.Observed, mod ...func(*catalogEntry)) map[string]catalogEntry {
		cur := currentOf(testShape(), map[netip.AddrPort]fleet.Observed{a: d}, nil)
		e := cur[id]
		spec := *e.Spec
		e.Spec = &spec
		for _, m := range mod {
			m(&e)
		}
		cur[id] = e
		return cur
	}
	withProbe := func(e *catalogEntry) { e.Spec.probe = true }
	critical := func(e *catalogEntry) { e.Passing, e.Since = false, tc0 }
	externalNode := func(e *catalogEntry) {
		e.Spec.nodeMeta = map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: testFleet, NodeMetaExternal: "true", NodeMetaProbe: "true"}
	}
	tests := []struct {
		name    string
		want    fleet.Observed
		current map[string]catalogEntry
		plan    string // register|update|pass=<ops>
	}{
		{"no app checks: quiet", none, held(none), ""},
		{"verdict unchanged: quiet", obs(endpoint.Failing, "503"), held(obs(endpoint.Failing, "503")), ""},
		{"a new server, pending", obs(endpoint.Pending, ""), nil,
			"register=node cas,service set,check set " + ObservedCheckID + ",check set " + AppCheckID},
		{"a new server without app checks: no app check", none, nil,
			"register=node cas,service set,check set " + ObservedCheckID},
		{"pending to ready: the app check alone", obs(endpoint.Ready, "200"), held(obs(endpoint.Pending, "")),
			"update=check set " + AppCheckID},
		{"ready to failing: the app check alone", obs(endpoint.Failing, "503"), held(obs(endpoint.Ready, "200")),
			"update=check set " + AppCheckID},
		{"a new output of the same state", obs(endpoint.Failing, "refused"), held(obs(endpoint.Failing, "503")),
			"update=check set " + AppCheckID},
		{"app checks turned off: the app check deleted", none, held(obs(endpoint.Ready, "200")),
			"update=check delete " + AppCheckID},
		{"app checks turned on", obs(endpoint.Pending, ""), held(none),
			"update=check set " + AppCheckID},
		{"a consul-esm check left over: deleted", none, held(none, withProbe),
			"update=check delete " + ProbeCheckID},
		{"observed again with a new verdict", obs(endpoint.Failing, "503"), held(obs(endpoint.Ready, "200"), critical),
			"update=check set " + ObservedCheckID + ",check set " + AppCheckID},
		{"observed again, verdict unchanged", obs(endpoint.Failing, "503"), held(obs(endpoint.Failing, "503"), critical),
			"pass=check set " + ObservedCheckID},
		{"a node of --consul-check: rewritten whole, the consul-esm check deleted", obs(endpoint.Ready, "200"),
			held(obs(endpoint.Ready, "200"), withProbe, externalNode),
			"register=node set,service set,check set " + ObservedCheckID + ",check set " + AppCheckID + ",check delete " + ProbeCheckID},
		{"a node of --consul-check without app checks", none, held(none, withProbe, externalNode),
			"register=node set,service set,check set " + ObservedCheckID + ",check delete " + ProbeCheckID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := testShape()
			sh.metas = &metaCache{}
			p := fleet.Reconcile(sh, map[netip.AddrPort]fleet.Observed{a: tt.want}, tt.current, tc0, time.Minute, false)
			c := &Catalog{}
			var parts []string
			for _, l := range []struct {
				name string
				kind writeKind
				es   []catalogEntry
			}{{"register", writeRegister, p.Register}, {"update", writeUpdate, p.Update}, {"pass", writePass, p.Pass}} {
				for i := range l.es {
					it := writeItem{e: &l.es[i], kind: l.kind}
					var heldSpec *catalogSpec
					if cur, ok := tt.current[l.es[i].Key]; ok {
						heldSpec = cur.Spec
					}
					it.parts = writePartsOf(it, heldSpec)
					var ops []string
					for _, op := range c.ops(it) {
						switch {
						case op.Node != nil:
							ops = append(ops, "node "+string(op.Node.Verb))
						case op.Service != nil:
							ops = append(ops, "service "+string(op.Service.Verb))
						case op.Check != nil:
							ops = append(ops, "check "+string(op.Check.Verb)+" "+op.Check.Check.CheckID)
							if op.Check.Check.ServiceName != "django" || op.Check.Check.ServiceID != id {
								t.Errorf("check op %+v does not name its service (Consul's ACLs vet it by the name)", op.Check.Check)
							}
						}
					}
					if len(ops) != it.parts.count() {
						t.Errorf("%d operations, counted %d", len(ops), it.parts.count())
					}
					parts = append(parts, l.name+"="+strings.Join(ops, ","))
				}
			}
			if len(p.Fail)+len(p.Remove) > 0 {
				t.Errorf("plan fails or removes: %+v", p)
			}
			if got := strings.Join(parts, " "); got != tt.plan {
				t.Errorf("plan = %q\nwant   %q", got, tt.plan)
			}
		})
	}
}

// TestCatalogAppCheckTransitions: a lone bridge running app checks. A new
// server is registered pending (critical app check, passing observed
// check); each transition of its check is published (one KV write, even
// when the snapshot re-posted for it has the round of the last one) and
// written by the leader as one operation, the app check; rounds that
// change nothing publish and write nothing.
func TestCatalogAppCheckTransitions(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const x, y = "10.0.0.1:8000", "10.0.0.2:8000"
		h := newCatHarness(t)
		a := h.bridge("a", func(c *Config) { c.Round = 10 * time.Second })
		h.start(a)
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		at := func(s endpoint.Snapshot) endpoint.Snapshot { s.At = h.clk.Now(); return s }
		if n := h.apply(a, at(checked(1, map[string]endpoint.Check{y: appReady}, x, y))); n != 1 {
			t.Errorf("first Apply wrote %d keys, want 1", n)
		}
		h.settled(map[string]string{x: "1", y: "1"})
		h.appIs(x, api.HealthCritical, "pending: the app check has not passed yet")
		h.appIs(y, api.HealthPassing, "ready: "+appReady.Output)
		if kv, _ := h.fc.KV(testObsPrefix + "a/0"); kv.Value[4] != 2 {
			t.Errorf("observation with verdicts published in format v%d, want v2", kv.Value[4])
		}
		h.replanned(2, time.Second) // past the grace

		steps := []struct {
			name    string
			s       endpoint.Snapshot
			keys    int      // KV writes of the publish
			ops     []string // the leader's catalog operations
			x, xOut string   // x's app check afterwards
		}{
			{"the next round, nothing changed", checked(2, map[string]endpoint.Check{y: appReady}, x, y), 0, nil,
				api.HealthCritical, "pending: the app check has not passed yet"},
			{"x rises to ready (re-posted with round 2)", checked(2, map[string]endpoint.Check{x: appReady, y: appReady}, x, y), 1,
				[]string{guard, "check set " + sid(x) + "/" + AppCheckID}, api.HealthPassing, "ready: " + appReady.Output},
			{"x fails", checked(3, map[string]endpoint.Check{x: appFailing, y: appReady}, x, y), 1,
				[]string{guard, "check set " + sid(x) + "/" + AppCheckID}, api.HealthCritical, "failing: " + appFailing.Output},
			{"quiet rounds while x fails", checked(4, map[string]endpoint.Check{x: appFailing, y: appReady}, x, y), 0, nil,
				api.HealthCritical, "failing: " + appFailing.Output},
			{"x back", checked(5, map[string]endpoint.Check{x: appReady, y: appReady}, x, y), 1,
				[]string{guard, "check set " + sid(x) + "/" + AppCheckID}, api.HealthPassing, "ready: " + appReady.Output},
		}
		for _, st := range steps {
			applied, txns := len(h.fc.Applied()), h.fc.Count("Txn")
			if n := h.apply(a, at(st.s)); n != st.keys {
				t.Errorf("%s: Apply wrote %d keys, want %d", st.name, n, st.keys)
			}
			if st.ops != nil {
				h.appIs(x, st.x, st.xOut)
			}
			h.replanned(2, time.Second)
			if got := catalogOps(h.fc.Applied()[applied:]); !slices.Equal(got, st.ops) {
				t.Errorf("%s: the leader wrote %v, want %v", st.name, got, st.ops)
			}
			if st.keys == 0 && st.ops == nil && h.fc.Count("Txn") != txns {
				t.Errorf("%s: %d transactions, want none", st.name, h.fc.Count("Txn")-txns)
			}
			if c, _ := h.appCheck(x); c.Status != st.x || c.Output != st.xOut {
				t.Errorf("%s: x's app check %s %q, want %s %q", st.name, c.Status, c.Output, st.x, st.xOut)
			}
			// A failing app never takes a server out of the catalog.
			if !h.observed(x, api.HealthPassing, "1") {
				t.Errorf("%s: x's observed check is not passing", st.name)
			}
		}
	})
}

// TestCatalogAppCheckFleet: two bridges, one of which cannot reach the app
// port: the server stays ready; both failing turns it critical once; one
// coming back makes it passing again.
func TestCatalogAppCheckFleet(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const x = "10.0.0.1:8000"
		h := newCatHarness(t)
		a, b := h.bridge("a"), h.bridge("b")
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		h.start(b)
		h.apply(a, checked(1, map[string]endpoint.Check{x: appRefused}, x))
		h.apply(b, checked(1, map[string]endpoint.Check{x: appReady}, x))
		h.settled(map[string]string{x: "2"})
		h.appIs(x, api.HealthPassing, "ready: "+appReady.Output)
		h.replanned(2, time.Second)

		applied := len(h.fc.Applied())
		h.apply(b, checked(2, map[string]endpoint.Check{x: appFailing}, x))
		h.appIs(x, api.HealthCritical, "failing: "+appRefused.Output) // a's output: a sorts first
		h.apply(a, checked(2, map[string]endpoint.Check{x: appRefused}, x))
		h.apply(b, checked(3, map[string]endpoint.Check{x: appFailing}, x))
		h.replanned(2, time.Second)
		if got := catalogOps(h.fc.Applied()[applied:]); !slices.Equal(got, []string{guard, "check set " + sid(x) + "/" + AppCheckID}) {
			t.Errorf("both failing: the leader wrote %v, want the app check once", got)
		}
		h.apply(a, checked(3, map[string]endpoint.Check{x: appReady}, x))
		h.appIs(x, api.HealthPassing, "ready: "+appReady.Output)
	})
}

// TestCatalogWithoutAppChecks: a fleet without app checks publishes
// version 1 observations (what bridges of the previous release read) and
// its servers have no app check.
func TestCatalogWithoutAppChecks(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const x = "10.0.0.1:8000"
		h, _ := loneBridge(t, nil, x)
		if kv, _ := h.fc.KV(testObsPrefix + "a/0"); kv.Value[4] != 1 {
			t.Errorf("observation without verdicts published in format v%d, want v1", kv.Value[4])
		}
		if c, ok := h.appCheck(x); ok {
			t.Errorf("app check %+v without app checks", c)
		}
		if got := h.count("check set "); got != 1 {
			t.Errorf("%d checks written, want 1 (the observed check): %v", got, h.fc.Applied())
		}
	})
}

// TestCatalogAppChecksTurnedOff: once no bridge runs app checks, the
// leader deletes the app checks (a critical one left behind would keep the
// server out of ?passing for good).
func TestCatalogAppChecksTurnedOff(t *testing.T) {
	for _, layout := range []string{LayoutNodePerServer, LayoutSharedNode} {
		t.Run(layout, bubble(func(t *testing.T) {
			const x = "10.0.0.1:8000"
			h := newCatHarness(t)
			h.layout = layout
			a := h.bridge("a")
			h.start(a)
			h.pump("leadership", 50*time.Millisecond, a.c.Leader)
			h.apply(a, checked(1, map[string]endpoint.Check{x: appFailing}, x))
			h.settled(map[string]string{x: "1"})
			h.appIs(x, api.HealthCritical, "failing: "+appFailing.Output)
			h.apply(a, snap(2, x)) // restarted with app_check none
			h.appIs(x, "", "")
			if got := h.count("check delete "); got != 1 {
				t.Errorf("%d check deletes, want 1: %v", got, h.fc.Applied())
			}
		}))
	}
}

// TestCatalogRemovesProbeCheck: an entry written with --consul-check before
// app checks (the consul-esm check, the external-node meta) is rewritten
// once: the node without that meta and the consul-esm check deleted; then
// it is quiet.
func TestCatalogRemovesProbeCheck(t *testing.T) {
	for _, layout := range []string{LayoutNodePerServer, LayoutSharedNode} {
		t.Run(layout, bubble(func(t *testing.T) {
			const x = "10.0.0.1:8000"
			h, a := loneBridgeIn(t, layout, nil, x)
			node, probe := sid(x), ProbeCheckID
			if layout == LayoutSharedNode {
				node, probe = SharedNodeName("django", testFleet), ProbeCheckID+":"+sid(x)
			}
			h.replanned(2, time.Second) // past the grace
			meta := map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: testFleet, NodeMetaExternal: "true"}
			if layout == LayoutNodePerServer {
				meta[NodeMetaProbe] = "true"
			}
			h.fc.PutNodeMeta(node, meta)
			h.fc.PutCheck(api.HealthCheck{Node: node, CheckID: probe, Name: "tcp " + x, ServiceID: sid(x), ServiceName: "django",
				Status: api.HealthPassing, Definition: api.HealthCheckDefinition{TCP: x}})
			applied := len(h.fc.Applied())
			h.clk.Advance(time.Minute) // the resync reads them
			h.eventually("the consul-esm check deleted", func() bool {
				_, _, _, ok := h.fc.Entry(node, sid(x), probe)
				return !ok
			})
			want := []string{guard, "node set " + node, "service set " + node + "/" + sid(x), "check set " + node + "/" + ObservedCheckID, "check delete " + node + "/" + probe}
			if layout == LayoutSharedNode { // the shared node, then the entry
				want = []string{guard, "node set " + node, guard, "check delete " + node + "/" + probe}
			}
			h.eventually("the node rewritten", func() bool {
				for _, n := range h.fc.Catalog() {
					if strings.HasPrefix(n, "node "+node+" ") {
						return !strings.Contains(n, NodeMetaExternal)
					}
				}
				return false
			})
			if got := catalogOps(h.fc.Applied()[applied:]); !slices.Equal(got, want) {
				t.Errorf("the leader wrote %v, want %v", got, want)
			}
			txns := h.fc.Count("Txn")
			h.apply(a, snap(2, x))
			h.replanned(3, time.Second)
			if got := h.fc.Count("Txn"); got != txns {
				t.Errorf("%d transactions after the rewrite, want 0 (applied %v)", got-txns, h.fc.Applied())
			}
			if !h.observed(x, api.HealthPassing, "1") {
				t.Error("the server is not passing")
			}
		}))
	}
}

// TestCatalogAppCheckSharedNode: on the shared node each server's app
// check carries its service ID, and a transition writes it alone.
func TestCatalogAppCheckSharedNode(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const x, y = "10.0.0.1:8000", "10.0.0.2:8000"
		h := sharedHarness(t)
		a := h.bridge("a")
		h.start(a)
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		h.apply(a, checked(1, map[string]endpoint.Check{x: appReady, y: appReady}, x, y))
		h.settled(map[string]string{x: "1", y: "1"})
		h.appIs(x, api.HealthPassing, "ready: "+appReady.Output)
		h.appIs(y, api.HealthPassing, "ready: "+appReady.Output)
		h.replanned(2, time.Second)
		applied := len(h.fc.Applied())
		h.apply(a, checked(2, map[string]endpoint.Check{x: appReady, y: appFailing}, x, y))
		h.appIs(y, api.HealthCritical, "failing: "+appFailing.Output)
		h.replanned(2, time.Second)
		want := []string{guard, "check set " + testSharedNode + "/" + AppCheckID + ":" + sid(y)}
		if got := catalogOps(h.fc.Applied()[applied:]); !slices.Equal(got, want) {
			t.Errorf("the leader wrote %v, want %v", got, want)
		}
		if c, _ := h.appCheck(x); c.Status != api.HealthPassing {
			t.Errorf("x's app check %s, want passing", c.Status)
		}
	})
}

// TestCatalogPlanHealth: the dry run lists a transition of the fleet's
// verdict as Changed, with the state it turns to.
func TestCatalogPlanHealth(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const x, y = "10.0.0.1:8000", "10.0.0.2:8000"
		h := newCatHarness(t)
		a := h.bridge("a")
		h.start(a)
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		h.apply(a, checked(1, map[string]endpoint.Check{x: appReady, y: appReady}, x, y))
		h.settled(map[string]string{x: "1", y: "1"})
		h.appIs(x, api.HealthPassing, "ready: "+appReady.Output)
		h.appIs(y, api.HealthPassing, "ready: "+appReady.Output)
		d, err := a.c.Plan(context.Background(), checked(2, map[string]endpoint.Check{x: appReady, y: appFailing}, x, y))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Added)+len(d.Removed) != 0 || len(d.Changed) != 1 || d.Changed[0].Addr.String() != y ||
			d.Changed[0].Check.State != endpoint.Failing || d.Unchanged != 2 {
			t.Errorf("Plan = %+v, want %s changed to failing, 2 unchanged", d, y)
		}
	})
}

// TestObservationOfCatalog: the published observation carries the
// verdicts as the snapshot holds them.
func TestObservationOfCatalog(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		o := a.c.observation(checked(1, map[string]endpoint.Check{"10.0.0.1:8000": appFailing}, "10.0.0.1:8000", "10.0.0.2:8000"))
		want := []observation.Entry{
			{Addr: netip.MustParseAddrPort("10.0.0.1:8000"), Segment: "lan-a", Health: endpoint.Failing, Output: appFailing.Output},
			{Addr: netip.MustParseAddrPort("10.0.0.2:8000"), Segment: "lan-a", Health: endpoint.Pending},
		}
		if !slices.Equal(o.Entries, want) {
			t.Errorf("observation = %+v, want %+v", o.Entries, want)
		}
	})
}

// TestPlanCatalogAppCheckAllocs: a plan of 1,000 servers with verdicts
// allocates no more per server than one without (the app checks come from
// one per distinct verdict), and their specs share them.
func TestPlanCatalogAppCheckAllocs(t *testing.T) {
	const n = 1000
	desired := make(map[netip.AddrPort]fleet.Observed, n)
	for i := range n {
		h, out := endpoint.Failing, "HTTP GET /healthz: 503 in 4 ms"
		if i%2 == 0 {
			h, out = endpoint.Ready, "HTTP GET /healthz: 200 in 3 ms"
		}
		desired[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 213, byte(100 + i/250), byte(1 + i%250)}), 8000)] =
			fleet.Observed{Segments: []string{"a"}, Bridges: 1, Health: h, Output: out}
	}
	sh := testShape()
	sh.metas = &metaCache{}
	var p catalogPlan
	allocs := testing.AllocsPerRun(3, func() { p = fleet.Reconcile(sh, desired, nil, tc0, time.Minute, false) })
	apps := map[*appCheck]bool{}
	for _, e := range p.Register {
		apps[e.Spec.app] = true
	}
	if len(apps) != 2 {
		t.Errorf("%d app checks for 2 verdicts", len(apps))
	}
	if perServer := allocs / n; perServer > 5.5 { // as TestPlanCatalogSharesNames
		t.Errorf("%.2f allocations per server, want at most 5.5", perServer)
	}
}
