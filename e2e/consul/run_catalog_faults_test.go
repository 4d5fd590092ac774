package consul_test

// Catalog mode through faults a production cluster sees, against a real
// three-server Consul: the whole cluster down and back (with its data, and
// as a new empty cluster at the same addresses), a bridge's observation key
// overwritten by someone else, and a leading bridge paused (SIGSTOP) while a
// server dies.

import (
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// faultServers starts n responders on segment seg at 10.213.<31|32>.<41+i>
// and returns their service IDs and processes.
func faultServers(l *catalogh.Lab, seg string, n int) ([]string, []*netns.Proc) {
	l.T.Helper()
	var ids []string
	var procs []*netns.Proc
	for i := range n {
		ip := fmt.Sprintf("10.213.%d.%d", catalogh.SegNet(seg), 41+i)
		h := l.Lab.Host(fmt.Sprintf("f%s%d", seg, i), l.Seg[seg], ip+"/24")
		procs = append(procs, harness.Respond(l.T, h, 1, "--ip", ip))
		ids = append(ids, harness.ServerID(catalogh.Service, ip, 8000))
	}
	return ids, procs
}

// obsSessions is the session holding chunk 0 of each bridge's observation
// ("" when there is none or the read fails).
func obsSessions(l *catalogh.Lab, bridges []string) map[string]string {
	out := map[string]string{}
	for _, b := range bridges {
		kv, _, err := l.Consul.KV().Get("udp-discovery-bridge/django/obs/"+b+"/0", nil)
		if err == nil && kv != nil {
			out[b] = kv.Session
		}
	}
	return out
}

// passingCount is how many of want are passing now (-1 when the read
// fails).
func passingCount(l *catalogh.Lab, want map[string]string) int {
	st, _, _, err := catalogh.Entries(l.T, l.Consul)
	if err != nil {
		return -1
	}
	n := 0
	for id := range want {
		if st[id] == "passing" {
			n++
		}
	}
	return n
}

// TestRunCatalogOutageAndDataLoss: three bridges on two segments, six
// servers. All three Consul servers stop for longer than twice the session
// TTL (every bridge loses its session) and come back with their data: from
// the first answer on, a poller never sees a server missing or critical.
// Then all three stop again and come back empty (a data loss): every server
// is back and passing within seconds.
func TestRunCatalogOutageAndDataLoss(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	cl := l.StartCluster()
	l.Args = []string{"--consul-deregister-after", "10s"}
	sa, _ := faultServers(l, "a", 3)
	sb, _ := faultServers(l, "b", 3)
	for _, n := range []string{"a1", "a2", "b1"} {
		l.Bridge(n)
	}
	want := catalogh.All("passing", sa, sb)
	l.WaitCatalog(30*time.Second, "all servers passing", want)
	harness.Wait(t, 20*time.Second, "one leader", func() (bool, string) { ld := l.Leader(); return ld != "", "leaders: " + ld })

	// Outage: 25 s, beyond 2 x the 10 s session TTL.
	bridges := []string{"a1", "a2", "b1"}
	old := obsSessions(l, bridges)
	for i := range cl.N() {
		cl.Stop(i)
	}
	down := time.Now()
	time.Sleep(25 * time.Second)
	restart := time.Now()
	cl.StartAll(false)
	ready := time.Now()
	t.Logf("MEASURED: cluster down %s; ready %s after the restart began", restart.Sub(down).Round(100*time.Millisecond), ready.Sub(restart).Round(100*time.Millisecond))
	p := l.Poll(want)
	// Every bridge publishes on a new session.
	took := harness.Wait(t, 30*time.Second, "every bridge published on a new session", func() (bool, string) {
		now := obsSessions(l, bridges)
		for _, b := range bridges {
			if now[b] == "" || now[b] == old[b] {
				return false, fmt.Sprintf("sessions before %v, now %v", old, now)
			}
		}
		return true, ""
	})
	t.Logf("MEASURED: after the outage, all 3 bridges published on new sessions %s after the cluster was ready", took.Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // past the leader's grace: anything wrong would show
	reads, missing, critical, errs := p.Finish()
	if len(missing)+len(critical) > 0 {
		t.Errorf("after the outage, in %d reads every 100 ms: missing %v, not passing %v", reads, missing[:min(len(missing), 10)], critical[:min(len(critical), 10)])
	}
	t.Logf("MEASURED: outage recovery: %d catalog reads every 100 ms from the cluster's return: %d missing, %d not passing, %d read errors", reads, len(missing), len(critical), errs)

	// Data loss: the cluster comes back empty.
	for i := range cl.N() {
		cl.Stop(i)
	}
	cl.StartAll(true)
	wiped := time.Now()
	var first time.Duration
	took = harness.Wait(t, 60*time.Second, "all six servers passing in the new cluster", func() (bool, string) {
		n := passingCount(l, want)
		if n > 0 && first == 0 {
			first = time.Since(wiped)
		}
		return n == len(want), fmt.Sprintf("%d of %d passing", n, len(want))
	})
	t.Logf("MEASURED: data loss: the first server passing %s and all 6 %s after the empty cluster was ready", first.Round(100*time.Millisecond), took.Round(100*time.Millisecond))
}

// pairLab runs two bridges (a1, a2) on segment a with three servers and a
// 20 s deregister_after, and waits until the servers are passing and one
// bridge leads. It returns the servers' IDs and processes (in the same
// order), the wanted catalog, the leader and the other bridge.
func pairLab(t *testing.T) (l *catalogh.Lab, sa []string, procs []*netns.Proc, want map[string]string, leader, other string) {
	t.Helper()
	netns.Require(t)
	t.Parallel()
	l = catalogh.NewLab(t)
	l.StartCluster()
	l.Args = []string{"--consul-deregister-after", "20s"}
	sa, procs = faultServers(l, "a", 3)
	for _, n := range []string{"a1", "a2"} {
		l.Bridge(n)
	}
	want = catalogh.All("passing", sa)
	l.WaitCatalog(30*time.Second, "all servers passing", want)
	harness.Wait(t, 20*time.Second, "one leader", func() (bool, string) { leader = l.Leader(); return leader != "", "leaders: " + leader })
	other = "a1"
	if leader == "a1" {
		other = "a2"
	}
	return l, sa, procs, want, leader, other
}

// TestRunCatalogTamperedKey: a plain PUT of garbage over a bridge's
// observation key is rewritten by that bridge within a round, no server
// turns critical meanwhile, and the leader warns naming the key.
func TestRunCatalogTamperedKey(t *testing.T) {
	l, _, _, want, leader, other := pairLab(t)

	// Tampering: the follower's key is overwritten (a plain PUT keeps the
	// session binding, as any token with the fleet's key_prefix can do).
	key := "udp-discovery-bridge/django/obs/" + other + "/0"
	var sess string
	harness.Wait(t, 20*time.Second, other+" published", func() (bool, string) {
		kv, _, err := l.Consul.KV().Get(key, nil)
		if err != nil || kv == nil {
			return false, fmt.Sprint(kv, err)
		}
		sess = kv.Session
		return sess != "", "no session"
	})
	p := l.Poll(want)
	if _, err := l.Consul.KV().Put(&api.KVPair{Key: key, Value: []byte("garbage")}, nil); err != nil {
		t.Fatal(err)
	}
	took := harness.Wait(t, 10*time.Second, other+" rewrote its key", func() (bool, string) {
		kv, _, err := l.Consul.KV().Get(key, nil)
		if err != nil || kv == nil {
			return false, fmt.Sprint(kv, err)
		}
		o, derr := observation.Decode([][]byte{kv.Value})
		return derr == nil && kv.Session == sess && len(o.Entries) == 3, fmt.Sprintf("session %s, %d bytes, %v", kv.Session, len(kv.Value), derr)
	})
	t.Logf("MEASURED: an observation key overwritten with garbage was rewritten by its bridge %s later (interval 1s)", took.Round(10*time.Millisecond))
	time.Sleep(3 * time.Second)
	reads, missing, critical, _ := p.Finish()
	if len(missing)+len(critical) > 0 {
		t.Errorf("after the tampering: missing %v, not passing %v (of %d reads)", missing, critical, reads)
	}
	if v, _, err := harness.Metric(l.Hosts[other].NS, "udp_discovery_bridge_consul_catalog_observation_repairs_total"); err != nil || v < 1 {
		t.Errorf("%s observation_repairs_total = %v (%v), want >= 1", other, v, err)
	}
	if _, stderr := l.Bridges[leader].Output(); !strings.Contains(stderr, "written by someone other than its bridge") {
		t.Errorf("the leader %s logged no warning about the undecodable key", leader)
	}
}

// TestRunCatalogPausedLeader: the leading bridge is paused (SIGSTOP)
// beyond twice its session TTL, a server it observes dies meanwhile and is
// marked critical by the next leader; when the paused bridge wakes it
// never makes that server passing again, and the server is removed
// deregister_after later.
func TestRunCatalogPausedLeader(t *testing.T) {
	l, sa, procs, want, leader, other := pairLab(t)
	// Pause: the leader stops for 25 s (beyond 2 x the 10 s session TTL);
	// one server dies 2 s in.
	if err := l.Bridges[leader].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(2 * time.Second)
	dead := sa[0]
	harness.StopResponder(t, procs[0])
	crit := maps.Clone(want)
	crit[dead] = "critical"
	l.WaitCatalog(40*time.Second, "the dead server critical, marked by "+other, crit)
	if pausedFor := time.Since(stopped); pausedFor < 25*time.Second {
		time.Sleep(25*time.Second - pausedFor)
	}
	// Wake it and watch the dead server for longer than a few rounds.
	if err := l.Bridges[leader].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()
	var passingAgain []string
	for time.Since(woke) < 8*time.Second {
		st, _, _, err := catalogh.Entries(t, l.Consul)
		if err == nil {
			if s, ok := st[dead]; ok && s == "passing" {
				passingAgain = append(passingAgain, time.Since(woke).Round(10*time.Millisecond).String())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(passingAgain) > 0 {
		t.Errorf("the dead server %s was passing again after the paused bridge woke, at %v", dead, passingAgain)
	}
	// The woken bridge publishes what a fresh round sees: the two live
	// servers; the dead one is removed deregister_after (20 s) after it
	// turned critical.
	alive := maps.Clone(want)
	delete(alive, dead)
	l.WaitCatalog(40*time.Second, "the dead server removed, the others passing", alive)
	_, stderr := l.Bridges[leader].Output()
	t.Logf("the woken bridge %s: stale round discarded %v, skipped rounds counted %v, stale snapshot withheld %v", leader,
		strings.Contains(stderr, "stale round"), strings.Contains(stderr, "rounds were skipped"), strings.Contains(stderr, "not publishing an observation older than two rounds"))
}
