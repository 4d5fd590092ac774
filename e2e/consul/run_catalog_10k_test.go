package consul_test

// Catalog mode at 10,000 servers, against the three-server cluster
// (catalogh.Start10k): one responder on segment a answers each probe with
// 10,000 replies, two bridges observe them. perf/perf_catalog_test.go
// measures the same lab.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestRunCatalog10k: 10,000 servers behind one segment are all in the
// catalog exactly once, passing; quiet rounds write nothing.
func TestRunCatalog10k(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l, _, published := catalogh.Start10k(t, nil)
	harness.Wait(t, 120*time.Second, "10,000 servers passing", func() (bool, string) {
		n, distinct, passing, _, err := catalogh.Count(l.Consul, catalogh.Service)
		return err == nil && n == catalogh.TenK && distinct == catalogh.TenK && passing == catalogh.TenK,
			fmt.Sprintf("%d instances, %d distinct, %d passing, %v", n, distinct, passing, err)
	})
	t.Logf("MEASURED: 10,000 servers in the catalog of 3 servers, exactly once, passing, %s after the first observation was published",
		time.Since(published).Round(100*time.Millisecond))
	for _, n := range []string{"a1", "a2"} {
		_, stderr := l.Bridges[n].Output()
		for _, line := range strings.Split(stderr, "\n") {
			if strings.Contains(line, "catalog reconciled") || strings.Contains(line, "observation published") || strings.Contains(line, "leading") {
				t.Logf("%s: %s", n, line)
			}
		}
	}
	// Both observations in; then quiet rounds.
	harness.Wait(t, 30*time.Second, "2 observers", func() (bool, string) {
		v, ok, err := harness.Metric(l.Hosts[l.WaitLeader(t)].NS, "udp_discovery_bridge_consul_catalog_observers")
		return err == nil && ok && v == 2, fmt.Sprint(v, err)
	})
	time.Sleep(6 * time.Second) // quiet rounds from here on
	names := []string{"a1", "a2"}
	_, _, _, idx0, _ := catalogh.Count(l.Consul, catalogh.Service)
	kv0 := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", names...)
	wr0 := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", names...)
	time.Sleep(3 * 5 * time.Second) // three rounds
	n, distinct, passing, idx1, _ := catalogh.Count(l.Consul, catalogh.Service)
	kv1 := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", names...)
	wr1 := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", names...)
	if idx1 != idx0 || kv1 != kv0 || wr1 != wr0 || n != catalogh.TenK || distinct != catalogh.TenK || passing != catalogh.TenK {
		t.Errorf("quiet rounds at 10,000: index %d -> %d, KV writes +%v, catalog writes +%v, %d instances (%d distinct, %d passing)",
			idx0, idx1, kv1-kv0, wr1-wr0, n, distinct, passing)
	}
	t.Logf("MEASURED: 3 quiet rounds with 10,000 servers and 2 bridges: %v catalog writes, %v KV writes, service index unchanged", wr1-wr0, kv1-kv0)
}
