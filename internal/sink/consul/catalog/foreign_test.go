package catalog

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Several fleets on one Consul, and nodes in a fleet's way (harness in
// catalog_test.go).

func TestCatalogNodeName(t *testing.T) {
	tests := []struct {
		name, service, fleet, addr, want string
	}{
		{"default fleet keeps the unscoped name", "django", "udp-discovery-bridge/django", "10.213.1.5:8000", "django-10.213.1.5-8000"},
		// Suffixes: `printf %s PREFIX | sha256sum | cut -c1-8`.
		{"another fleet", "django", "udp-discovery-bridge/django-lab", "10.213.1.5:8000", "django-10.213.1.5-8000-b62ac5a8"},
		{"the default prefix of another service", "django", "udp-discovery-bridge/api", "10.213.1.5:8000", "django-10.213.1.5-8000-3e6ba472"},
		{"ipv6", "django", "fleets/b", "[2001:db8::1]:8000", "django-2001-db8--1-8000-13e6a9c8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NodeName(tt.service, tt.fleet, netip.MustParseAddrPort(tt.addr))
			if got != tt.want {
				t.Errorf("NodeName(%q, %q, %s) = %q, want %q", tt.service, tt.fleet, tt.addr, got, tt.want)
			}
			if !strings.HasPrefix(got, tt.service+"-") {
				t.Errorf("%q does not start with %q (the node_prefix ACL rule)", got, tt.service+"-")
			}
		})
	}
	// Worst case for a short service name: IPv6 with every group, port 65535.
	long := NodeName("django", "fleets/b", netip.MustParseAddrPort("[2001:db8:85a3:1234:5678:8a2e:370:7334]:65535"))
	if len(long) > 63 {
		t.Errorf("%q is %d bytes, longer than a DNS label", long, len(long))
	}
}

const testFleetB = "udp-discovery-bridge/django-lab"

// fleetB builds a bridge of the second fleet (same service, prefix
// testFleetB).
func (h *catHarness) fleetB(id string) *catBridge {
	return h.bridge(id, func(c *Config) { c.Catalog.KVPrefix = testFleetB; c.Catalog.Segment = "lan-b" })
}

// nodeOf is the node of addr for the fleet with prefix fleet.
func nodeOf(fleet, addr string) string {
	return NodeName("django", fleet, netip.MustParseAddrPort(addr))
}

// resynced waits until the leaders have re-read the catalog n more times,
// advancing the clock to wake them.
func (h *catHarness) resynced(n int) {
	h.t.Helper()
	from := h.fc.Count("ServiceEntries")
	h.pump("resyncs", 5*time.Second, func() bool { return h.fc.Count("ServiceEntries") >= from+n })
}

// TestCatalogTwoFleets: two fleets that see the same servers each register
// one instance per server on nodes of their own, with their own meta, and
// then write nothing, resync after resync.
func TestCatalogTwoFleets(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a, b := h.bridge("a"), h.fleetB("b")
		h.start(a)
		h.start(b)
		h.pump("both lead", 50*time.Millisecond, func() bool { return a.c.Leader() && b.c.Leader() })
		addrs := []string{"10.0.0.1:8000", "10.0.0.2:8000"}
		h.apply(a, snap(1, addrs...))
		h.apply(b, snap(1, addrs...))
		entries := func() bool {
			for _, addr := range addrs {
				for _, fleet := range []string{testFleet, testFleetB} {
					n, s, c, ok := h.fc.Entry(nodeOf(fleet, addr), nodeOf(fleet, addr), ObservedCheckID)
					if !ok || c.Status != api.HealthPassing || n.Meta[MetaFleet] != fleet || s.Meta[MetaFleet] != fleet {
						return false
					}
				}
			}
			return true
		}
		h.eventually("each fleet's entries", entries)
		txns := h.fc.Count("Txn")
		h.resynced(6) // three resyncs of each leader
		if got := h.fc.Count("Txn"); got != txns {
			t.Errorf("%d transactions over quiet resyncs, want 0; applied %v", got-txns, h.fc.Applied())
		}
		if !entries() {
			t.Errorf("entries changed: %v", h.fc.Catalog())
		}
		for _, br := range []*catBridge{a, b} {
			if l := br.logs.Grep("someone else"); len(l) > 0 {
				t.Errorf("bridge %s logged a node in its way: %v", br.id, l)
			}
		}
	})
}

// TestCatalogForeignNode: a node of the name the fleet would use for a
// server, held by someone else, is never written: the server's
// registration is skipped while the rest registers, it is logged once
// (however many resyncs pass) and counted; once the node is gone the
// fleet registers the server at its next resync. A leftover node of the
// fleet itself (its service removed by hand) is taken over.
func TestCatalogForeignNode(t *testing.T) {
	tests := []struct {
		name    string
		meta    map[string]string
		owner   string // in the log; "" for a node of the fleet itself
		foreign bool
	}{
		{"hand-registered node", map[string]string{"registered-by": "ops"}, "unknown (no managed-by meta", true},
		{"node without meta", nil, "unknown (no managed-by meta", true},
		{"another fleet's node", map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: testFleetB}, "udp-discovery-bridge fleet " + testFleetB, true},
		{"another tool's node", map[string]string{consulclient.MetaManagedBy: "consul-k8s"}, "managed-by consul-k8s", true},
		{"the fleet's own leftover node", map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: testFleet}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			h := newCatHarness(t)
			in := sid("10.0.0.2:8000")
			h.fc.PutNode(in, "10.9.9.9", tt.meta)
			before := slices.DeleteFunc(h.fc.Catalog(), func(l string) bool { return !strings.Contains(l, in) })
			a := h.bridge("a")
			h.start(a)
			h.pump("leadership", 50*time.Millisecond, a.c.Leader)
			h.apply(a, snap(1, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"))
			if !tt.foreign {
				h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1", "10.0.0.3:8000": "1"})
				if n, _, _, _ := h.server("10.0.0.2:8000"); n.Address != "10.0.0.2" {
					t.Errorf("leftover node taken over with address %s, want 10.0.0.2", n.Address)
				}
				if l := a.logs.Grep("someone else"); len(l) > 0 || testutil.ToFloat64(a.c.metrics.foreignFound) != 0 {
					t.Errorf("own node reported as foreign: %v", l)
				}
				return
			}
			h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.3:8000": "1"})
			h.resynced(3)
			got := slices.DeleteFunc(h.fc.Catalog(), func(l string) bool { return !strings.Contains(l, in) })
			if !slices.Equal(got, before) {
				t.Errorf("node in the way changed:\n%v\nwant\n%v", got, before)
			}
			for _, op := range h.fc.Applied() {
				if strings.Contains(op, in) {
					t.Errorf("applied %q", op)
				}
			}
			warns := a.logs.Grep("someone else")
			if len(warns) != 1 || !strings.Contains(warns[0], `"level":"warn"`) || !strings.Contains(warns[0], `"node":"`+in+`"`) ||
				!strings.Contains(warns[0], tt.owner) {
				t.Errorf("logged %v; want one WARN naming node %s and owner %q", warns, in, tt.owner)
			}
			if f, n := testutil.ToFloat64(a.c.metrics.foreignFound), testutil.ToFloat64(a.c.metrics.foreignNodes); f != 1 || n != 1 {
				t.Errorf("foreign_nodes_found_total %v, foreign_nodes %v; want 1, 1", f, n)
			}

			// The node goes: the server is registered at the next resync.
			h.fc.DeleteNode(in)
			h.resynced(2)
			h.settled(map[string]string{"10.0.0.2:8000": "1"})
			if n := testutil.ToFloat64(a.c.metrics.foreignNodes); n != 0 {
				t.Errorf("foreign_nodes %v after the node went, want 0", n)
			}
			if l := a.logs.Grep("free again"); len(l) != 1 {
				t.Errorf("logged %v; want one line saying the name is free again", l)
			}
		}))
	}
}

// TestCatalogClaimFailsOtherwise: a node claim that fails while no node of
// that name exists (e.g. permission denied) is an error of the write, not a
// node in the way.
func TestCatalogClaimFailsOtherwise(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		h.fc.FailTxnOn(func(op *api.TxnOp) bool { return op.Node != nil && op.Node.Verb == api.NodeCAS })
		a := h.bridge("a")
		h.start(a)
		h.pump("leadership", 50*time.Millisecond, a.c.Leader)
		h.apply(a, snap(1, "10.0.0.1:8000"))
		h.pump("a failed write", 0, func() bool { return testutil.ToFloat64(a.c.metrics.errors.WithLabelValues("catalog_write")) >= 1 })
		if f := testutil.ToFloat64(a.c.metrics.foreignFound); f != 0 {
			t.Errorf("foreign_nodes_found_total %v, want 0", f)
		}
		h.pump("registered after the backoff", time.Second, func() bool { return h.observed("10.0.0.1:8000", api.HealthPassing, "1") })
	})
}

// TestCatalogResyncReplans: an entry deleted behind the leader's back is
// restored at the next resync, while no observation changes (not only
// when the leader's longest blocking wait, 30 s, ends).
func TestCatalogResyncReplans(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		const resync = 10 * time.Second
		h, _ := loneBridge(t, func(c *Config) { c.Resync = resync }, "10.0.0.1:8000", "10.0.0.2:8000")
		h.resynced(1) // past the start-up grace and in the resync rhythm
		h.fc.DeleteNode(sid("10.0.0.2:8000"))
		from := h.clk.Now()
		h.pump("restored", 500*time.Millisecond, func() bool { return h.observed("10.0.0.2:8000", api.HealthPassing, "1") })
		if took := h.clk.Now().Sub(from); took > resync+time.Second {
			t.Errorf("restored %s after the delete, want within the resync period %s", took, resync)
		}
	})
}
