package consul_test

// Catalog mode against a real three-server Consul cluster: faults of Consul
// (raft leader killed), of the network (a segment's bridges cut off from
// Consul) and of the bridges (kill -9, rolling restart).

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestRunCatalogCluster: two bridges per segment feed a three-server
// cluster. The raft leader is killed while a server is added; all four
// bridges are restarted in turn while a poller watches the catalog; a
// segment's bridges are cut off from Consul and come back; a bridge and then
// the leading bridge are killed.
func TestRunCatalogCluster(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	cl := l.StartCluster()
	l.Args = []string{"--consul-deregister-after", "10s"}
	sa, sb, sab := l.Servers("a", 2), l.Servers("b", 2), l.Shared()
	names := []string{"a1", "a2", "b1", "b2"}
	for _, n := range names {
		l.Bridge(n)
	}
	want := catalogh.All("passing", sa, sb, []string{sab})
	took := l.WaitCatalog(30*time.Second, "all servers passing", want)
	t.Logf("MEASURED: 5 servers of 2 segments in the catalog of 3 servers, passing, %s after the bridges started", took.Round(100*time.Millisecond))
	harness.Wait(t, 20*time.Second, "one leader", func() (bool, string) { ld := l.Leader(); return ld != "", "leaders: " + ld })

	// The raft leader is killed; during the election a new server appears.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raft, err := cl.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl.Kill(raft)
	l.UseLiveServer(cl, raft)
	extra := l.Lab.Host("sanew", l.Seg["a"], "10.213.31.60/24")
	harness.Respond(t, extra, 1, "--ip", "10.213.31.60")
	newID := harness.ServerID(catalogh.Service, "10.213.31.60", 8000)
	want[newID] = "passing"
	if _, err := cl.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	took = l.WaitCatalog(45*time.Second, "the new server after the election", want)
	t.Logf("MEASURED: raft leader %s killed; the server added during the election was in the catalog %s later, nothing lost or duplicated",
		cl.Servers[raft].Name, took.Round(100*time.Millisecond))
	cl.Start(raft)

	// Rolling restart of the four bridges, watched every 100 ms.
	p := l.Poll(want)
	for _, n := range names {
		if code := l.Bridges[n].Sigterm(t, 10*time.Second); code != 0 {
			t.Errorf("bridge %s exited %d on SIGTERM", n, code)
		}
		l.Bridge(n)
		// Its first round and publish.
		harness.Wait(t, 20*time.Second, n+" published", func() (bool, string) {
			v, _, err := harness.Metric(l.Hosts[n].NS, "udp_discovery_bridge_consul_catalog_kv_writes_total")
			return err == nil && v > 0, fmt.Sprint(v, err)
		})
	}
	time.Sleep(time.Second)
	reads, missing, critical, errs := p.Finish()
	if len(missing) > 0 {
		t.Errorf("rolling restart: servers missing in %d of %d reads: %v", len(missing), reads, missing[:min(len(missing), 10)])
	}
	t.Logf("MEASURED: rolling restart of 4 bridges, %d catalog reads every 100 ms: %d missing, %d not passing, %d read errors",
		reads, len(missing), len(critical), errs)
	if len(critical) > 0 {
		t.Logf("not passing during the restart: %v", critical[:min(len(critical), 10)])
	}
	l.WaitCatalog(30*time.Second, "all passing after the rolling restart", want)

	// Segment b's bridges are cut off from Consul (packets dropped), then
	// restored: its exclusive servers turn critical, go, and come back.
	for _, n := range []string{"b1", "b2"} {
		if r := l.Hosts[n].Run(t.Context(), "iptables", "-I", "OUTPUT", "-d", "10.213.30.0/24", "-j", "DROP"); r.Err != nil {
			t.Fatalf("iptables in %s: %v %s", n, r.Err, r.Stderr)
		}
	}
	cut := time.Now()
	others := catalogh.All("passing", sa, []string{sab, newID})
	crit := maps.Clone(others)
	for _, id := range sb {
		crit[id] = "critical"
	}
	l.WaitCatalog(2*10*time.Second+15*time.Second, "segment b critical", crit)
	t.Logf("MEASURED: segment b cut off from Consul: its servers critical after %s", time.Since(cut).Round(100*time.Millisecond))
	l.WaitCatalog(30*time.Second, "segment b removed", others)
	t.Logf("MEASURED: and removed after %s (deregister-after 10s)", time.Since(cut).Round(100*time.Millisecond))
	for _, n := range []string{"b1", "b2"} {
		if r := l.Hosts[n].Run(t.Context(), "iptables", "-D", "OUTPUT", "-d", "10.213.30.0/24", "-j", "DROP"); r.Err != nil {
			t.Fatalf("iptables -D in %s: %v %s", n, r.Err, r.Stderr)
		}
	}
	back := time.Now()
	l.WaitCatalog(45*time.Second, "segment b back", want)
	t.Logf("MEASURED: traffic restored: segment b's servers back, passing, after %s", time.Since(back).Round(100*time.Millisecond))

	// A bridge that does not lead is killed: nothing changes, not even the
	// service's index (each segment keeps an observer, and the default
	// catalog entry has no observer count). Then the leader is killed:
	// another leads within twice the session TTL and writes nothing.
	leader := l.Leader()
	if leader == "" {
		t.Fatal("no leader")
	}
	// The victim is on the other segment, so that each segment keeps one
	// observer after both kills.
	victim := ""
	for _, n := range names {
		if n[0] != leader[0] && victim == "" {
			victim = n
		}
	}
	idx := l.SettledIndex(30 * time.Second)
	p = l.Poll(want)
	l.Bridges[victim].Kill9(t)
	time.Sleep(2*10*time.Second + 3*time.Second)
	reads, missing, critical, _ = p.Finish()
	if len(missing)+len(critical) > 0 {
		t.Errorf("after %s was killed: missing %v, not passing %v (of %d reads)", victim, missing, critical, reads)
	}
	if now := l.ServiceIndex(); now != idx {
		t.Errorf("after %s was killed the service's index moved from %d to %d; want it unchanged", victim, idx, now)
	}
	killed := time.Now()
	l.Bridges[leader].Kill9(t)
	var next string
	took = harness.Wait(t, 2*10*time.Second+10*time.Second, "a new leader", func() (bool, string) {
		next = l.Leader()
		return next != "" && next != leader, next
	})
	t.Logf("MEASURED: leader %s killed; %s led %s later", leader, next, time.Since(killed).Round(100*time.Millisecond))
	_ = took
	// The new leader merges the two live observations, waits out its
	// start-up grace (interval + timeout) and finds nothing to write.
	harness.Wait(t, 10*time.Second, next+" merged 2 observations", func() (bool, string) {
		v, ok, err := harness.Metric(l.Hosts[next].NS, "udp_discovery_bridge_consul_catalog_observers")
		return err == nil && ok && v == 2, fmt.Sprint(v, ok, err)
	})
	time.Sleep(1500*time.Millisecond + 3*time.Second)
	if w, _, err := harness.Metric(l.Hosts[next].NS, "udp_discovery_bridge_consul_catalog_writes_total"); err != nil || w != 0 {
		t.Errorf("the new leader %s wrote %v catalog operations (%v); want 0: nothing changed", next, w, err)
	}
	if now := l.ServiceIndex(); now != idx {
		t.Errorf("after the leader was killed the service's index moved from %d to %d; want it unchanged", idx, now)
	}
	alive := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == victim || n == leader })
	t.Logf("bridges alive: %v", alive)
	l.WaitCatalog(30*time.Second, "everything still passing", want)
}
