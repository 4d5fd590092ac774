package consul_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestRunCatalogSharedNode: a fleet moves from a node per server to the
// shared-node layout (a restart with --consul-catalog-layout shared-node)
// while a poller reads ?passing every 100 ms: no server is ever missing;
// the old nodes go deregister-after later; the servers are services with
// their own checks on django-servers, found by DNS (SRV with each server's
// own address and port) as before; a server that stops answering leaves
// with its check, the node and the other server stay; quiet rounds leave
// the index unchanged.
func TestRunCatalogSharedNode(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartDevConsul()
	l.Args = []string{"--consul-deregister-after", "5s"}
	var ids []string
	var procs []*netns.Proc
	for i, port := range []int{8000, 8001} {
		ip := fmt.Sprintf("10.213.31.%d", 41+i)
		h := l.Lab.Host(fmt.Sprintf("sl%d", i), l.Seg["a"], ip+"/24")
		procs = append(procs, harness.Respond(t, h, 1, "--ip", ip, "--app-port", fmt.Sprint(port)))
		ids = append(ids, harness.ServerID(catalogh.Service, ip, port))
	}
	b := l.Bridge("a1", "--consul-catalog-layout", "node-per-server")
	l.WaitCatalog(30*time.Second, "both servers passing on their own nodes", catalogh.All("passing", ids))

	stop := pollPassing(t, l.Consul, ids)
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Fatalf("a1 exited %d on SIGTERM", code)
	}
	delete(l.Bridges, "a1")
	l.Bridge("a1", "--consul-catalog-layout", "shared-node")
	twice := false // an ID listed twice, on its old node critical: the README says so
	took := harness.Wait(t, 40*time.Second, "only the shared node's entries", func() (bool, string) {
		entries, _, err := l.Consul.Health().Service(catalogh.Service, "", false, nil)
		if err != nil {
			return false, err.Error()
		}
		var on []string
		seen := map[string]int{}
		for _, e := range entries {
			on = append(on, e.Node.Node+"/"+e.Service.ID+" "+e.Checks.AggregatedStatus())
			seen[e.Service.ID]++
		}
		for _, e := range entries {
			// Both entries of a server: the old one critical, the new passing.
			if seen[e.Service.ID] == 2 && e.Node.Node == e.Service.ID && e.Checks.AggregatedStatus() == api.HealthCritical {
				twice = true
			}
		}
		want := []string{"django-servers/" + ids[0] + " passing", "django-servers/" + ids[1] + " passing"}
		slices.Sort(on)
		return slices.Equal(on, want), fmt.Sprint(on)
	})
	reads, gaps := stop()
	if !twice {
		t.Errorf("no read saw a server listed on both nodes, its old node critical, during the change")
	}
	if reads < 20 || len(gaps) > 0 {
		t.Errorf("poller during the layout change: %d reads, %d with a server missing from ?passing: %v", reads, len(gaps), gaps)
	}
	t.Logf("MEASURED: node per server to shared node, the old nodes gone %s after the restart; %d reads of ?passing, none missing a server", took.Round(100*time.Millisecond), reads)
	nodes, _, err := l.Consul.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if slices.Contains(ids, n.Node) {
			t.Errorf("the old node %s is still there", n.Node)
		}
		if n.Node == "django-servers" && (n.Address != "127.0.0.1" || n.Meta["managed-by"] != "udp-discovery-bridge" || n.Meta["bridge-fleet"] != "udp-discovery-bridge/django") {
			t.Errorf("shared node %+v", n)
		}
	}

	// DNS (Consul's, from a bridge's host): SRV answers carry each server's
	// own address and port.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return netns.Dial(ctx, l.Hosts["a1"].NS, "udp", "10.213.30.10:8600") // from a1's host, on the Consul network
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, "", "", "django.service.consul")
	if err != nil {
		t.Fatalf("SRV django.service.consul: %v", err)
	}
	var got []string
	for _, s := range srvs {
		addrs, err := r.LookupHost(ctx, s.Target)
		if err != nil {
			t.Fatalf("A %s: %v", s.Target, err)
		}
		got = append(got, fmt.Sprintf("%v:%d", addrs, s.Port))
	}
	slices.Sort(got)
	if want := []string{"[10.213.31.41]:8000", "[10.213.31.42]:8001"}; !slices.Equal(got, want) {
		t.Errorf("DNS SRV answers %v, want %v", got, want)
	}

	// Quiet rounds.
	_, _, idx0, _ := catalogh.Entries(t, l.Consul)
	time.Sleep(5 * time.Second)
	if _, _, idx1, _ := catalogh.Entries(t, l.Consul); idx1 != idx0 {
		t.Errorf("quiet rounds on the shared node: service index %d -> %d", idx0, idx1)
	}

	// A server stops answering: critical, then its service and check go.
	if err := procs[1].StopWithin(5 * time.Second); err != nil {
		t.Logf("stop responder: %v", err)
	}
	l.WaitCatalog(20*time.Second, "the stopped server critical", map[string]string{ids[0]: "passing", ids[1]: "critical"})
	l.WaitCatalog(20*time.Second, "the stopped server removed", map[string]string{ids[0]: "passing"})
	checks, _, err := l.Consul.Health().Node("django-servers", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.ServiceID == ids[1] {
			t.Errorf("check %s of the removed server left on the shared node", c.CheckID)
		}
	}
}

// pollPassing reads ?passing instances of the service every 100 ms until
// stop is called, which returns the reads and those that lacked any of ids.
func pollPassing(t *testing.T, c *api.Client, ids []string) (stop func() (int, []string)) {
	done, quit := make(chan struct{}), make(chan struct{})
	var (
		mu    sync.Mutex
		reads int
		gaps  []string
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			entries, _, err := c.Health().Service(catalogh.Service, "", true, nil)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for _, e := range entries {
				seen[e.Service.ID] = true
			}
			mu.Lock()
			reads++
			for _, id := range ids {
				if !seen[id] {
					gaps = append(gaps, time.Now().Format("15:04:05.000")+" "+id)
				}
			}
			mu.Unlock()
		}
	}()
	return func() (int, []string) {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return reads, gaps
	}
}
