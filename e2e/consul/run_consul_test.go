package consul_test

// End-to-end tests of `bridge run --sink consul`: the real bridge binary and
// `bridge respond` servers on namespace hosts of 10.213.1.0/24, against a
// real Consul dev agent (built by consulbin) running inside the client's
// namespace. The bridge, its agent and its servers never run in the root
// namespace.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// bridgeTTL returns the status of the bridge id's heartbeat TTL check, or ""
// when it has none.
func bridgeTTL(c *api.Client, id string) (string, error) {
	checks, _, err := c.Health().Checks(harness.BridgeService, nil)
	if err != nil {
		return "", err
	}
	for _, ch := range checks {
		if ch.ServiceID == harness.BridgeService+"-"+id && ch.Type == "ttl" {
			return ch.Status, nil
		}
	}
	return "", nil
}

// readyz GETs the bridge's /readyz in ns.
func readyz(ns string) (int, string) {
	code, body, err := harness.NSGet(ns, "http://"+harness.MetricsAddr+"/readyz")
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// TestRunConsulLifecycle covers one bridge's life against one agent:
// registration (address, port, tags, meta, alias checks, the bridge's TTL
// check, a 127.0.0.1 server at its source address), a hand-deleted service
// restored by the next resync, services of others never touched, removal
// after --missed-rounds and not before, readiness, and SIGTERM with
// --on-exit deregister.
func TestRunConsulLifecycle(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 3, true)
	c := l.Consul
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--app-port", "8001")
	s2 := harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	harness.Respond(t, l.Servers[2], 1, "--ip", "127.0.0.1") // a stock server with no default route

	// Others' services of the same name: one without meta, one owned by
	// another bridge.
	foreign := []*api.AgentServiceRegistration{
		{ID: "django-foreign", Name: "django", Address: "10.213.1.99", Port: 8000},
		{ID: "django-other-bridge", Name: "django", Address: "10.213.1.98", Port: 8000,
			Meta: map[string]string{"managed-by": "udp-discovery-bridge", "bridge-id": "someone-else"}},
	}
	for _, r := range foreign {
		if err := c.Agent().ServiceRegister(r); err != nil {
			t.Fatalf("register foreign %s: %v", r.ID, err)
		}
	}
	const (
		id1 = "django-10.213.1.11-8001"
		id2 = "django-10.213.1.12-8000"
		id3 = "django-10.213.1.13-8000"
	)
	b := harness.StartRun(t, l.Client, "life", harness.ConsulRunArgs("life",
		"--consul-resync", "3s", "--missed-rounds", "3", "--consul-tag", "e2e",
		"--metrics-addr", harness.MetricsAddr)...)

	got := harness.WaitCatalog(t, c, "django", 20*time.Second, id1, id2, id3, "django-foreign", "django-other-bridge")
	dev := l.Client.Dev(l.Br)
	t.Run("registered", func(t *testing.T) {
		want := map[string][3]string{ // id: address, port, source-address
			id1: {"10.213.1.11", "8001", "10.213.1.11:9999"},
			id2: {"10.213.1.12", "8000", "10.213.1.12:9999"},
			id3: {"10.213.1.13", "8000", "10.213.1.13:9999"}, // payload 127.0.0.1: registered at the source
		}
		for id, w := range want {
			s := got[id]
			if s.ServiceName != "django" || s.ServiceAddress != w[0] || fmt.Sprint(s.ServicePort) != w[1] {
				t.Errorf("%s: %s %s:%d, want django %s:%s", id, s.ServiceName, s.ServiceAddress, s.ServicePort, w[0], w[1])
			}
			if !slices.Contains(s.ServiceTags, "e2e") {
				t.Errorf("%s: tags %v lack e2e", id, s.ServiceTags)
			}
			wantMeta := map[string]string{"managed-by": "udp-discovery-bridge", "bridge-id": "life", "interface": dev, "source-address": w[2]}
			for k, v := range wantMeta {
				if s.ServiceMeta[k] != v {
					t.Errorf("%s: meta[%s] = %q, want %q (meta %v)", id, k, s.ServiceMeta[k], v, s.ServiceMeta)
				}
			}
		}
		harness.WantPassing(t, c, "django", 10*time.Second, id1, id2, id3)
		entries, _, err := c.Health().Service("django", "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Service.ID, "django-10.213.1.1") {
				continue
			}
			alias := 0
			for _, ch := range e.Checks {
				if ch.Type == "alias" && ch.Status == api.HealthPassing {
					alias++
				}
			}
			if alias != 1 {
				t.Errorf("%s: %d passing alias checks, want 1: %+v", e.Service.ID, alias, e.Checks)
			}
		}
		harness.Wait(t, 5*time.Second, "passing TTL check of udp-discovery-bridge-life", func() (bool, string) {
			st, err := bridgeTTL(c, "life")
			if err != nil {
				return false, err.Error()
			}
			return st == api.HealthPassing, "status " + st
		})
		code, body := readyz(l.Client.NS)
		if code != http.StatusOK {
			t.Errorf("/readyz = %d %s, want 200", code, body)
		}
		if code, _, err := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz = %d (%v), want 200", code, err)
		}
	})

	t.Run("hand-deleted service comes back within one resync", func(t *testing.T) {
		if err := c.Agent().ServiceDeregister(id1); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		harness.WaitCatalog(t, c, "django", 3*time.Second+4*time.Second, id1, id2, id3, "django-foreign", "django-other-bridge")
		t.Logf("%s restored after %s (--consul-resync 3s)", id1, time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("removed after missed rounds, not before", func(t *testing.T) {
		harness.StopResponder(t, s2)
		stopped := time.Now()
		// Three rounds of 1s: the earliest legitimate removal is when the third
		// round after the stop ends, 2.5s later; two rounds (2s) must keep it.
		for time.Since(stopped) < 2*time.Second {
			m, _, err := harness.Catalog(t, c, "django")
			if err != nil {
				t.Fatal(err)
			}
			if m[id2] == nil {
				t.Fatalf("%s removed %s after the stop, before 3 missed rounds", id2, time.Since(stopped).Round(10*time.Millisecond))
			}
			time.Sleep(50 * time.Millisecond)
		}
		harness.WaitCatalog(t, c, "django", 8*time.Second, id1, id3, "django-foreign", "django-other-bridge")
		t.Logf("%s removed %s after its responder stopped (--missed-rounds 3, --interval 1s)", id2, time.Since(stopped).Round(100*time.Millisecond))
	})

	t.Run("SIGTERM deregisters what it owns and exits 0", func(t *testing.T) {
		if code := b.Sigterm(t, 15*time.Second); code != 0 {
			t.Errorf("exit status after SIGTERM = %d, want 0", code)
		}
		// The agent syncs its catalog entries asynchronously; without the
		// bridge's deregistration nothing would remove them for a minute.
		m := harness.WaitCatalog(t, c, "django", 3*time.Second, "django-foreign", "django-other-bridge")
		for _, f := range foreign {
			s := m[f.ID]
			if s == nil {
				continue
			}
			if s.ServiceAddress != f.Address || len(s.ServiceMeta) != len(f.Meta) || len(s.ServiceTags) != 0 {
				t.Errorf("foreign %s was changed: %s:%d meta %v tags %v", f.ID, s.ServiceAddress, s.ServicePort, s.ServiceMeta, s.ServiceTags)
			}
		}
		harness.WaitCatalog(t, c, harness.BridgeService, 3*time.Second) // the bridge's own service is gone too
	})
}

// TestRunConsulKillNine: kill -9 and a restart with the same --bridge-id
// duplicate nothing; kill -9 without restart turns the servers critical
// within the TTL, and the agent removes them within deregister-after + 60s.
func TestRunConsulKillNine(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 2, true)
	c := l.Consul
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	ids := []string{"django-10.213.1.11-8000", "django-10.213.1.12-8000"}
	args := harness.ConsulRunArgs("crash", "--consul-ttl", "3s", "--consul-deregister-after", "1m", "--metrics-addr", "")

	b1 := harness.StartRun(t, l.Client, "crash-1", args...)
	harness.WaitCatalog(t, c, "django", 20*time.Second, ids...)
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
	b1.Kill9(t)

	b2 := harness.StartRun(t, l.Client, "crash-2", args...)
	// Let the restarted bridge run its start-up resync and a few rounds.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			t.Fatal(err)
		}
		if have := harness.Keys(m); !slices.Equal(have, ids) {
			t.Fatalf("after restart the catalog holds %v, want %v", have, ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	bs := harness.WaitCatalog(t, c, harness.BridgeService, 5*time.Second, harness.BridgeService+"-crash")
	if len(bs) != 1 {
		t.Fatalf("bridge services %v", harness.Keys(bs))
	}
	agentSvcs, err := c.Agent().ServicesWithFilter(`Service == "django"`)
	if err != nil {
		t.Fatal(err)
	}
	if have := harness.Keys(agentSvcs); !slices.Equal(have, ids) {
		t.Errorf("agent services after restart = %v, want %v", have, ids)
	}
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)

	b2.Kill9(t)
	killed := time.Now()
	took := harness.Wait(t, 3*time.Second+5*time.Second, "servers critical after kill -9", func() (bool, string) {
		st, err := harness.Health(c, "django")
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if st[id] != api.HealthCritical {
				return false, fmt.Sprintf("%v", st)
			}
		}
		return true, ""
	})
	t.Logf("servers critical %s after kill -9 (--consul-ttl 3s)", took.Round(100*time.Millisecond))
	harness.Wait(t, time.Minute+60*time.Second, "servers reaped by the agent", func() (bool, string) {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			return false, err.Error()
		}
		return len(m) == 0, fmt.Sprintf("still %v", harness.Keys(m))
	})
	t.Logf("servers gone from the catalog %s after kill -9 (--consul-deregister-after 1m)", time.Since(killed).Round(time.Second))
}

// TestRunConsulAgentRestart stops the agent mid-run (a dev agent comes back
// empty): /readyz turns 503 while it is down, and after it returns one
// reconcile (with the default 1m resync, so not the periodic one) restores
// every server, including one that appeared while it was down, without
// duplicates; /readyz turns 200 again.
func TestRunConsulAgentRestart(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 3, true)
	c := l.Consul
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	ids := []string{"django-10.213.1.11-8000", "django-10.213.1.12-8000"}
	b := harness.StartRun(t, l.Client, "restart", harness.ConsulRunArgs("restart", "--metrics-addr", harness.MetricsAddr,
		"--on-exit", "keep", "--consul-ttl", "3s")...)

	harness.WaitCatalog(t, c, "django", 20*time.Second, ids...)
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
	harness.Wait(t, 5*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(l.Client.NS)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})

	l.Agent.Stop()
	stopped := time.Now()
	var body503 string
	took := harness.Wait(t, 10*time.Second, "/readyz 503 with Consul down", func() (bool, string) {
		code, body := readyz(l.Client.NS)
		body503 = body
		return code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", code, body)
	})
	t.Logf("/readyz 503 %s after the agent stopped: %s", took.Round(100*time.Millisecond), strings.TrimSpace(body503))
	// A server appears while Consul is down: it must not be lost.
	harness.Respond(t, l.Servers[2], 1, "--ip", "10.213.1.13")
	ids = append(ids, "django-10.213.1.13-8000")
	for time.Since(stopped) < 4*time.Second {
		if code, body := readyz(l.Client.NS); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d %s while Consul is down, want 503", code, body)
			break
		}
		// The loop itself is alive: Consul being down never stalls it.
		if code, body, err := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz = %d %s (%v) while Consul is down, want 200", code, body, err)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	l.Agent.Start()
	back := time.Now()
	harness.WaitCatalog(t, c, "django", 40*time.Second, ids...)
	t.Logf("all servers back %s after the agent restarted", time.Since(back).Round(100*time.Millisecond))
	harness.WaitCatalog(t, c, harness.BridgeService, 5*time.Second, harness.BridgeService+"-restart")
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
	harness.Wait(t, 10*time.Second, "/readyz 200 after Consul returned", func() (bool, string) {
		code, body := readyz(l.Client.NS)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	// And it stays level: no duplicates, nothing extra, over a few rounds.
	for range 3 {
		time.Sleep(time.Second)
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			t.Fatal(err)
		}
		if have := harness.Keys(m); !slices.Equal(have, ids) {
			t.Fatalf("catalog = %v, want %v", have, ids)
		}
	}

	// SIGTERM with --on-exit keep: exit 0, the servers stay registered and
	// turn critical once the heartbeat TTL (3s) lapses.
	if code := b.Sigterm(t, 15*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM (--on-exit keep) = %d, want 0", code)
	}
	termed := time.Now()
	took = harness.Wait(t, 3*time.Second+5*time.Second, "kept servers critical after the heartbeat lapsed", func() (bool, string) {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			return false, err.Error()
		}
		if have := harness.Keys(m); !slices.Equal(have, ids) {
			t.Fatalf("%s after SIGTERM with --on-exit keep the catalog holds %v, want %v",
				time.Since(termed).Round(100*time.Millisecond), have, ids)
		}
		st, err := harness.Health(c, "django")
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if st[id] != api.HealthCritical {
				return false, fmt.Sprint(st)
			}
		}
		return true, ""
	})
	t.Logf("kept servers critical %s after SIGTERM (--consul-ttl 3s)", took.Round(100*time.Millisecond))
	harness.WaitCatalog(t, c, harness.BridgeService, time.Second, harness.BridgeService+"-restart")
}

// TestRunConsulThousandQuiet: 1,000 servers (one responder answering with
// 1,000 distinct replies), then ten quiet rounds (with resyncs every 3s
// among them) leave the catalog's X-Consul-Index for the service unchanged.
func TestRunConsulThousandQuiet(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, true)
	c := l.Consul
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.100.1", "--replies", "1000", "--global-rate-limit", "0")
	// One source advertising 1,000 addresses off the LAN: a load test's
	// responder, which the bridge admits with harness.LoadTestFlags.
	args := append([]string{"--consul-resync", "3s", "--metrics-addr", harness.MetricsAddr}, harness.LoadTestFlags...)
	harness.StartRun(t, l.Client, "bulk", harness.ConsulRunArgs("bulk", args...)...)

	start := time.Now()
	harness.Wait(t, 90*time.Second, "1000 instances in the catalog", func() (bool, string) {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			return false, err.Error()
		}
		return len(m) == 1000, fmt.Sprintf("%d instances", len(m))
	})
	t.Logf("1000 servers in the catalog %s after start", time.Since(start).Round(100*time.Millisecond))
	harness.Wait(t, 20*time.Second, "1000 passing instances", func() (bool, string) {
		entries, _, err := c.Health().Service("django", "", true, nil)
		if err != nil {
			return false, err.Error()
		}
		return len(entries) == 1000, fmt.Sprintf("%d passing", len(entries))
	})
	// Let the round that completed the set and its apply settle.
	time.Sleep(2 * time.Second)

	// counters reads, from one scrape, the rounds, the Consul sink's
	// successful applies and its writes (every write counts, TTL updates
	// included).
	counters := func() (rounds, applies, writes float64) {
		body, err := harness.MetricsBody(l.Client.NS)
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		for _, m := range []struct {
			prefix string
			v      *float64
		}{
			{"udp_discovery_bridge_rounds_total", &rounds},
			{`udp_discovery_bridge_sink_applies_total{outcome="ok",sink="consul"}`, &applies},
			{`udp_discovery_bridge_sink_writes_total{sink="consul"}`, &writes},
		} {
			v, ok, err := harness.MetricIn(body, m.prefix)
			if err != nil || !ok {
				t.Fatalf("metric %s: %v (found %v)", m.prefix, err, ok)
			}
			*m.v = v
		}
		return rounds, applies, writes
	}
	m, idx0, err := harness.Catalog(t, c, "django")
	if err != nil || len(m) != 1000 {
		t.Fatalf("catalog: %d instances, %v", len(m), err)
	}
	// settled scrapes until two scrapes agree on writes - applies, so that an
	// apply recorded between its two counter updates is not misread.
	settled := func() (rounds, applies, writes float64) {
		r, a, w := counters()
		for range 10 {
			time.Sleep(30 * time.Millisecond)
			r2, a2, w2 := counters()
			if w2-a2 == w-a {
				return r2, a2, w2
			}
			r, a, w = r2, a2, w2
		}
		return r, a, w
	}
	r0, a0, w0 := settled()
	harness.Wait(t, 30*time.Second, "ten more rounds", func() (bool, string) {
		r, _, _ := counters()
		return r-r0 >= 10, fmt.Sprintf("%v rounds since", r-r0)
	})
	m, idx1, err := harness.Catalog(t, c, "django")
	if err != nil {
		t.Fatal(err)
	}
	r1, a1, w1 := settled()
	t.Logf("quiet rounds: %v rounds, %v consul applies, %v consul writes", r1-r0, a1-a0, w1-w0)
	// Consul ignores an identical re-registration, so the index alone would
	// not see one: the bridge's own count must show one write (the TTL
	// update) per apply.
	if a1-a0 < 5 || w1-w0 != a1-a0 {
		t.Errorf("over %v quiet rounds the consul sink made %v writes in %v applies, want one TTL update per apply", r1-r0, w1-w0, a1-a0)
	}
	if len(m) != 1000 {
		t.Errorf("after ten quiet rounds the catalog holds %d instances, want 1000", len(m))
	}
	if idx1 != idx0 {
		t.Errorf("X-Consul-Index of service django moved from %d to %d over ten quiet rounds", idx0, idx1)
	}
	entries, _, err := c.Health().Service("django", "", true, nil)
	if err != nil || len(entries) != 1000 {
		t.Errorf("after quiet rounds: %d passing instances (%v), want 1000", len(entries), err)
	}
}

// startLockPair starts two servers and two bridges, <prefix>-a on the
// client and <prefix>-b on a second client, both with --consul-lock on the
// LAN's agent; it returns the servers' service IDs and the bridges by name.
func startLockPair(t *testing.T, prefix string) (*harness.RunLAN, []string, map[string]*harness.BridgeProc) {
	t.Helper()
	l := harness.NewRunLAN(t, 2, true)
	client2 := l.Lab.Host("client2", l.Br, "10.213.1.9/24")
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	ids := []string{"django-10.213.1.11-8000", "django-10.213.1.12-8000"}
	lock := []string{"--consul-lock", "udp-discovery-bridge/e2e/lock", "--metrics-addr", ""}
	a, b := prefix+"-a", prefix+"-b"
	return l, ids, map[string]*harness.BridgeProc{
		a: harness.StartRun(t, l.Client, a, harness.ConsulRunArgs(a, lock...)...),
		b: harness.StartRun(t, client2, b, harness.ConsulRunArgs(b, lock...)...),
	}
}

// TestRunConsulLock: two bridges on one LAN with --consul-lock, both talking
// to one agent: exactly one registration per server, all from the holder,
// and stable; kill -9 of the holder and the other takes over within the
// lock's session invalidation (up to 2 x the 10s session TTL) plus margin.
func TestRunConsulLock(t *testing.T) {
	t.Parallel()
	l, ids, bridges := startLockPair(t, "lock")
	c := l.Consul

	holderOf := func() (string, string) {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil {
			return "", err.Error()
		}
		if have := harness.Keys(m); !slices.Equal(have, ids) {
			return "", fmt.Sprintf("catalog %v", have)
		}
		owner := m[ids[0]].ServiceMeta["bridge-id"]
		for _, id := range ids {
			if o := m[id].ServiceMeta["bridge-id"]; o != owner {
				return "", fmt.Sprintf("%s owned by %q, %s by %q", ids[0], owner, id, o)
			}
		}
		return owner, ""
	}
	var holder string
	harness.Wait(t, 30*time.Second, "servers registered by one lock holder", func() (bool, string) {
		h, detail := holderOf()
		holder = h
		return h != "", detail
	})
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
	// Stable: the follower does not register or rewrite anything.
	for range 4 {
		time.Sleep(time.Second)
		if h, detail := holderOf(); h != holder {
			t.Fatalf("holder %q, then %q: %s", holder, h, detail)
		}
	}
	harness.WaitCatalog(t, c, harness.BridgeService, 5*time.Second, harness.BridgeService+"-lock-a", harness.BridgeService+"-lock-b")
	other := "lock-a"
	if holder == "lock-a" {
		other = "lock-b"
	}
	t.Logf("lock holder %s; killing it", holder)

	bridges[holder].Kill9(t)
	killed := time.Now()
	const within = 2*10*time.Second + 10*time.Second
	var took time.Duration
	func() {
		// Wait longer than the bound to report how long a takeover really takes.
		deadline := killed.Add(90 * time.Second)
		for time.Now().Before(deadline) {
			if h, _ := holderOf(); h == other {
				took = time.Since(killed)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	switch {
	case took == 0:
		_, detail := holderOf()
		t.Fatalf("%s did not take over within 90s of kill -9 of %s: %s", other, holder, detail)
	case took > within:
		t.Errorf("%s took over %s after kill -9 of the holder; want within twice the lock session TTL (2 x 10s, Consul's invalidation bound) + 10s", other, took.Round(100*time.Millisecond))
	default:
		t.Logf("%s took over %s after kill -9 of the holder", other, took.Round(100*time.Millisecond))
	}
	harness.WantPassing(t, c, "django", 20*time.Second, ids...)
}

// TestRunConsulOnceDryRun: `run --once` exits 0 with servers and 1 without;
// `run --once --dry-run --sink consul` exits 3 while Consul lacks the
// servers (op add), 0 after a real run registered them (op noop), and 3
// again with a remove when a server is gone.
func TestRunConsulOnceDryRun(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 2, true)
	c := l.Consul
	s1 := harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	s2 := harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	once := func(extra ...string) []string {
		return append([]string{"run", "--once", "--timeout", "0.5", "--metrics-addr", ""}, extra...)
	}
	consul := []string{"--sink", "consul", "--consul-addr", harness.ConsulAddr, "--bridge-id", "once"}
	dry := func(wantExit int, want map[string]string) {
		t.Helper()
		r := harness.RunCmd(t, l.Client, once(append([]string{"--dry-run"}, consul...)...)...)
		if r.ExitCode != wantExit {
			t.Fatalf("run --once --dry-run --sink consul: exit %d, want %d\nstdout: %s\nstderr: %s", r.ExitCode, wantExit, r.Stdout, harness.Tail(r.Stderr, 40))
		}
		got := map[string]string{}
		for line := range strings.Lines(r.Stdout) {
			var op struct {
				Op            string `json:"op"`
				IP            string `json:"ip"`
				Port          int    `json:"port"`
				SourceAddress string `json:"source_address"`
				Interface     string `json:"interface"`
				Round         uint64 `json:"round"`
				Sink          string `json:"sink"`
			}
			if err := json.Unmarshal([]byte(line), &op); err != nil {
				t.Fatalf("dry-run line %q is not JSON: %v", line, err)
			}
			if op.Sink != "consul" || op.Interface == "" || op.SourceAddress == "" || op.Round == 0 {
				t.Errorf("dry-run line lacks sink/interface/source_address/round: %s", line)
			}
			got[fmt.Sprintf("%s:%d", op.IP, op.Port)] = op.Op
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("dry-run ops = %v, want %v\nstdout: %s", got, want, r.Stdout)
		}
	}

	t.Run("once stdout with servers exits 0", func(t *testing.T) {
		r := harness.RunCmd(t, l.Client, once("--sink", "stdout")...)
		if r.ExitCode != 0 || strings.Count(r.Stdout, `"event":"added"`) != 2 {
			t.Errorf("run --once --sink stdout: exit %d, want 0 and 2 added lines\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, harness.Tail(r.Stderr, 20))
		}
	})
	t.Run("dry-run against empty Consul exits 3", func(t *testing.T) {
		dry(3, map[string]string{"10.213.1.11:8000": "add", "10.213.1.12:8000": "add"})
		if m, _, err := harness.Catalog(t, c, "django"); err != nil || len(m) != 0 {
			t.Errorf("dry-run registered %v (%v)", harness.Keys(m), err)
		}
	})
	t.Run("once consul registers and exits 0", func(t *testing.T) {
		r := harness.RunCmd(t, l.Client, once(consul...)...)
		if r.ExitCode != 0 {
			t.Fatalf("run --once --sink consul: exit %d\nstderr: %s", r.ExitCode, harness.Tail(r.Stderr, 40))
		}
		harness.WaitCatalog(t, c, "django", 5*time.Second, "django-10.213.1.11-8000", "django-10.213.1.12-8000")
	})
	t.Run("dry-run after the real run exits 0", func(t *testing.T) {
		dry(0, map[string]string{"10.213.1.11:8000": "noop", "10.213.1.12:8000": "noop"})
	})
	t.Run("dry-run with a server gone exits 3", func(t *testing.T) {
		harness.StopResponder(t, s2)
		dry(3, map[string]string{"10.213.1.11:8000": "noop", "10.213.1.12:8000": "remove"})
	})
	t.Run("once without servers exits 1", func(t *testing.T) {
		harness.StopResponder(t, s1)
		r := harness.RunCmd(t, l.Client, once("--sink", "stdout")...)
		if r.ExitCode != 1 || strings.TrimSpace(r.Stdout) != "" {
			t.Errorf("run --once with no server: exit %d, want 1 and no output\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, harness.Tail(r.Stderr, 20))
		}
	})
}

// TestRunConsulLockNoGap: two bridges with --consul-lock on one agent, the
// holder killed with kill -9. A poller reads the service's passing
// instances every 200 ms from the kill until the standby holds the lock and
// 5 s more: the count never drops to 0, because with a lock the heartbeat
// TTL (2 x 10s session + 5s lock wait + 2 x interval + timeout = 27.5 s
// here) outlasts the takeover.
func TestRunConsulLockNoGap(t *testing.T) {
	t.Parallel()
	l, ids, bridges := startLockPair(t, "gap")
	c := l.Consul
	owner := func() string {
		m, _, err := harness.Catalog(t, c, "django")
		if err != nil || len(m) != len(ids) {
			return ""
		}
		return m[ids[0]].ServiceMeta["bridge-id"]
	}
	var holder string
	harness.Wait(t, 30*time.Second, "servers registered by one lock holder", func() (bool, string) {
		holder = owner()
		return holder != "", ""
	})
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
	if ttl, err := bridgeTTL(c, holder); err != nil || ttl != api.HealthPassing {
		t.Fatalf("holder %s heartbeat %q, %v", holder, ttl, err)
	}
	other := "gap-a"
	if holder == "gap-a" {
		other = "gap-b"
	}
	bridges[holder].Kill9(t)
	killed := time.Now()
	minPassing, polls := len(ids), 0
	var took, zeroAt time.Duration
	for time.Since(killed) < 90*time.Second {
		entries, _, err := c.Health().Service("django", "", true, nil)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		polls++
		if len(entries) < minPassing {
			minPassing = len(entries)
			if minPassing == 0 && zeroAt == 0 {
				zeroAt = time.Since(killed)
			}
		}
		if took == 0 && owner() == other {
			took = time.Since(killed)
		}
		if took > 0 && time.Since(killed) > took+5*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("kill -9 of holder %s: %s took over after %s; %d polls every 200 ms, fewest passing %d",
		holder, other, took.Round(100*time.Millisecond), polls, minPassing)
	if took == 0 {
		t.Fatalf("%s did not take over within 90 s", other)
	}
	if minPassing == 0 {
		t.Errorf("no passing instance at %s after the kill (standby took over at %s)", zeroAt.Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	}
	harness.WantPassing(t, c, "django", 10*time.Second, ids...)
}
