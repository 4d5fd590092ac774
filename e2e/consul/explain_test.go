package consul_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/explain"
)

// TestExplainFleet: `bridge explain` against a running catalog fleet (two
// bridges, the ACL cluster, app checks, --debug-endpoint) names, for a
// ready server, both observers with their verdicts and the last check; for
// a failing one, the failing check; for servers whose removal the guard
// holds, the guard's episode; for an address no bridge holds (loopback,
// which admission refuses before any sink sees it), why. Its JSON is
// parsed and checked here, and its exit status says ready or not.
func TestExplainFleet(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	var apps []*appserver.Server
	var ips, ids []string
	for i := range 3 {
		h, ip := l.ServerHost("a", i)
		apps = append(apps, appserver.Start(t, appserver.Options{NS: h.NS, Addr: fmt.Sprintf("%s:%d", ip, harness.AppPort)}))
		harness.Respond(t, h, 1, "--ip", ip)
		ips, ids = append(ips, ip), append(ids, harness.ServerID(catalogh.Service, ip, harness.AppPort))
	}
	apps[1].Set(appserver.Unavailable)
	tok := catalogh.WriteTokenFile(t, catalogh.ACLToken(t, l.Consul, "bridge-catalog", harness.DocsPolicy(t, "catalog mode")))
	for _, n := range []string{"a1", "a2"} {
		l.Bridge(n, append([]string{"--consul-token-file", tok, "--debug-endpoint"}, harness.AppCheckFlags...)...)
	}
	l.WaitCatalog(60*time.Second, "s0 and s2 passing, s1 critical (503)",
		map[string]string{ids[0]: api.HealthPassing, ids[1]: api.HealthCritical, ids[2]: api.HealthPassing})

	ask := func(bridge, server string) (explain.Report, netns.Result) {
		t.Helper()
		res := harness.RunCmd(t, l.Hosts[bridge], "explain", "--metrics-addr", harness.MetricsAddr, "--json", server)
		var r explain.Report
		if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
			t.Fatalf("explain %s on %s: exit %d, not JSON (%v):\n%s\n%s", server, bridge, res.ExitCode, err, res.Stdout, res.Stderr)
		}
		return r, res
	}
	one := func(r explain.Report) explain.Server {
		t.Helper()
		if len(r.Servers) != 1 {
			t.Fatalf("explain %s: %d servers, want 1: %+v", r.Query, len(r.Servers), r)
		}
		return r.Servers[0]
	}

	// Both bridges publish their verdicts (a2 may start later than a1).
	harness.Wait(t, harness.AppBound(harness.AppFall)+10*time.Second, "both observers' verdicts on s0 (ready) and s1 (failing)", func() (bool, string) {
		r0, _ := ask("a1", ips[0])
		r1, _ := ask("a1", ips[1])
		if len(r0.Servers) != 1 || len(r1.Servers) != 1 {
			return false, fmt.Sprint(r0, r1)
		}
		o0, o1 := r0.Servers[0].Observers, r1.Servers[0].Observers
		return len(o0) == 2 && len(o1) == 2 && o0[0].Health == "ready" && o0[1].Health == "ready" &&
			o1[0].Health == "failing" && o1[1].Health == "failing", fmt.Sprintf("%+v %+v", o0, o1)
	})

	// A ready server: both observers, ready; the last check passed; the
	// sink wrote it.
	r, res := ask("a1", ips[0])
	s := one(r)
	if res.ExitCode != 0 || s.State != "ready" || !s.Ready || s.Check == nil || len(s.Check.History) == 0 || !s.Check.History[len(s.Check.History)-1].OK {
		t.Errorf("ready server: exit %d, %+v", res.ExitCode, s)
	}
	if len(s.Observers) != 2 || s.Observers[0].Bridge != "a1" || s.Observers[1].Bridge != "a2" || s.Observers[0].Health != "ready" || s.Observers[1].Health != "ready" {
		t.Errorf("ready server's observers: %+v (fleet error %q)", s.Observers, s.FleetErr)
	}
	if len(s.Sinks) != 1 || s.Sinks[0].Sink != "consul" || s.Sinks[0].State != "written" {
		t.Errorf("ready server's sinks: %+v", s.Sinks)
	}
	t.Logf("MEASURED: explain of a ready server:\n%s", res.Stdout)

	// A failing one: the failing check, named, and exit 1.
	r, res = ask("a2", ips[1])
	s = one(r)
	if res.ExitCode != 1 || s.State != "failing" || s.Ready || s.Check == nil || s.Check.State != "failing" || !strings.Contains(s.Check.Output, "503") || s.Check.Fails < harness.AppFall {
		t.Errorf("failing server: exit %d, %+v check %+v", res.ExitCode, s, s.Check)
	}
	for _, o := range s.Observers {
		if o.Health != "failing" || !strings.Contains(o.Output, "503") {
			t.Errorf("failing server's observer %+v, want failing with the 503", o)
		}
	}
	text := harness.RunCmd(t, l.Hosts["a2"], "explain", "--metrics-addr", harness.MetricsAddr, ips[1])
	if !strings.Contains(text.Stdout, "failing (not ready)") || !strings.Contains(text.Stdout, "503") || !strings.Contains(text.Stdout, "observed by 2 bridges") {
		t.Errorf("explain's text for the failing server:\n%s", text.Stdout)
	}

	// a1 stops hearing every server at once (one iptables rule in its
	// namespace drops the replies): more than max_removal_fraction of its
	// servers go unseen together, so its guard holds their removal (a2
	// still sees them: the catalog keeps them).
	ipt := netns.RequireTool(t, "iptables")
	rule := []string{"INPUT", "-p", "udp", "--sport", "9999", "-s", "10.213.31.0/24", "-j", "DROP"}
	if r := l.Hosts["a1"].Run(t.Context(), append([]string{ipt, "-w", "-I"}, rule...)...); r.Err != nil {
		t.Fatalf("iptables -I %v: %v %s", rule, r.Err, r.Stderr)
	}
	harness.Wait(t, 20*time.Second, "the removal guard holding s0 on a1", func() (bool, string) {
		r, _ := ask("a1", ips[0])
		if len(r.Servers) != 1 {
			return false, fmt.Sprint(r)
		}
		return r.Servers[0].Removal.HeldByGuard, fmt.Sprintf("%+v", r.Servers[0].Removal)
	})
	r, res = ask("a1", ips[2]+":8000")
	s = one(r)
	if s.State != "unobserved" || !s.Removal.HeldByGuard || s.Removal.GuardSince == 0 || !strings.Contains(s.Removal.Rule, "held by the removal guard") || s.Discovery.Misses < 3 {
		t.Errorf("held server: %+v", s)
	}
	// a1 no longer publishes a server its own guard holds (it stopped
	// hearing it): the fleet's leader judges the silence fleet-wide. Its
	// observation is rewritten after the round that held them.
	harness.Wait(t, 10*time.Second, "the held server observed by a2 only", func() (bool, string) {
		r, _ := ask("a1", ips[2]+":8000")
		if len(r.Servers) != 1 {
			return false, fmt.Sprint(r)
		}
		o := r.Servers[0].Observers
		return len(o) == 1 && o[0].Bridge == "a2", fmt.Sprintf("%+v", o)
	})
	t.Logf("MEASURED: explain of a server whose removal the guard holds: %s", s.Removal.Rule)

	// Loopback: admission refuses it before any sink; explain says no
	// bridge holds it and why that may be.
	r, res = ask("a1", "127.0.0.1")
	if res.ExitCode != 1 || len(r.Servers) != 0 || !strings.Contains(r.Note, "holds no server") || !strings.Contains(r.Note, "refused") {
		t.Errorf("loopback: exit %d, %+v", res.ExitCode, r)
	}
}
