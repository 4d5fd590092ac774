package e2e_test

import (
	"fmt"
	"testing"
	"time"

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
	l := newCatLab(t)
	l.startDevConsul()
	sa, sb := l.servers("a", 1), l.servers("b", 1)
	l.bridge("a1")
	runWait(t, 20*time.Second, "a1 leads", func() (bool, string) { return l.leader() == "a1", l.leader() })
	b := l.bridge("b1")
	l.waitCatalog(30*time.Second, "both servers passing", all("passing", sa, sb))
	time.Sleep(5 * time.Second) // past the leader's start-up grace (3 s at --interval 1s --timeout 0.5)

	stop := pollPassing(t, l.consul, append(sa, sb...))
	if code := b.sigterm(t, 10*time.Second); code != 0 {
		t.Fatalf("b1 exited %d on SIGTERM", code)
	}
	delete(l.bridges, "b1")
	l.bridge("b1")
	time.Sleep(8 * time.Second) // well past the grace: the successor took the observation over
	reads, gaps := stop()
	if reads < 50 || len(gaps) > 0 {
		t.Errorf("lone bridge restarted: %d reads of ?passing, %d missing a server: %v", reads, len(gaps), gaps)
	}
	t.Logf("MEASURED: lone bridge of segment b restarted: %d reads of ?passing at 100 ms, none missing a server", reads)

	// Stopped for good: critical after the grace, the released keys deleted.
	stopped := time.Now()
	if code := l.bridges["b1"].sigterm(t, 10*time.Second); code != 0 {
		t.Fatalf("b1 exited %d on SIGTERM", code)
	}
	took := l.waitCatalog(20*time.Second, "segment b's server critical", map[string]string{sa[0]: "passing", sb[0]: "critical"})
	if took < 2*time.Second {
		t.Errorf("segment b's server critical %s after its bridge stopped; want the handover grace (3 s) first", took)
	}
	runWait(t, 10*time.Second, "b1's released observation deleted", func() (bool, string) {
		for k := range l.obsIndexes() {
			if k == "udp-discovery-bridge/"+catService+"/obs/b1/0" {
				return false, fmt.Sprint(l.obsIndexes())
			}
		}
		return true, ""
	})
	t.Logf("MEASURED: lone bridge stopped for good: its server critical %s after SIGTERM", time.Since(stopped).Round(100*time.Millisecond))
}
