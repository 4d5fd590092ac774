package consul_test

// A catalog leader whose lock is taken away, against the real three-server
// Consul cluster.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// TestRunCatalogLeaderLosesItsLock: the leader's session is destroyed by
// hand (/v1/session/destroy), which takes its lock and its observation
// away. Within one session renewal interval (half the 10 s TTL) the leader
// says it stopped writing the catalog, and from that line on it sends no
// transaction (its txns_total does not move) until it leads a new term;
// another bridge, or the same one on a new session, leads afterwards and the
// servers stay passing.
func TestRunCatalogLeaderLosesItsLock(t *testing.T) {
	l, _, _, want, leader, other := pairLab(t)
	const (
		renewal = 5 * time.Second // the default session TTL (10 s) / 2
		lockKey = "udp-discovery-bridge/" + catalogh.Service + "/leader"
		stopped = "stopped writing the catalog"
		leading = "leading: merging observations"
		txns    = "udp_discovery_bridge_consul_catalog_txns_total"
	)
	kv, _, err := l.Consul.KV().Get(lockKey, nil)
	if err != nil || kv == nil || kv.Session == "" {
		t.Fatalf("lock key %s: %+v, %v; want it held", lockKey, kv, err)
	}
	se, _, err := l.Consul.Session().Info(kv.Session, nil)
	if err != nil || se == nil || se.Name != "udp-discovery-bridge "+leader {
		t.Fatalf("the lock's session %s is %+v (%v), want the leader %s's", kv.Session, se, err, leader)
	}
	_, before := l.Bridges[leader].Output()
	idx0 := l.ServiceIndex()

	if _, err := l.Consul.Session().Destroy(kv.Session, nil); err != nil {
		t.Fatalf("destroy session %s: %v", kv.Session, err)
	}
	// The leader says so.
	var tail string
	took := harness.Wait(t, 3*renewal, leader+" says it stopped writing the catalog", func() (bool, string) {
		_, stderr := l.Bridges[leader].Output()
		tail = stderr[len(before):]
		return strings.Contains(tail, stopped), harness.Tail(tail, 10)
	})
	atStop, _, err := harness.Metric(l.Hosts[leader].NS, txns)
	if err != nil {
		t.Fatalf("%s %s: %v", leader, txns, err)
	}
	t.Logf("MEASURED: the leader %s said it stopped writing %s after its session was destroyed (session renewal interval %s)",
		leader, took.Round(100*time.Millisecond), renewal)
	if took > renewal {
		t.Errorf("the leader said it stopped %s after losing its lock, want within one session renewal interval (%s)", took, renewal)
	}
	for _, line := range strings.Split(tail, "\n") {
		if strings.Contains(line, stopped) && !strings.Contains(line, `"level":"warn"`) {
			t.Errorf("the stop line is not a warning: %s", line)
		}
	}

	// The old leader's observation went with its session; it publishes it
	// again on a new one.
	obsKey := "udp-discovery-bridge/" + catalogh.Service + "/obs/" + leader + "/0"
	took = harness.Wait(t, 3*renewal, leader+" republished on a new session", func() (bool, string) {
		kv, _, err := l.Consul.KV().Get(obsKey, nil)
		if err != nil || kv == nil {
			return false, fmt.Sprint(kv, err)
		}
		return kv.Session != "" && kv.Session != se.ID, "session " + kv.Session
	})
	t.Logf("MEASURED: %s's observation back on a new session %s after the stop line", leader, took.Round(100*time.Millisecond))

	// Someone leads afterwards.
	var next string
	took = harness.Wait(t, 30*time.Second, "a leader after the loss", func() (bool, string) { next = l.Leader(); return next != "", "no leader" })
	t.Logf("MEASURED: %s led %s after the stop line (%s the other bridge)", next, took.Round(100*time.Millisecond),
		map[bool]string{true: "is", false: "is not"}[next == other])
	time.Sleep(3 * time.Second) // three rounds

	// From the stop line on, the old leader sent nothing until a new term.
	_, stderr := l.Bridges[leader].Output()
	after := stderr[len(before):]
	after = after[strings.Index(after, stopped):]
	nextTerm := strings.Index(after, leading)
	if nextTerm < 0 {
		nextTerm = len(after)
	}
	if n := catalogh.CountLines(after[:nextTerm], "catalog reconciled"); n > 0 {
		t.Errorf("the old leader %s reconciled %d times after it said it stopped: %s", leader, n, harness.Tail(after[:nextTerm], 20))
	}
	if next != leader {
		now, _, err := harness.Metric(l.Hosts[leader].NS, txns)
		if err != nil || now != atStop {
			t.Errorf("the old leader %s's %s moved from %v to %v (%v) after it said it stopped", leader, txns, atStop, now, err)
		}
	}
	l.WaitCatalog(10*time.Second, "every server still passing", want)
	t.Logf("MEASURED: the service's catalog index %d before the loss, %d after (the new leader found nothing to write: %v)",
		idx0, l.ServiceIndex(), fmt.Sprint(idx0 == l.ServiceIndex()))
}
