package consul_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestRunCatalogHandover: a lone bridge of a segment restarted (SIGTERM,
// then a new process of the same bridge_id, as a DaemonSet's rolling
// update does) while another bridge leads: its server never leaves
// ?passing (the old process hands its observation over, the new one takes
// it over). Stopped for good, its server turns critical once the handover
// grace is over and the released keys are deleted.
func TestRunCatalogHandover(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartDevConsul()
	sa, sb := l.Servers("a", 1), l.Servers("b", 1)
	l.Bridge("a1")
	harness.Wait(t, 20*time.Second, "a1 leads", func() (bool, string) { return l.Leader() == "a1", l.Leader() })
	b := l.Bridge("b1")
	l.WaitCatalog(30*time.Second, "both servers passing", catalogh.All("passing", sa, sb))
	time.Sleep(5 * time.Second) // past the leader's start-up grace (3 s at --interval 1s --timeout 0.5)

	stop := pollPassing(t, l.Consul, append(sa, sb...))
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Fatalf("b1 exited %d on SIGTERM", code)
	}
	delete(l.Bridges, "b1")
	l.Bridge("b1")
	time.Sleep(8 * time.Second) // well past the grace: the successor took the observation over
	reads, gaps := stop()
	if reads < 50 || len(gaps) > 0 {
		t.Errorf("lone bridge restarted: %d reads of ?passing, %d missing a server: %v", reads, len(gaps), gaps)
	}
	t.Logf("MEASURED: lone bridge of segment b restarted: %d reads of ?passing at 100 ms, none missing a server", reads)

	// Stopped for good: critical after the grace, the released keys deleted.
	stopped := time.Now()
	if code := l.Bridges["b1"].Sigterm(t, 10*time.Second); code != 0 {
		t.Fatalf("b1 exited %d on SIGTERM", code)
	}
	took := l.WaitCatalog(20*time.Second, "segment b's server critical", map[string]string{sa[0]: "passing", sb[0]: "critical"})
	if took < 2*time.Second {
		t.Errorf("segment b's server critical %s after its bridge stopped; want the handover grace (3 s) first", took)
	}
	harness.Wait(t, 10*time.Second, "b1's released observation deleted", func() (bool, string) {
		for k := range l.ObsIndexes() {
			if k == "udp-discovery-bridge/"+catalogh.Service+"/obs/b1/0" {
				return false, fmt.Sprint(l.ObsIndexes())
			}
		}
		return true, ""
	})
	t.Logf("MEASURED: lone bridge stopped for good: its server critical %s after SIGTERM", time.Since(stopped).Round(100*time.Millisecond))
}
