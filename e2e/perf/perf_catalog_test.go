package perf_test

// Catalog mode at 10,000 servers, against the three-server cluster: one
// responder on segment a answers each probe with 10,000 replies
// (10.213.100.1 and up), two bridges observe them.

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// catInFlight is how many transactions the catalog leader keeps in flight:
// consul_parallel's default, which the bridges here run with. The raw
// baseline runs at the same count, so the ratio compares the bridge with
// the same writes at the same concurrency, not with a slower baseline.
var catInFlight = consulclient.DefaultParallel

// rawTxnBaseline writes the same operations the leader writes for n new
// servers in layout straight to /v1/txn, under another service name, with
// inFlight transactions in flight and as many operations in each as the
// leader puts next to its guard: node-per-server, node + service + check
// per server, 21 servers (63 operations) per transaction; shared-node, one
// node write, then service + check per server, 31 servers (62 operations)
// per transaction. It returns how long that took and the CPU the Consul
// servers used meanwhile; then it deletes them.
func rawTxnBaseline(t *testing.T, cl *consulcluster.Cluster, c *api.Client, n, inFlight int, layout string) (time.Duration, float64) {
	t.Helper()
	perTxn, shared := 21, layout == catalog.LayoutSharedNode
	if shared {
		perTxn = 31
	}
	const sharedNode = "baseline-servers"
	var batches []api.TxnOps
	var cur api.TxnOps
	if shared {
		batches = append(batches, api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: sharedNode, Address: "127.0.0.1", Meta: map[string]string{"managed-by": "baseline"}}}}})
	}
	a := netip.MustParseAddr("10.213.200.0")
	for i := range n {
		a = a.Next()
		id := "baseline-" + a.String()
		node, check := id, "observed"
		if shared {
			node, check = sharedNode, "observed:"+id
		} else {
			cur = append(cur, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: a.String(), Meta: map[string]string{"managed-by": "baseline"}}}})
		}
		cur = append(cur,
			&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{ID: id, Service: "baseline", Address: a.String(), Port: 8000,
				Meta: map[string]string{"managed-by": "baseline", "segments": "10.213.31.0/24", "bridge-fleet": "udp-discovery-bridge/baseline"}}}},
			&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{Node: node, CheckID: check, Name: "observed", ServiceID: id, ServiceName: "baseline", Status: api.HealthPassing}}})
		if (i+1)%perTxn == 0 {
			batches, cur = append(batches, cur), nil
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	run := func(bs []api.TxnOps) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, inFlight)
		for i, b := range bs {
			if shared && i == 0 {
				if ok, resp, _, err := c.Txn().Txn(b, nil); err != nil || !ok { // the node first
					t.Errorf("baseline txn: %v %v", err, resp)
				}
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ok, resp, _, err := c.Txn().Txn(b, nil)
				if err != nil || !ok {
					t.Errorf("baseline txn: %v %v", err, resp)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	cpu0 := clusterCPU(t, cl)
	took := run(batches)
	cpu := clusterCPU(t, cl) - cpu0
	var dels []api.TxnOps
	var d api.TxnOps
	for _, b := range batches {
		for _, op := range b {
			if op.Node != nil {
				d = append(d, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: op.Node.Node.Node}}})
				if len(d) == 64 {
					dels, d = append(dels, d), nil
				}
			}
		}
	}
	if len(d) > 0 {
		dels = append(dels, d)
	}
	run(dels)
	return took, cpu
}

// clusterCPU is the CPU time, in seconds, the cluster's servers have used.
func clusterCPU(t *testing.T, cl *consulcluster.Cluster) float64 {
	t.Helper()
	var ticks int64
	for i := range cl.N() {
		if pid := cl.PID(i); pid != 0 {
			ticks += perfMustSample(t, pid).CPUTicks
		}
	}
	return float64(ticks) / perfClkTck
}

// TestPerfCatalog10k measures each catalog layout on its own three-server
// cluster, in one run: the raw /v1/txn baseline of that layout for 10,000
// servers; the bridge's time from the end of the round that saw them to all
// of them in the catalog, and the Consul servers' CPU for each; the
// leader's footprint; and a failover.
func TestPerfCatalog10k(t *testing.T) {
	perfRequire(t)
	netns.Require(t)
	layouts := []string{catalog.LayoutNodePerServer, catalog.LayoutSharedNode}
	if v := os.Getenv("BRIDGE_PERF_LAYOUTS"); v != "" { // e.g. node-per-server
		layouts = strings.Split(v, ",")
	}
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) { perfCatalog10k(t, layout) })
	}
}

func perfCatalog10k(t *testing.T, layout string) {
	var baselines []time.Duration
	var baseCPU []float64
	var cl *consulcluster.Cluster
	var stopLife func() perfProc
	l, _, published := catalogh.Start10k(t, func(l *catalogh.Lab, c *consulcluster.Cluster) {
		cl = c
		// A resync (a full read of the catalog) every 10 s, so that one
		// falls in the 20 s of quiet rounds whose footprint is measured.
		l.Args = []string{"--consul-catalog-layout", layout, "--consul-resync", "10s"}
		l.Started = func(b *harness.BridgeProc) {
			if b.Name == "a1" {
				stopLife = perfPeak(b.PID)
			}
		}
		for range 3 {
			took, cpu := rawTxnBaseline(t, c, l.Consul, catalogh.TenK, catInFlight, layout)
			baselines, baseCPU = append(baselines, took), append(baseCPU, cpu)
		}
	})
	cpu0 := clusterCPU(t, cl)
	stopPeak := perfPeak(l.Bridges["a1"].PID)
	order := []int{0, 1, 2}
	slices.SortFunc(order, func(i, j int) int { return int(baselines[i] - baselines[j]) })
	baseline, baselineCPU := baselines[order[1]], baseCPU[order[1]]
	slices.Sort(baselines)
	// a1 leads (it started alone); its write counter reaches every
	// operation of the layout when the last transaction is in:
	// node, service, check per server, or the shared node once and a
	// service and check per server.
	wantWrites := 3 * catalogh.TenK
	if layout == catalog.LayoutSharedNode {
		wantWrites = 2*catalogh.TenK + 1
	}
	var done time.Time
	harness.Wait(t, 180*time.Second, fmt.Sprintf("a1 wrote %d operations", wantWrites), func() (bool, string) {
		v, _, err := harness.Metric(l.Hosts["a1"].NS, "udp_discovery_bridge_consul_catalog_writes_total")
		if err == nil && v >= float64(wantWrites) {
			done = time.Now()
			return true, ""
		}
		return false, fmt.Sprint(v, err)
	})
	bridgeCPU := clusterCPU(t, cl) - cpu0
	took := done.Sub(published)
	peak := stopPeak()
	n, distinct, passing, _, err := catalogh.Count(l.Consul, catalogh.Service)
	if err != nil || n != catalogh.TenK || distinct != catalogh.TenK || passing != catalogh.TenK {
		t.Errorf("catalog: %d instances, %d distinct, %d passing, %v", n, distinct, passing, err)
	}
	perfResult(t, "layout %s, 10,000 new servers, round end (observation published) to all in the catalog: %s, Consul servers' CPU %.1f s; "+
		"raw /v1/txn of the same layout and operations (%d in flight as the leader), median of 3 on the same cluster before the bridges started: %s (%v), CPU %.1f s; "+
		"ratio %.2f (bridge settings: --interval 5s --timeout 1 --consul-parallel %d --consul-catalog-layout %s --consul-resync 10s, 2 bridges)",
		layout, took.Round(10*time.Millisecond), bridgeCPU, catInFlight, baseline.Round(10*time.Millisecond), baselines, baselineCPU,
		took.Seconds()/baseline.Seconds(), catInFlight, layout)

	leader := l.WaitLeader(t)
	pid := l.Bridges[leader].PID
	time.Sleep(6 * time.Second)
	a := perfMustSample(t, pid)
	time.Sleep(20 * time.Second)
	b := perfMustSample(t, pid)
	life := stopLife()
	perfResult(t, "layout %s, leader (a1) with 10,000 servers: VmRSS %s 26 s after the write (VmHWM %s); largest 50 ms sample over its life %s (anonymous %s, the binary's pages %s), %.1f s after the first observation was published "+
		"(rounds every 5 s: each ingests 40,000 datagrams; a resync every 10 s), and %s (anonymous %s) from the observation to the last write (%.1f s after the observation); CPU %.2f%% of one core over 20 s of quiet rounds (interval 5s)",
		layout, perfMiB(b.RSSKiB), perfMiB(b.HWMKiB), perfMiB(life.RSSKiB), perfMiB(life.AnonKiB), perfMiB(life.FileKiB), life.At.Sub(published).Seconds(),
		perfMiB(peak.RSSKiB), perfMiB(peak.AnonKiB), peak.At.Sub(published).Seconds(),
		100*float64(b.CPUTicks-a.CPUTicks)/perfClkTck/b.At.Sub(a.At).Seconds())

	// The baseline again, now with both bridges running their rounds (each
	// ingests 40,000 datagrams every 5 s on this 2-core machine, as they did
	// while the leader wrote), under another service name.
	var during []time.Duration
	for range 3 {
		d, _ := rawTxnBaseline(t, cl, l.Consul, catalogh.TenK, catInFlight, layout)
		during = append(during, d)
	}
	slices.Sort(during)
	perfResult(t, "layout %s: raw /v1/txn with both bridges running their rounds, median of 3: %s (%v); the bridge's %s against it: ratio %.2f",
		layout, during[1].Round(10*time.Millisecond), during, took.Round(10*time.Millisecond), took.Seconds()/during[1].Seconds())

	other := map[string]string{"a1": "a2", "a2": "a1"}[leader]
	w0, _, _ := harness.Metric(l.Hosts[other].NS, "udp_discovery_bridge_consul_catalog_writes_total")
	_, _, _, idxBefore, _ := catalogh.Count(l.Consul, catalogh.Service)
	killed := time.Now()
	l.Bridges[leader].Kill9(t)
	harness.Wait(t, 60*time.Second, other+" leads", func() (bool, string) { return l.Leader() == other, l.Leader() })
	led := time.Since(killed)
	// Its first reconcile: the dead leader's observation went with its
	// session; the other bridge still observes every server, so nothing
	// changed. It merges the one observation left, waits out its start-up
	// grace (interval + timeout = 6 s) and plans: nothing to write.
	harness.Wait(t, 30*time.Second, other+" merged 1 observation", func() (bool, string) {
		v, ok, err := harness.Metric(l.Hosts[other].NS, "udp_discovery_bridge_consul_catalog_observers")
		return err == nil && ok && v == 1, fmt.Sprint(v, ok, err)
	})
	merged := time.Since(killed)
	time.Sleep(6*time.Second + 5*time.Second)
	w1, _, _ := harness.Metric(l.Hosts[other].NS, "udp_discovery_bridge_consul_catalog_writes_total")
	n, distinct, passing, idxAfter, err := catalogh.Count(l.Consul, catalogh.Service)
	if err != nil || n != catalogh.TenK || distinct != catalogh.TenK || passing != catalogh.TenK {
		t.Errorf("catalog after the failover: %d instances, %d distinct, %d passing, %v", n, distinct, passing, err)
	}
	if w1 != w0 || idxAfter != idxBefore {
		t.Errorf("failover: the new leader wrote %v catalog operations and the index moved %d -> %d; want 0 and unchanged", w1-w0, idxBefore, idxAfter)
	}
	perfResult(t, "failover: %s led %s after kill -9 of %s (session TTL 10s) and had merged the observation left %s after the kill; "+
		"its reconcile made %v catalog writes, the service's index %d -> %d, %d of %d servers passing",
		other, led.Round(100*time.Millisecond), leader, merged.Round(100*time.Millisecond), w1-w0, idxBefore, idxAfter, passing, catalogh.TenK)
}

// TestPerfCatalogLayoutSizes measures, on one three-server cluster, raw
// /v1/txn registrations of n servers in each layout (the operations the
// leader writes, 8 in flight) for growing n: where the shared node's cost,
// which grows with the servers on it, starts to matter.
func TestPerfCatalogLayoutSizes(t *testing.T) {
	perfRequire(t)
	netns.Require(t)
	l := catalogh.NewLab(t)
	cl := l.StartCluster()
	for _, n := range []int{100, 300, 1000, 3000} {
		var line []string
		for _, layout := range []string{catalog.LayoutNodePerServer, catalog.LayoutSharedNode} {
			var took []time.Duration
			var cpu []float64
			for range 3 {
				d, c := rawTxnBaseline(t, cl, l.Consul, n, catInFlight, layout)
				took, cpu = append(took, d), append(cpu, c)
			}
			slices.Sort(took)
			slices.Sort(cpu)
			line = append(line, fmt.Sprintf("%s %s (%v), Consul CPU %.2f s", layout, took[1].Round(time.Millisecond), took, cpu[1]))
		}
		perfResult(t, "%d servers, raw /v1/txn, median of 3: %s", n, strings.Join(line, "; "))
	}
}
