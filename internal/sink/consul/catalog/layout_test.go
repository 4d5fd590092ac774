package catalog

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// The shared-node layout (consul_catalog_layout shared-node): every server
// a service with its own observed check on the fleet's one synthetic node.

const testSharedNode = "django-servers"

func sharedHarness(t *testing.T) *catHarness {
	h := newCatHarness(t)
	h.layout = LayoutSharedNode
	return h
}

func TestSharedNodeName(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		for _, tt := range []struct{ service, fleet, want string }{
			{"django", "udp-discovery-bridge/django", "django-servers"},
			{"django", "udp-discovery-bridge/django-lab", "django-servers-b62ac5a8"},
			{"my app", "udp-discovery-bridge/my app", "my-app-servers"},
		} {
			if got := SharedNodeName(tt.service, tt.fleet); got != tt.want {
				t.Errorf("SharedNodeName(%q, %q) = %q, want %q", tt.service, tt.fleet, got, tt.want)
			}
		}
	})
}

// TestCatalogSharedNodeRegisters: the leader creates the shared node once
// (a NodeCAS, at 127.0.0.1, with the fleet's meta) and writes two
// operations per server: its service and its own observed check. Quiet
// rounds write nothing; the node is not written again.
func TestCatalogSharedNodeRegisters(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		servers := []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8001"}
		h, a := loneBridgeIn(t, LayoutSharedNode, nil, servers...)

		if got, want := h.fc.Nodes(), []string{testSharedNode, bridgesNode(testFleet)}; !slices.Equal(got, want) {
			t.Errorf("nodes = %v, want %v: no node per server", got, want)
		}
		for _, addr := range servers {
			n, s, c, _ := h.server(addr)
			host, _, _ := strings.Cut(addr, ":")
			if n.Address != sharedNodeAddr || n.Meta[consulclient.MetaManagedBy] != consulclient.ManagedByValue || n.Meta[MetaFleet] != testFleet || n.Meta[NodeMetaExternal] != "" {
				t.Errorf("%s: node = %+v", addr, n)
			}
			if s.ID != sid(addr) || s.Address != host || s.Meta[MetaFleet] != testFleet {
				t.Errorf("%s: service = %+v", addr, s)
			}
			if c.ServiceID != sid(addr) || c.CheckID != ObservedCheckID+":"+sid(addr) {
				t.Errorf("%s: check = %+v", addr, c)
			}
		}
		if got := h.count("node cas " + testSharedNode); got != 1 {
			t.Errorf("shared node created %d times, want 1 (applied %v)", got, h.fc.Applied())
		}
		if got := h.count("service set ") + h.count("check set "); got != 2*len(servers) {
			t.Errorf("%d service and check writes for %d servers, want 2 each", got, len(servers))
		}
		txns := h.fc.Count("Txn")
		h.apply(a, snap(2, servers...))
		h.replanned(3, time.Second) // past the grace, and a resync
		if got := h.fc.Count("Txn"); got != txns {
			t.Errorf("%d transactions in quiet rounds, want 0 (applied %v)", got-txns, h.fc.Applied())
		}
	})
}

// TestCatalogSharedNodeRemoves: a server no bridge observes turns critical
// at once and, deregister_after later, its service is deleted with its
// checks; the shared node and the other servers stay.
func TestCatalogSharedNodeRemoves(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridgeIn(t, LayoutSharedNode, nil, "10.0.0.1:8000", "10.0.0.2:8000")
		h.replanned(2, time.Second) // past the grace

		h.apply(a, snap(2, "10.0.0.1:8000"))
		h.eventually("10.0.0.2 critical", func() bool { return h.observed("10.0.0.2:8000", api.HealthCritical, "1") })
		h.pump("10.0.0.2 removed", 5*time.Second, func() bool { return h.count("service delete "+testSharedNode+"/"+sid("10.0.0.2:8000")) == 1 })
		for _, line := range h.fc.Catalog() {
			if strings.Contains(line, sid("10.0.0.2:8000")) {
				t.Errorf("left of the removed server: %s", line)
			}
		}
		if !h.observed("10.0.0.1:8000", api.HealthPassing, "1") || !slices.Contains(h.fc.Nodes(), testSharedNode) {
			t.Errorf("the other server or the shared node went too: %v", h.fc.Catalog())
		}
	})
}

// TestCatalogLayoutSwitch: a fleet that moves to the shared node (a
// restart with the other consul_catalog_layout) registers its servers
// there first, then marks their old nodes critical and removes them
// deregister_after later; and back.
func TestCatalogLayoutSwitch(t *testing.T) {
	for _, tt := range []struct{ from, to string }{
		{LayoutNodePerServer, LayoutSharedNode},
		{LayoutSharedNode, LayoutNodePerServer},
	} {
		t.Run(tt.from+" to "+tt.to, bubble(func(t *testing.T) {
			h := newCatHarness(t)
			h.layout = tt.from
			servers := []string{"10.0.0.1:8000", "10.0.0.2:8000"}
			old := h.bridge("a")
			h.start(old)
			h.pump("old leads", 50*time.Millisecond, old.c.Leader)
			h.apply(old, snap(1, servers...))
			h.settled(map[string]string{servers[0]: "1", servers[1]: "1"})
			h.die(old)

			h.layout = tt.to
			b := h.bridge("b")
			h.start(b)
			h.pump("b leads", 50*time.Millisecond, b.c.Leader)
			h.apply(b, snap(1, servers...))
			h.settled(map[string]string{servers[0]: "1", servers[1]: "1"})
			// The old entries: critical (past b's start-up grace), then gone.
			h.pump("old entries removed", 5*time.Second, func() bool {
				for _, line := range h.fc.Catalog() {
					if strings.HasPrefix(line, "check ") && strings.Contains(line, "critical") {
						return false
					}
				}
				return len(h.fc.Nodes()) == map[string]int{LayoutSharedNode: 2, LayoutNodePerServer: 3}[tt.to]
			})
			for _, addr := range servers {
				if !h.observed(addr, api.HealthPassing, "1") {
					t.Errorf("%s not passing in the new layout: %v", addr, h.fc.Catalog())
				}
			}
		}))
	}
}

// TestCatalogSharedNodeForeign: a node of the shared node's name that is
// not the fleet's is never overwritten: the write fails with an error
// naming it (and logs one WARN); once it is gone the servers are
// registered.
func TestCatalogSharedNodeForeign(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := sharedHarness(t)
		reg := &api.CatalogRegistration{Node: testSharedNode, Address: "10.9.9.9", NodeMeta: map[string]string{"managed-by": "terraform"}}
		if err := h.fc.RegisterNode(reg, &api.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		a := h.bridge("a")
		h.start(a)
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		h.apply(a, snap(1, "10.0.0.1:8000"))
		h.pump("the refusal logged", 200*time.Millisecond, func() bool {
			return strings.Contains(strings.Join(a.logs.Lines(), "\n"), "belongs to someone else")
		})
		h.replanned(3, time.Second)
		if got := h.count("service set "); got != 0 {
			t.Errorf("%d services written on someone else's node", got)
		}
		if n := strings.Count(strings.Join(a.logs.Lines(), "\n"), "a node of the name this fleet would register belongs to someone else"); n != 1 {
			t.Errorf("the node in the way logged %d times, want 1:\n%s", n, strings.Join(a.logs.Lines(), "\n"))
		}
		if _, err := a.c.Apply(context.Background(), snap(2, "10.0.0.1:8000")); err == nil || !strings.Contains(err.Error(), testSharedNode) {
			t.Errorf("Apply's error = %v, want one naming %s", err, testSharedNode)
		}
		// Gone: the next resync reads the node again, creates it and writes.
		txn := api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: testSharedNode}}}}
		if ok, _, err := h.fc.Txn(txn, (&api.QueryOptions{}).WithContext(context.Background())); !ok || err != nil {
			t.Fatalf("delete the node in the way: %v %v", ok, err)
		}
		h.pump("registered once the name is free", time.Second, func() bool { return h.observed("10.0.0.1:8000", api.HealthPassing, "1") })
	})
}

// TestCatalogSharedNodeDeletedByHand: deleting the shared node takes every
// server with it; the leader's next resync registers them all again.
func TestCatalogSharedNodeDeletedByHand(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, _ := loneBridgeIn(t, LayoutSharedNode, nil, "10.0.0.1:8000", "10.0.0.2:8000")
		txn := api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: testSharedNode}}}}
		if ok, _, err := h.fc.Txn(txn, (&api.QueryOptions{}).WithContext(context.Background())); !ok || err != nil {
			t.Fatalf("delete the shared node: %v %v", ok, err)
		}
		h.pump("registered again", time.Second, func() bool {
			return h.observed("10.0.0.1:8000", api.HealthPassing, "1") && h.observed("10.0.0.2:8000", api.HealthPassing, "1")
		})
		if got := h.count("node cas " + testSharedNode); got != 2 {
			t.Errorf("shared node created %d times, want 2", got)
		}
	})
}
