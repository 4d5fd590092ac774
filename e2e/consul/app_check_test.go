package consul_test

// End-to-end tests of app checks (issue 29, "ready means it serves"). Real
// HTTP(S) apps (internal/appserver) listen inside the namespace hosts of
// `bridge respond` servers, on the port the responder announces, and the
// test flips their health: serving, 503, hung, refused. The real bridge
// binary checks them, and the tests read what the sinks say: Consul's
// ?passing answer (catalog mode on a three-server cluster with ACLs on and
// a token of the documented policy; agent mode on a dev agent with ACLs) and
// the bridge's http_sd list. Every bound is derived from the check's
// settings with a margin, and every wait polls a condition.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// appReason is what the output of a failing check names, by the app's
// mode.
var appReason = map[appserver.Mode]string{
	appserver.Unavailable: "503",
	appserver.Hung:        "timeout",
	appserver.Refused:     "refused",
}

// startAppServers starts n apps on segment seg of the catalog lab, each with a
// responder announcing it, and returns them with their service IDs.
func startAppServers(l *catalogh.Lab, seg string, n int, o appserver.Options) ([]*appserver.Server, []string) {
	l.T.Helper()
	var apps []*appserver.Server
	var ids []string
	for i := range n {
		h, ip := l.ServerHost(seg, i)
		o.NS, o.Addr = h.NS, fmt.Sprintf("%s:%d", ip, harness.AppPort)
		apps = append(apps, appserver.Start(l.T, o))
		harness.Respond(l.T, h, 1, "--ip", ip)
		ids = append(ids, harness.ServerID(catalogh.Service, ip, harness.AppPort))
	}
	return apps, ids
}

// appCheck returns the bridge-owned app check of instance id (its ID ends
// in ":app"), or nil.
func appCheck(c *api.Client, id string) (*api.HealthCheck, error) {
	entries, _, err := c.Health().Service(catalogh.Service, "", false, &api.QueryOptions{Filter: fmt.Sprintf("Service.ID == %q", id)})
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		for _, ch := range e.Checks {
			if strings.HasSuffix(ch.CheckID, ":app") {
				return ch, nil
			}
		}
	}
	return nil, nil
}

// appWatch polls cond every 200 ms in the background until the returned
// stop is called, which returns the details of the polls where cond did
// not hold (at most 10).
func appWatch(cond func() (bool, string)) (stop func() []string) {
	done := make(chan struct{})
	var (
		mu    sync.Mutex
		fails []string
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			if ok, detail := cond(); !ok {
				mu.Lock()
				if len(fails) < 10 {
					fails = append(fails, time.Now().Format("15:04:05.000")+" "+detail)
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return func() []string {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return fails
	}
}

// appStatusWatch follows the service's health query with blocking queries
// until stop, and returns the distinct statuses instance id went through
// (its worst check; "" while absent) and how often the query's index
// moved.
func appStatusWatch(c *api.Client, id string) (stop func() (statuses []string, moves int)) {
	done := make(chan struct{})
	var (
		wg       sync.WaitGroup
		statuses []string
		moves    int
	)
	var idx uint64
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			entries, meta, err := c.Health().Service(catalogh.Service, "", false, &api.QueryOptions{WaitIndex: idx, WaitTime: time.Second})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if idx != 0 && meta.LastIndex != idx {
				moves++
			}
			idx = meta.LastIndex
			st := ""
			for _, e := range entries {
				if e.Service.ID == id {
					st = e.Checks.AggregatedStatus()
				}
			}
			if len(statuses) == 0 || statuses[len(statuses)-1] != st {
				statuses = append(statuses, st)
			}
		}
	})
	return func() ([]string, int) {
		close(done)
		wg.Wait()
		return statuses, moves
	}
}

// TestAppCheckCatalog: catalog mode on a three-server cluster with ACLs on
// (default deny) and a bridge with a token of the documented catalog-mode
// policy; two apps, s0 flipped, s1 serving throughout. When s0's app
// answers 503, hangs, or refuses connections, s0 leaves Consul's ?passing
// answer and the bridge's http_sd within fall checks and the write, after
// at least fall failed requests, and stays in the catalog, critical, its
// app check's output naming why; it comes back after rise checks. Quiet
// rounds with checks running move no index; an app that flaps faster than
// the hysteresis (every other check fails) moves none either, whether it
// was ready or failing.
func TestAppCheckCatalog(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	apps, ids := startAppServers(l, "a", 2, appserver.Options{})
	tok := catalogh.WriteTokenFile(t, catalogh.ACLToken(t, l.Consul, "bridge-catalog", harness.DocsPolicy(t, "catalog mode")))
	l.Bridge("a1", append([]string{"--consul-token-file", tok, "--prometheus-sd"}, harness.AppCheckFlags...)...)
	ns := l.Hosts["a1"].NS
	targets := []string{apps[0].Addr().String(), apps[1].Addr().String()}
	took := l.WaitCatalog(60*time.Second, "both servers passing", catalogh.All("passing", ids))
	t.Logf("MEASURED: 2 servers passing %s after the bridge started (servers of its first round: on their first passing check)", took.Round(100*time.Millisecond))
	// state reads whether s0 is ?passing and an http_sd target, and the
	// health index.
	state := func() (passing, listed bool, idx uint64, detail string, err error) {
		p, err := catalogh.Passing(l.Consul)
		if err != nil {
			return false, false, 0, "", err
		}
		sd, err := harness.SDTargets(ns, harness.MetricsAddr)
		if err != nil {
			return false, false, 0, "", err
		}
		_, _, idx, err = catalogh.Entries(t, l.Consul)
		_, listed = sd[targets[0]]
		return p[ids[0]], listed, idx, fmt.Sprint("passing ", harness.Keys(p), "; http_sd ", harness.Keys(sd), "; health index ", idx), err
	}
	inSD := func(target string) (bool, string) {
		sd, err := harness.SDTargets(ns, harness.MetricsAddr)
		_, ok := sd[target]
		return err == nil && ok, fmt.Sprint("http_sd ", harness.Keys(sd), " ", err)
	}
	harness.Wait(t, 10*time.Second, "both servers in http_sd", func() (bool, string) {
		ok0, d := inSD(targets[0])
		ok1, _ := inSD(targets[1])
		return ok0 && ok1, d
	})
	for i, id := range ids {
		ch, err := appCheck(l.Consul, id)
		if err != nil || ch == nil || ch.Status != api.HealthPassing || !strings.Contains(ch.Output, "HTTP GET "+harness.AppPath) {
			t.Errorf("%s (%s): app check %+v (%v), want passing with an output naming HTTP GET %s", id, targets[i], ch, err, harness.AppPath)
		}
	}

	// s1 is ready throughout, in Consul and in http_sd.
	stopControl := appWatch(func() (bool, string) {
		p, err := catalogh.Passing(l.Consul)
		if err != nil {
			return true, "" // a failed read says nothing about s1
		}
		ok, d := inSD(targets[1])
		return p[ids[1]] && ok, fmt.Sprint("passing ", harness.Keys(p), "; ", d)
	})

	t.Run("quiet rounds with checks running move no index", func(t *testing.T) {
		idx := l.Settled(30*time.Second, "health", l.HealthIndex)
		req0 := apps[0].Requests() + apps[1].Requests()
		kv0 := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", "a1")
		wr0 := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a1")
		const window = 6 * harness.AppInterval
		harness.AppSteady(t, window, "quiet rounds", func() (bool, string, error) {
			_, _, now, err := catalogh.Entries(t, l.Consul)
			return now == idx, fmt.Sprintf("health index %d -> %d", idx, now), err
		})
		checks := apps[0].Requests() + apps[1].Requests() - req0
		if checks < 2*(int(window/harness.AppInterval)-2) {
			t.Errorf("%d checks of 2 apps in %s at an interval of %s: the checks did not run", checks, window, harness.AppInterval)
		}
		kv := l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", "a1") - kv0
		wr := l.MetricSum("udp_discovery_bridge_consul_catalog_writes_total", "a1") - wr0
		if kv != 0 || wr != 0 {
			t.Errorf("quiet rounds with checks running: %v KV writes, %v catalog writes, want none", kv, wr)
		}
		t.Logf("MEASURED: %s of quiet rounds, %d app checks: health index %d unchanged, no KV or catalog write", window, checks, idx)
	})

	for _, mode := range []appserver.Mode{appserver.Unavailable, appserver.Hung, appserver.Refused} {
		t.Run(mode.String(), func(t *testing.T) {
			app := apps[0]
			req := app.Requests()
			flipped := time.Now()
			app.Set(mode)
			tConsul := harness.Wait(t, harness.AppBound(harness.AppFall), "s0 out of ?passing", func() (bool, string) {
				p, err := catalogh.Passing(l.Consul)
				return err == nil && !p[ids[0]], fmt.Sprint("passing ", harness.Keys(p), " ", err)
			})
			harness.Wait(t, harness.AppBound(harness.AppFall)-tConsul, "s0 out of http_sd", func() (bool, string) {
				ok, d := inSD(targets[0])
				return !ok, d
			})
			tSD := time.Since(flipped)
			failed := app.Requests() - req
			if mode != appserver.Refused && failed < harness.AppFall {
				t.Errorf("s0 left ?passing after %d requests to its app, want at least fall = %d", failed, harness.AppFall)
			}
			// Kept, not ready: still in the catalog, critical, saying why.
			l.WaitCatalog(harness.AppWrite, "s0 critical, s1 passing", map[string]string{ids[0]: api.HealthCritical, ids[1]: api.HealthPassing})
			ch, err := appCheck(l.Consul, ids[0])
			if err != nil || ch == nil || ch.Status != api.HealthCritical || !strings.Contains(ch.Output, appReason[mode]) {
				t.Errorf("s0's app check while %s: %+v (%v), want critical with an output naming %q", mode, ch, err, appReason[mode])
			} else {
				t.Logf("s0's app check while %s: %s %q", mode, ch.Status, ch.Output)
			}
			t.Logf("MEASURED: app %s: s0 out of ?passing %s and out of http_sd %s after the flip (fall %d × interval %s, timeout %s; bound %s)",
				mode, tConsul.Round(100*time.Millisecond), tSD.Round(100*time.Millisecond), harness.AppFall, harness.AppInterval, harness.AppTimeout, harness.AppBound(harness.AppFall))

			req = app.Requests()
			restored := time.Now()
			app.Set(appserver.Serving)
			harness.Wait(t, harness.AppBound(harness.AppRise), "s0 passing again, in ?passing and http_sd", func() (bool, string) {
				p, err := catalogh.Passing(l.Consul)
				ok, d := inSD(targets[0])
				return err == nil && p[ids[0]] && ok, fmt.Sprint("passing ", harness.Keys(p), " ", err, "; ", d)
			})
			if n := app.Requests() - req; n < harness.AppRise {
				t.Errorf("s0 passing again after %d requests to its app, want at least rise = %d", n, harness.AppRise)
			}
			t.Logf("MEASURED: app serving again: s0 back in ?passing and http_sd %s after (rise %d; bound %s)",
				time.Since(restored).Round(100*time.Millisecond), harness.AppRise, harness.AppBound(harness.AppRise))
		})
	}

	t.Run("an app flapping faster than the hysteresis flaps no sink", func(t *testing.T) {
		app := apps[0]
		// Ready, then every other check fails: never fall failures in a
		// row.
		idx := l.Settled(30*time.Second, "health", l.HealthIndex)
		req := app.Requests()
		window := 10 * harness.AppInterval
		app.Cycle(appserver.Unavailable, appserver.Serving)
		polls := harness.AppSteady(t, window, "a ready server whose app fails every other check", func() (bool, string, error) {
			passing, listed, now, detail, err := state()
			return passing && listed && now == idx, detail, err
		})
		if n := app.Requests() - req; n < int(window/(harness.AppInterval+harness.AppTimeout)) {
			t.Errorf("%d checks of the flapping app in %s: too few to prove anything", n, window)
		}
		t.Logf("MEASURED: ready, app failing every other check: %d checks over %s, %d polls: s0 passing and in http_sd throughout, health index %d unchanged",
			app.Requests()-req, window, polls, idx)

		// Failing, then every other check passes: never rise passes in a
		// row.
		app.Set(appserver.Unavailable)
		harness.Wait(t, harness.AppBound(harness.AppFall), "s0 out of ?passing", func() (bool, string) {
			p, err := catalogh.Passing(l.Consul)
			return err == nil && !p[ids[0]], fmt.Sprint("passing ", harness.Keys(p), " ", err)
		})
		idx = l.Settled(30*time.Second, "health", l.HealthIndex)
		req = app.Requests()
		app.Cycle(appserver.Serving, appserver.Unavailable)
		polls = harness.AppSteady(t, window, "a failing server whose app passes every other check", func() (bool, string, error) {
			passing, listed, now, detail, err := state()
			return !passing && !listed && now == idx, detail, err
		})
		if n := app.Requests() - req; n < int(window/(harness.AppInterval+harness.AppTimeout)) {
			t.Errorf("%d checks of the flapping app in %s: too few to prove anything", n, window)
		}
		t.Logf("MEASURED: failing, app passing every other check: %d checks over %s, %d polls: s0 out of ?passing and http_sd throughout, health index %d unchanged",
			app.Requests()-req, window, polls, idx)
		app.Set(appserver.Serving)
		harness.Wait(t, harness.AppBound(harness.AppRise), "s0 passing again", func() (bool, string) {
			p, err := catalogh.Passing(l.Consul)
			return err == nil && p[ids[0]], fmt.Sprint("passing ", harness.Keys(p), " ", err)
		})
	})
	if fails := stopControl(); len(fails) > 0 {
		t.Errorf("s1, whose app served throughout, was not ready in every sink: %v", fails)
	}
}

// iptablesDrop adds a rule to h's OUTPUT chain that drops TCP to dst (its
// namespace's own firewall), and returns a function that reads how many
// packets it dropped. unblock deletes it.
func iptablesDrop(t *testing.T, ipt string, h *netns.Host, dst netip.AddrPort) (dropped func() int, unblock func()) {
	t.Helper()
	rule := []string{"OUTPUT", "-p", "tcp", "-d", dst.Addr().String(), "--dport", strconv.Itoa(int(dst.Port())), "-j", "DROP"}
	if r := h.Run(t.Context(), append([]string{ipt, "-w", "-I"}, rule...)...); r.Err != nil {
		t.Fatalf("iptables -I %v in %s: %v %s", rule, h.Name, r.Err, r.Stderr)
	}
	dropped = func() int {
		t.Helper()
		r := h.Run(t.Context(), ipt, "-w", "-L", "OUTPUT", "-v", "-x", "-n")
		if r.Err != nil {
			t.Fatalf("iptables -L in %s: %v %s", h.Name, r.Err, r.Stderr)
		}
		for line := range strings.Lines(r.Stdout) {
			f := strings.Fields(line)
			if len(f) > 2 && f[2] == "DROP" && strings.Contains(line, dst.Addr().String()) {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
		return 0
	}
	unblock = func() {
		t.Helper()
		if r := h.Run(t.Context(), append([]string{ipt, "-w", "-D"}, rule...)...); r.Err != nil {
			t.Fatalf("iptables -D %v in %s: %v %s", rule, h.Name, r.Err, r.Stderr)
		}
	}
	return dropped, unblock
}

// TestAppCheckCatalogFleet: two catalog-mode bridges of one segment check
// the same app (three Consul servers, ACLs on, the documented policy). A
// firewall rule in one bridge's namespace drops its packets to the app's
// port: that bridge's check fails, and it publishes its verdict once (one
// KV write), while the server stays passing and the service's health
// index does not move: the other bridge's check passes. Then a rule
// blocks the other bridge too: the server turns critical once (one status
// change, one move of the index). Without the rules it is passing again
// after rise.
func TestAppCheckCatalogFleet(t *testing.T) {
	netns.Require(t)
	ipt := netns.RequireTool(t, "iptables")
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	apps, ids := startAppServers(l, "a", 1, appserver.Options{})
	app, id := apps[0], ids[0]
	tok := catalogh.WriteTokenFile(t, catalogh.ACLToken(t, l.Consul, "bridge-catalog", harness.DocsPolicy(t, "catalog mode")))
	names := []string{"a1", "a2"}
	for _, n := range names {
		l.Bridge(n, append([]string{"--consul-token-file", tok}, harness.AppCheckFlags...)...)
	}
	took := l.WaitCatalog(60*time.Second, "the server passing", catalogh.All("passing", ids))
	t.Logf("MEASURED: the server passing %s after two bridges started", took.Round(100*time.Millisecond))
	// obsIndex is the highest ModifyIndex of bridge name's observation
	// keys (<prefix>/obs/<bridge-id>/<chunk>); 0 when it has none.
	obsIndex := func(name string) uint64 {
		var idx uint64
		for k, v := range l.ObsIndexes() {
			if strings.Contains(k, "/obs/"+name+"/") {
				idx = max(idx, v)
			}
		}
		return idx
	}
	harness.Wait(t, 20*time.Second, "both bridges' observations", func() (bool, string) {
		return obsIndex("a1") != 0 && obsIndex("a2") != 0, fmt.Sprint(l.ObsIndexes())
	})
	idx := l.Settled(30*time.Second, "health", l.HealthIndex)
	kvWrites := func(name string) float64 {
		return l.MetricSum("udp_discovery_bridge_consul_catalog_kv_writes_total", name)
	}

	// a2 cannot reach the app.
	a2IP := l.Hosts["a2"].IP(l.Seg["a"])
	kv1, kv2 := kvWrites("a1"), kvWrites("a2")
	obs1 := obsIndex("a1")
	dropped2, unblock2 := iptablesDrop(t, ipt, l.Hosts["a2"], app.Addr())
	blocked := time.Now()
	harness.Wait(t, harness.AppBound(harness.AppFall), "a2 publishes its failing verdict", func() (bool, string) {
		return kvWrites("a2") > kv2, fmt.Sprintf("a2's KV writes %v, %v before", kvWrites("a2"), kv2)
	})
	t.Logf("MEASURED: a2, blocked, published its failing verdict %s after the rule", time.Since(blocked).Round(100*time.Millisecond))
	reqFromA2 := app.RequestsFrom(a2IP)
	window := time.Duration(harness.AppFall+2) * (harness.AppInterval + harness.AppTimeout)
	harness.AppSteady(t, window, "the server passing while only a2 is blocked", func() (bool, string, error) {
		st, _, now, err := catalogh.Entries(t, l.Consul)
		return st[id] == api.HealthPassing && now == idx, fmt.Sprintf("%v; health index %d -> %d", st, idx, now), err
	})
	if n := dropped2(); n == 0 {
		t.Errorf("the rule in a2's namespace dropped nothing: a2 did not try to check the app")
	}
	if n := app.RequestsFrom(a2IP) - reqFromA2; n > 0 {
		t.Errorf("%d requests from a2 reached the app through the rule", n)
	}
	if d1, d2 := kvWrites("a1")-kv1, kvWrites("a2")-kv2; d1 != 0 || d2 != 1 {
		t.Errorf("KV writes while a2 is blocked: a1 %v, a2 %v; want 0 and 1 (a2's verdict, published once)", d1, d2)
	}
	if now := obsIndex("a1"); now != obs1 {
		t.Errorf("a1's observation moved (%d -> %d) though its verdict did not change", obs1, now)
	}
	t.Logf("MEASURED: a2 blocked (%d packets dropped): the server passing and the health index unchanged over %s", dropped2(), window)

	// Both blocked: critical, once.
	stopStatus := appStatusWatch(l.Consul, id)
	dropped1, unblock1 := iptablesDrop(t, ipt, l.Hosts["a1"], app.Addr())
	took = harness.Wait(t, harness.AppBound(harness.AppFall), "the server out of ?passing", func() (bool, string) {
		p, err := catalogh.Passing(l.Consul)
		return err == nil && !p[id], fmt.Sprint("passing ", harness.Keys(p), " ", err)
	})
	l.WaitCatalog(harness.AppWrite, "the server critical", map[string]string{id: api.HealthCritical})
	harness.AppSteady(t, window, "the server critical while both bridges are blocked", func() (bool, string, error) {
		st, _, _, err := catalogh.Entries(t, l.Consul)
		return st[id] == api.HealthCritical, fmt.Sprint(st), err
	})
	statuses, moves := stopStatus()
	if !slices.Equal(statuses, []string{api.HealthPassing, api.HealthCritical}) || moves != 1 {
		t.Errorf("with both bridges blocked the server went through %v with %d moves of the health index; want passing, critical and 1", statuses, moves)
	}
	if dropped1() == 0 {
		t.Errorf("the rule in a1's namespace dropped nothing")
	}
	t.Logf("MEASURED: both bridges blocked: the server critical %s after the second rule, in one write (statuses %v, %d index move)",
		took.Round(100*time.Millisecond), statuses, moves)

	unblock1()
	unblock2()
	took = harness.Wait(t, harness.AppBound(harness.AppRise), "the server passing again", func() (bool, string) {
		p, err := catalogh.Passing(l.Consul)
		return err == nil && p[id], fmt.Sprint("passing ", harness.Keys(p), " ", err)
	})
	t.Logf("MEASURED: rules deleted: the server passing again %s later (rise %d)", took.Round(100*time.Millisecond), harness.AppRise)
}

// TestAppCheckConsulAgent: agent mode on a dev agent with ACLs on (default
// deny) and a bridge with a token of the documented agent-mode policy. Each
// server carries the bridge-owned app check <service id>:app; when s0's
// app answers 503 it leaves ?passing within fall checks and the write,
// stays registered with its check critical and naming the status, and
// comes back after rise; s1 stays passing; quiet rounds with checks
// running write nothing but the bridge's own heartbeat.
func TestAppCheckConsulAgent(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := harness.NewRunLAN(t, 2, false)
	l.Agent = consulagent.Start(t, consulagent.Options{Netns: l.Client.NS, BindAddr: harness.ClientIP, ACLToken: catalogh.ACLManagement})
	c := l.Agent.Client()
	var apps []*appserver.Server
	var ids []string
	for i, h := range l.Servers {
		ip := fmt.Sprintf("10.213.1.%d", 11+i)
		apps = append(apps, appserver.Start(t, appserver.Options{NS: h.NS, Addr: fmt.Sprintf("%s:%d", ip, harness.AppPort)}))
		harness.Respond(t, h, 1, "--ip", ip)
		ids = append(ids, harness.ServerID(catalogh.Service, ip, harness.AppPort))
	}
	tok := catalogh.ACLToken(t, c, "bridge-agent", harness.DocsPolicy(t, "agent mode"))
	harness.StartRun(t, l.Client, "app", harness.ConsulRunArgs("app", append([]string{"--consul-token-file", catalogh.WriteTokenFile(t, tok),
		"--metrics-addr", harness.MetricsAddr, "--log-format", "json"}, harness.AppCheckFlags...)...)...)
	took := harness.WantPassing(t, c, catalogh.Service, 40*time.Second, ids...)
	t.Logf("MEASURED: agent mode: 2 servers passing %s after start (servers of its first round: on their first passing check)", took.Round(100*time.Millisecond))
	checks, err := c.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		ch := checks[id+":app"]
		if ch == nil || ch.ServiceID != id || ch.Status != api.HealthPassing || !strings.Contains(ch.Output, "HTTP GET "+harness.AppPath) {
			t.Errorf("agent check %s:app = %+v, want passing, on service %s, with an output naming HTTP GET %s", id, ch, id, harness.AppPath)
		}
	}

	// Quiet rounds: the bridge's heartbeat is its only write.
	metric := func(name string) float64 {
		v, _, err := harness.Metric(l.Client.NS, name)
		if err != nil {
			t.Fatalf("metric %s: %v", name, err)
		}
		return v
	}
	const writes, rounds = `udp_discovery_bridge_sink_writes_total{sink="consul"}`, `udp_discovery_bridge_rounds_total{outcome="ok"}`
	w0, r0, q0 := metric(writes), metric(rounds), apps[0].Requests()+apps[1].Requests()
	window := 6 * harness.AppInterval
	harness.AppSteady(t, window, "quiet rounds, both passing", func() (bool, string, error) {
		st, err := harness.Health(c, catalogh.Service)
		return st[ids[0]] == api.HealthPassing && st[ids[1]] == api.HealthPassing, fmt.Sprint(st), err
	})
	w, r, q := metric(writes)-w0, metric(rounds)-r0, apps[0].Requests()+apps[1].Requests()-q0
	if q < 2*(int(window/harness.AppInterval)-2) {
		t.Errorf("%d app checks in %s: the checks did not run", q, window)
	}
	if w > r+1 {
		t.Errorf("quiet rounds with checks running: %v consul writes in %v rounds, want at most one a round (the heartbeat)", w, r)
	}
	t.Logf("MEASURED: agent mode, %s of quiet rounds: %d app checks, %v rounds, %v consul writes", window, q, r, w)

	req := apps[0].Requests()
	apps[0].Set(appserver.Unavailable)
	out := harness.Wait(t, harness.AppBound(harness.AppFall), "s0 out of ?passing", func() (bool, string) {
		p, err := catalogh.Passing(c)
		return err == nil && !p[ids[0]] && p[ids[1]], fmt.Sprint("passing ", harness.Keys(p), " ", err)
	})
	if n := apps[0].Requests() - req; n < harness.AppFall {
		t.Errorf("s0 left ?passing after %d requests to its app, want at least fall = %d", n, harness.AppFall)
	}
	harness.WaitCatalog(t, c, catalogh.Service, harness.AppWrite, ids...) // kept, not ready
	ch, err := appCheck(c, ids[0])
	if err != nil || ch == nil || ch.Status != api.HealthCritical || !strings.Contains(ch.Output, "503") {
		t.Errorf("s0's app check while its app answers 503: %+v (%v), want critical naming 503", ch, err)
	} else {
		t.Logf("s0's app check: %s %q", ch.Status, ch.Output)
	}
	t.Logf("MEASURED: agent mode, app 503: s0 out of ?passing %s after the flip (bound %s)", out.Round(100*time.Millisecond), harness.AppBound(harness.AppFall))

	apps[0].Set(appserver.Serving)
	back := harness.WantPassing(t, c, catalogh.Service, harness.AppBound(harness.AppRise), ids...)
	t.Logf("MEASURED: agent mode, app serving again: s0 passing %s later (rise %d; bound %s)", back.Round(100*time.Millisecond), harness.AppRise, harness.AppBound(harness.AppRise))
}

// TestAppCheckTLS: an https check with the test CA (app_check_ca_file)
// passes, and the server is an http_sd target. The same check without
// the CA, set through the environment (DISCOVERY_CLIENT_APP_CHECK...),
// never passes: the server is listed only with sd_targets all, with a
// __meta_udb_health other than ready, and `bridge doctor` gives a reason
// naming the certificate.
func TestAppCheckTLS(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	ca := appserver.NewCA(t)
	const ip, port = "10.213.1.11", 8443
	app := appserver.Start(t, appserver.Options{NS: l.Servers[0].NS, Addr: fmt.Sprintf("%s:%d", ip, port), CA: ca})
	// Two bridges (and doctor) probe from one address: over the
	// responder's default allowance per source (5 probes a second).
	harness.Respond(t, l.Servers[0], 1, "--ip", ip, "--app-port", strconv.Itoa(port), "--rate-limit", "0")
	target := app.Addr().String()
	caFile := ca.WriteFile(t)
	dev := l.Client.Dev(l.Br)
	https := func(flags []string) []string {
		f := slices.Clone(flags)
		f[slices.Index(f, "--app-check")+1] = "https"
		return f
	}
	const withCA, withoutCA = "127.0.0.1:9108", "127.0.0.1:9109"
	withCABridge := harness.StartRun(t, l.Client, "ca", append([]string{"--sink", "stdout", "--whitelist", dev, "--metrics-addr", withCA, "--prometheus-sd",
		"--app-check-ca-file", caFile}, append(https(harness.AppCheckFlags), harness.Fast...)...)...)
	env := []string{"DISCOVERY_CLIENT_APP_CHECK=https", "DISCOVERY_CLIENT_APP_CHECK_PATH=" + harness.AppPath,
		"DISCOVERY_CLIENT_APP_CHECK_INTERVAL=" + harness.AppInterval.String(), "DISCOVERY_CLIENT_APP_CHECK_TIMEOUT=" + harness.AppTimeout.String(),
		"DISCOVERY_CLIENT_APP_CHECK_RISE=" + strconv.Itoa(harness.AppRise), "DISCOVERY_CLIENT_APP_CHECK_FALL=" + strconv.Itoa(harness.AppFall),
		"DISCOVERY_CLIENT_APP_CHECK_JITTER=0"}
	withoutCABridge := harness.StartRunEnv(t, l.Client, "no-ca", env, append([]string{"--sink", "stdout", "--whitelist", dev, "--metrics-addr", withoutCA,
		"--prometheus-sd", "--sd-targets", "all"}, harness.Fast...)...)

	took := harness.Wait(t, 30*time.Second, "the https server an http_sd target of the bridge with the CA", func() (bool, string) {
		sd, err := harness.SDTargets(l.Client.NS, withCA)
		_, ok := sd[target]
		return err == nil && ok, fmt.Sprint(sd, err)
	})
	t.Logf("MEASURED: https check with the test CA: the server an http_sd target %s after start", took.Round(100*time.Millisecond))
	// The bridge without the CA lists it (sd_targets all) and never as
	// ready, over rise + fall more checks.
	harness.Wait(t, 10*time.Second, "the server listed by the bridge without the CA", func() (bool, string) {
		sd, err := harness.SDTargets(l.Client.NS, withoutCA)
		_, ok := sd[target]
		return err == nil && ok, fmt.Sprint(sd, err)
	})
	fails := app.HandshakeFailures()
	var health string
	harness.AppSteady(t, time.Duration(harness.AppRise+harness.AppFall)*(harness.AppInterval+harness.AppTimeout), "the server not ready without the CA", func() (bool, string, error) {
		sd, err := harness.SDTargets(l.Client.NS, withoutCA)
		if err != nil {
			return false, "", err
		}
		health = sd[target]["__meta_udb_health"]
		return health == "pending" || health == "failing", fmt.Sprint(sd), nil
	})
	if n := app.HandshakeFailures() - fails; n < harness.AppFall {
		t.Errorf("%d TLS handshakes failed at the app over rise + fall intervals: the bridge without the CA did not check it", n)
	}
	if app.Requests() == 0 {
		t.Errorf("the bridge with the CA sent no request")
	}
	t.Logf("MEASURED: https check without the CA: the server listed as %s (sd_targets all) throughout", health)

	// stdout: a line per transition, whose event is the new state.
	// A server of the first round is added once its first check is in
	// (ready at once when it passes: a restart is no news); one found
	// later is added pending and turns ready after rise.
	if ev := appStdoutEvents(t, withCABridge, ip); !slices.Equal(ev, []string{"added ready"}) && !slices.Equal(ev, []string{"added pending", "ready ready"}) {
		t.Errorf("stdout of the bridge with the CA: %q for %s, want added ready, or added pending then ready", ev, ip)
	}
	if ev := appStdoutEvents(t, withoutCABridge, ip); len(ev) == 0 || !strings.HasPrefix(ev[0], "added ") || slices.ContainsFunc(ev, func(e string) bool { return strings.HasSuffix(e, " ready") }) {
		t.Errorf("stdout of the bridge without the CA: %q for %s, want added and never ready", ev, ip)
	} else {
		t.Logf("stdout of the bridge without the CA: %q", ev)
	}

	// bridge doctor checks each server once and prints a line per server:
	// SERVER, RESULT (pass|fail), OUTPUT.
	doctor := func(extra ...string) (string, netns.Result) {
		r := harness.RunCmd(t, l.Client, append([]string{"doctor", "--whitelist", dev, "--timeout", "0.5",
			"--app-check", "https", "--app-check-path", harness.AppPath, "--app-check-timeout", harness.AppTimeout.String()}, extra...)...)
		for line := range strings.Lines(r.Stdout) {
			if strings.HasPrefix(line, target+" ") {
				return strings.Join(strings.Fields(line), " "), r
			}
		}
		return "", r
	}
	if line, r := doctor(); !strings.HasPrefix(line, target+" fail ") || !strings.Contains(line, "certificate") {
		t.Errorf("bridge doctor, https check without the CA: exit %d, line %q; want %s failing with a reason naming the certificate:\n%s\n%s",
			r.ExitCode, line, target, r.Stdout, r.Stderr)
	} else {
		t.Logf("bridge doctor without the CA: %s", line)
	}
	if line, r := doctor("--app-check-ca-file", caFile); !strings.HasPrefix(line, target+" pass ") {
		t.Errorf("bridge doctor, https check with the CA: exit %d, line %q; want %s passing:\n%s\n%s",
			r.ExitCode, line, target, r.Stdout, r.Stderr)
	} else {
		t.Logf("bridge doctor with the CA: %s", line)
	}
}

// appStdoutEvents returns the stdout sink's lines about ip, in order, as
// "event health" ("added pending", "ready ready"). (harness.StdoutEvents holds
// lines to the keys of a bridge without app checks; these carry health,
// check and health_since too.)
func appStdoutEvents(t *testing.T, b *harness.BridgeProc, ip string) []string {
	t.Helper()
	stdout, _ := b.Output()
	var out []string
	for line := range strings.Lines(stdout) {
		var e struct {
			Event  string `json:"event"`
			IP     string `json:"ip"`
			Health string `json:"health"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout of %s: %q: %v", b.Name, line, err)
		}
		if e.IP == ip {
			out = append(out, e.Event+" "+e.Health)
		}
	}
	return out
}
