package consul_test

// End-to-end tests of `bridge run --consul-mode catalog`: four real bridge
// processes on two LAN segments feed one Consul catalog.

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestRunCatalogTwoSegments: against one Consul server, two bridges per
// segment register every server exactly once, passing, with its segments;
// quiet rounds write nothing; a segment whose bridges all die loses its
// servers (critical within twice the session TTL, gone after
// deregister-after) while the other segment and the shared server stay.
func TestRunCatalogTwoSegments(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartDevConsul()
	l.Args = []string{"--consul-deregister-after", "10s", "--consul-resync", "1m"}
	sa, sb, sab := l.Servers("a", 2), l.Servers("b", 2), l.Shared()
	foreignIdx, foreignKV := foreign(l)
	for _, n := range []string{"a1", "a2", "b1", "b2"} {
		l.Bridge(n)
	}
	took := l.WaitCatalog(30*time.Second, "all servers passing", catalogh.All("passing", sa, sb, []string{sab, "django-foreign"}))
	t.Logf("MEASURED: 5 servers of 2 segments in the catalog, passing, %s after 4 bridges started", took.Round(100*time.Millisecond))

	_, byID, _, err := catalogh.Entries(t, l.Consul)
	if err != nil {
		t.Fatal(err)
	}
	for id, e := range byID {
		if id == "django-foreign" {
			continue
		}
		want := "10.213.31.0/24"
		if strings.Contains(id, "10.213.32.") {
			want = "10.213.32.0/24"
		}
		if id == sab {
			want = "10.213.31.0/24,10.213.32.0/24"
		}
		if e.Service.Meta["segments"] != want || e.Service.Meta["managed-by"] != "udp-discovery-bridge" || e.Node.Node != id {
			t.Errorf("%s: node %s meta %v; want segments %q", id, e.Node.Node, e.Service.Meta, want)
		}
	}
	harness.Wait(t, 20*time.Second, "one leader", func() (bool, string) { ld := l.Leader(); return ld != "", "leaders: " + ld })
	leader := l.Leader()
	t.Logf("leader: %s", leader)

	// Quiet rounds: no catalog write, no KV write. They start once every
	// bridge has published its observation (a loaded machine may see all
	// servers passing, from b1, before b2's first observation lands).
	names := []string{"a1", "a2", "b1", "b2"}
	harness.Wait(t, 20*time.Second, "4 observation keys", func() (bool, string) {
		obs := l.ObsIndexes()
		return len(obs) == 4, fmt.Sprint(obs)
	})
	_, _, idx0, _ := catalogh.Entries(t, l.Consul)
	obs0 := l.ObsIndexes()
	kv0 := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", names...)
	wr0 := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", names...)
	time.Sleep(10 * time.Second) // ten rounds
	_, _, idx1, _ := catalogh.Entries(t, l.Consul)
	obs1 := l.ObsIndexes()
	kv1 := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", names...)
	wr1 := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", names...)
	if idx1 != idx0 || kv1 != kv0 || wr1 != wr0 || len(obs0) != 4 || !maps.Equal(obs0, obs1) {
		t.Errorf("quiet rounds: service index %d -> %d, KV writes %v -> %v, catalog writes %v -> %v, observation keys %v -> %v",
			idx0, idx1, kv0, kv1, wr0, wr1, obs0, obs1)
	}
	t.Logf("MEASURED: 10 quiet rounds with 4 bridges: service index unchanged, %v KV writes, %v catalog writes", kv1-kv0, wr1-wr0)

	// Both bridges of segment b die: its servers turn critical within twice
	// the session TTL, then go; segment a and the shared server stay.
	var dead time.Time
	for _, n := range []string{"b1", "b2"} {
		l.Bridges[n].Kill9(t)
		dead = time.Now()
	}
	critical := catalogh.All("passing", sa, []string{sab, "django-foreign"})
	for id := range catalogh.All("critical", sb) {
		critical[id] = "critical"
	}
	took = l.WaitCatalog(2*10*time.Second+15*time.Second, "segment b critical", critical)
	t.Logf("MEASURED: segment b's servers critical %s after both its bridges were killed (session TTL 10s)", took.Round(100*time.Millisecond))
	took = l.WaitCatalog(40*time.Second, "segment b removed", catalogh.All("passing", sa, []string{sab, "django-foreign"}))
	t.Logf("MEASURED: segment b's servers removed %s after its bridges died (deregister-after 10s)", time.Since(dead).Round(100*time.Millisecond))
	_ = took

	// The leader (if it survived) is killed: another takes over.
	if leader == "a1" || leader == "a2" {
		killed := time.Now()
		l.Bridges[leader].Kill9(t)
		other := map[string]string{"a1": "a2", "a2": "a1"}[leader]
		took := harness.Wait(t, 2*10*time.Second+10*time.Second, other+" leads", func() (bool, string) { return l.Leader() == other, l.Leader() })
		t.Logf("MEASURED: %s led %s after %s was killed", other, took.Round(100*time.Millisecond), leader)
		_ = killed
		l.WaitCatalog(10*time.Second, "segment a still passing", catalogh.All("passing", sa, []string{sab, "django-foreign"}))
	}

	// A one-shot dry run on segment b's host sees its servers, which the
	// catalog no longer holds: it lists them as adds and exits 3. (Changed
	// entries, e.g. an observers count the leader has not rewritten yet, are
	// adds too.)
	dry := harness.RunCmd(t, l.Hosts["b1"], append([]string{"run", "--once", "--dry-run", "--sink", "consul", "--consul-mode", "catalog",
		"--consul-addr", l.ConsulAddrs, "--bridge-id", "b1", "--whitelist", l.Hosts["b1"].Dev(l.Seg["b"]), "--timeout", "0.5", "--metrics-addr", ""},
		l.SegmentArgs("b")...)...)
	if dry.ExitCode != 3 {
		t.Errorf("dry run on segment b: exit %d, want 3; stdout %s, stderr %s", dry.ExitCode, dry.Stdout, harness.Tail(dry.Stderr, 20))
	}
	for _, ip := range []string{"10.213.32.31", "10.213.32.32"} {
		if !strings.Contains(dry.Stdout, `{"op":"add","ip":"`+ip+`"`) {
			t.Errorf("dry run on segment b does not add %s: %s", ip, dry.Stdout)
		}
	}

	// The foreign service and key were never touched.
	fs, _, err := l.Consul.Catalog().Service(catalogh.Service, "", &api.QueryOptions{Filter: `ServiceID == "django-foreign"`})
	if err != nil || len(fs) != 1 || fs[0].ModifyIndex != foreignIdx {
		t.Errorf("foreign service: %v, %v; want it untouched at index %d", fs, err, foreignIdx)
	}
	if kv, _, err := l.Consul.KV().Get("other-app/config", nil); err != nil || kv == nil || kv.ModifyIndex != foreignKV {
		t.Errorf("foreign key: %v, %v; want it untouched", kv, err)
	}
}

// foreign registers a service of the same name on a node of someone else,
// and a KV key under another prefix; it returns their modify indexes.
func foreign(l *catalogh.Lab) (uint64, uint64) {
	l.T.Helper()
	_, err := l.Consul.Catalog().Register(&api.CatalogRegistration{Node: "foreign-node", Address: "10.9.9.9",
		Service: &api.AgentService{ID: "django-foreign", Service: catalogh.Service, Address: "10.9.9.9", Port: 80}}, nil)
	if err != nil {
		l.T.Fatal(err)
	}
	if _, err := l.Consul.KV().Put(&api.KVPair{Key: "other-app/config", Value: []byte("x")}, nil); err != nil {
		l.T.Fatal(err)
	}
	fs, _, err := l.Consul.Catalog().Service(catalogh.Service, "", nil)
	if err != nil || len(fs) != 1 {
		l.T.Fatalf("foreign service: %v %v", fs, err)
	}
	kv, _, err := l.Consul.KV().Get("other-app/config", nil)
	if err != nil || kv == nil {
		l.T.Fatalf("foreign key: %v", err)
	}
	return fs[0].ModifyIndex, kv.ModifyIndex
}
