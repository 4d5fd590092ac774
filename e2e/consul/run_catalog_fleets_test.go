package consul_test

// Two catalog-mode fleets (different consul_kv_prefix, same consul_service)
// on one three-server Consul, seeing the same LAN: neither writes the
// other's entries, quiet resyncs leave the service's index still, and a
// node registered by hand under a name a fleet would use is never
// overwritten.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// fleetBPrefix is the KV prefix of the second fleet.
const fleetBPrefix = "udp-discovery-bridge/django-lab"

// fleetNode is the node name (and service ID) of ip:8000 for the fleet with
// KV prefix prefix, as the README documents it: the default fleet's names
// are "<service>-<ip>-<port>", any other fleet's end in "-" and the first 8
// hex digits of the SHA-256 of its prefix.
func fleetNode(prefix, ip string) string {
	id := harness.ServerID(catalogh.Service, ip, 8000)
	if prefix == "udp-discovery-bridge/"+catalogh.Service {
		return id
	}
	sum := sha256.Sum256([]byte(prefix))
	return id + "-" + hex.EncodeToString(sum[:4])
}

// TestRunCatalogTwoFleets: fleet A (the default prefix) and fleet B
// (fleetBPrefix), one bridge each, with a 5 s resync, see the same three
// servers; a node named as fleet A would name the first server is
// registered by hand before they start. After convergence the service's
// X-Consul-Index stays still for several resyncs; every server has one
// instance per fleet on a node of its own, with the fleet's meta and tags,
// except the first, which only fleet B registers: fleet A skips the hand
// node, logs it once and counts it, and registers its own entry once the
// hand node is deleted.
func TestRunCatalogTwoFleets(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartCluster()
	const resync = 5 * time.Second
	l.Args = []string{"--consul-resync", resync.String(), "--consul-deregister-after", "10s"}
	l.Servers("a", 3)
	ips := []string{"10.213.31.31", "10.213.31.32", "10.213.31.33"}
	fleetA := "udp-discovery-bridge/" + catalogh.Service

	// Someone registers a node by hand under fleet A's name for the first
	// server (an external service, no udp-discovery-bridge meta).
	hand := fleetNode(fleetA, ips[0])
	handMeta := map[string]string{"registered-by": "ops"}
	if _, err := l.Consul.Catalog().Register(&api.CatalogRegistration{Node: hand, Address: "10.9.9.9", NodeMeta: handMeta,
		Service: &api.AgentService{ID: "legacy-app", Service: "legacy-app", Address: "10.9.9.9", Port: 80}}, nil); err != nil {
		t.Fatal(err)
	}
	handNode := func() *api.Node {
		n, _, err := l.Consul.Catalog().Node(hand, nil)
		if err != nil {
			t.Fatalf("read node %s: %v", hand, err)
		}
		if n == nil {
			return nil
		}
		return n.Node
	}
	hand0 := handNode()

	a := l.Bridge("a1", "--consul-tag", "fleet-a")
	b := l.Bridge("a2", "--consul-tag", "fleet-b", "--consul-kv-prefix", fleetBPrefix)

	// Converged: every server has a passing instance and each fleet's leader
	// has written; from then on the service's index (of the health
	// endpoint, which consumers watch) stays still for longer than a
	// resync period, and then for sixteen more.
	index := func() uint64 {
		_, _, idx, err := catalogh.Entries(t, l.Consul)
		if err != nil {
			t.Fatalf("read the service: %v", err)
		}
		return idx
	}
	start := time.Now()
	harness.Wait(t, 60*time.Second, "every server passing and both fleets written", func() (bool, string) {
		st, byID, _, err := catalogh.Entries(t, l.Consul)
		if err != nil {
			return false, err.Error()
		}
		for _, ip := range ips {
			ok := false
			for id, e := range byID {
				ok = ok || (e.Service.Address == ip && st[id] == "passing")
			}
			if !ok {
				return false, ip + " has no passing instance: " + fmt.Sprint(st)
			}
		}
		wa, _, errA := harness.Metric(l.Hosts["a1"].NS, "udp_discovery_bridge_consul_catalog_writes_total")
		wb, _, errB := harness.Metric(l.Hosts["a2"].NS, "udp_discovery_bridge_consul_catalog_writes_total")
		return errA == nil && errB == nil && wa > 0 && wb > 0, fmt.Sprintf("writes A %v (%v), B %v (%v)", wa, errA, wb, errB)
	})
	t.Logf("MEASURED: both fleets wrote and every server passing %s after start", time.Since(start).Round(100*time.Millisecond))
	idx, since, moves := index(), time.Now(), 0
	harness.Wait(t, 60*time.Second, "a service index still for a resync period and more", func() (bool, string) {
		if now := index(); now != idx {
			moves++
			t.Logf("service index %d -> %d after %s", idx, now, time.Since(since).Round(100*time.Millisecond))
			idx, since = now, time.Now()
		}
		return time.Since(since) >= resync+time.Second, fmt.Sprintf("index %d, moved %d times", idx, moves)
	})
	wrA := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a1")
	wrB := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a2")
	// Sixteen resyncs (80 s): a leader of the old code resynced only when
	// its blocking wait on the observations (up to 30 s) ended, and each
	// fleet took the nodes back at its resync about once a minute.
	const quiet = 16
	time.Sleep(quiet * resync)
	idx1 := index()
	if idx1 != idx {
		t.Errorf("service index moved from %d to %d in %d quiet resync periods; want it still", idx, idx1, quiet)
	}
	dA := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a1") - wrA
	dB := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a2") - wrB
	if dA != 0 || dB != 0 {
		t.Errorf("quiet resyncs: fleet A wrote %v catalog operations, fleet B %v; want 0", dA, dB)
	}
	t.Logf("MEASURED: %d resync periods of %s with two fleets: service index %d -> %d, catalog writes A %v, B %v", quiet, resync, idx, idx1, dA, dB)

	// What consumers see: one instance per fleet and server, each on a node
	// of its own, but for the first server, whose fleet-A name is taken.
	want := map[string]string{}
	for i, ip := range ips {
		if i > 0 {
			want[fleetNode(fleetA, ip)] = "passing"
		}
		want[fleetNode(fleetBPrefix, ip)] = "passing"
	}
	l.WaitCatalog(5*time.Second, "both fleets' entries", want)

	// Each fleet's entries are its own, on nodes of their own.
	_, byID, _, err := catalogh.Entries(t, l.Consul)
	if err != nil {
		t.Fatal(err)
	}
	suffixB := strings.TrimPrefix(fleetNode(fleetBPrefix, ips[0]), fleetNode(fleetA, ips[0]))
	for id := range want {
		e := byID[id]
		fleet, tag := fleetA, "fleet-a"
		if strings.HasSuffix(id, suffixB) {
			fleet, tag = fleetBPrefix, "fleet-b"
		}
		if e == nil || e.Node.Node != id || e.Node.Meta["bridge-fleet"] != fleet || e.Service.Meta["bridge-fleet"] != fleet ||
			len(e.Service.Tags) == 0 || e.Service.Tags[0] != tag {
			t.Errorf("%s: %+v; want node %s with fleet %s meta and tag %s", id, e, id, fleet, tag)
		}
	}

	// The hand node was never written, and fleet A said so once.
	if n := handNode(); n == nil || n.ModifyIndex != hand0.ModifyIndex || n.Address != "10.9.9.9" || n.Meta["registered-by"] != "ops" ||
		n.Meta["bridge-fleet"] != "" {
		t.Errorf("hand-registered node %s: %+v; want it untouched (%+v)", hand, n, hand0)
	}
	_, stderrA := a.Output()
	if got := catalogh.CountLines(stderrA, `"level":"warn"`, `"node":"`+hand+`"`, "belongs to someone else"); got != 1 {
		t.Errorf("fleet A logged the hand node %d times; want once\n%s", got, harness.Tail(stderrA, 30))
	}
	if v := l.MetricSum("udp_discovery_bridge_consul_catalog_foreign_nodes_found_total", "a1"); v != 1 {
		t.Errorf("fleet A foreign_nodes_found_total = %v; want 1", v)
	}
	if v := l.MetricSum("udp_discovery_bridge_consul_catalog_foreign_nodes", "a1"); v != 1 {
		t.Errorf("fleet A foreign_nodes = %v; want 1", v)
	}
	if v := l.MetricSum("udp_discovery_bridge_consul_catalog_foreign_nodes", "a2"); v != 0 {
		t.Errorf("fleet B foreign_nodes = %v; want 0", v)
	}
	_, stderrB := b.Output()
	if got := catalogh.CountLines(stderrB, "belongs to someone else"); got != 0 {
		t.Errorf("fleet B logged %d nodes in its way; want none", got)
	}

	// The hand node goes: fleet A registers its entry at its next resync.
	if _, err := l.Consul.Catalog().Deregister(&api.CatalogDeregistration{Node: hand}, nil); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	want[hand] = "passing"
	l.WaitCatalog(3*resync+10*time.Second, "fleet A's entry for the first server", want)
	t.Logf("MEASURED: the hand node deleted; fleet A registered its entry %s later (resync %s)", time.Since(gone).Round(100*time.Millisecond), resync)
	if n := handNode(); n == nil || n.Meta["bridge-fleet"] != fleetA {
		t.Errorf("node %s after the hand node went: %+v; want fleet A's", hand, n)
	}
	if v := l.MetricSum("udp_discovery_bridge_consul_catalog_foreign_nodes", "a1"); v != 0 {
		t.Errorf("fleet A foreign_nodes = %v after the hand node went; want 0", v)
	}
}
