package consul_test

// ACL end-to-end tests: the documented least-privilege policies, taken
// verbatim from docs/operations/acls.md, on default-deny Consul (a dev agent for agent
// mode, three servers for catalog mode), with the real bridge binary using a
// token of exactly that policy.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
)

// TestACLAgentPolicy: a bridge in agent mode with a token of exactly the
// documented agent-mode policy registers its servers, passing, on a
// default-deny agent.
func TestACLAgentPolicy(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := harness.NewRunLAN(t, 2, false)
	l.Agent = consulagent.Start(t, consulagent.Options{Netns: l.Client.NS, BindAddr: harness.ClientIP, ACLToken: catalogh.ACLManagement})
	c := l.Agent.Client()
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	rules := harness.DocsPolicy(t, "agent mode")
	tok := catalogh.ACLToken(t, c, "bridge-agent", rules)
	b := harness.StartRun(t, l.Client, "acl", harness.ConsulRunArgs("acl", "--consul-token-file", catalogh.WriteTokenFile(t, tok),
		"--metrics-addr", harness.MetricsAddr, "--log-format", "json")...)
	ids := []string{harness.ServerID(catalogh.Service, "10.213.1.11", 8000), harness.ServerID(catalogh.Service, "10.213.1.12", 8000)}
	took := harness.WantPassing(t, c, catalogh.Service, 30*time.Second, ids...)
	t.Logf("MEASURED: agent mode with the documented policy: 2 servers passing %s after start", took.Round(100*time.Millisecond))
	harness.Wait(t, 10*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(l.Client.NS)
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	// bridge doctor: all allowed with the documented policy; without the
	// bridge's own service rule it names that rule.
	doctor := func(tok string) netns.Result {
		return harness.RunCmd(t, l.Client, "doctor", "--sink", "consul", "--consul-addr", harness.ConsulAddr, "--bridge-id", "acl",
			"--timeout", "0.5", "--consul-token-file", catalogh.WriteTokenFile(t, tok))
	}
	if res := doctor(tok); res.ExitCode != 0 || strings.Contains(res.Stdout, "REFUSED") || strings.Count(res.Stdout, "\nok ") != 2 {
		t.Errorf("doctor with the documented agent policy: exit %d:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	lacking := catalogh.ACLToken(t, c, "bridge-agent-lacking", `service "django" { policy = "write" }`)
	const want = `REFUSED register the bridge's own service (udp-discovery-bridge): add to the token's policy: service "udp-discovery-bridge" { policy = "write" }`
	if res := doctor(lacking); res.ExitCode != 4 || !strings.Contains(res.Stdout, want) {
		t.Errorf("doctor without the bridge service rule: exit %d, want 4 and %q:\n%s\n%s", res.ExitCode, want, res.Stdout, res.Stderr)
	}
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("bridge exit %d after SIGTERM", code)
	}
	harness.WaitCatalog(t, c, catalogh.Service, 10*time.Second)
	_, stderr := b.Output()
	if strings.Contains(stderr, tok) {
		t.Error("the bridge logged its token")
	}

	// A bridge whose token lacks the rule of its own service: /readyz
	// names the rule, sink errors are counted, nothing is registered.
	const rule = `service "udp-discovery-bridge" { policy = "write" }`
	b = harness.StartRun(t, l.Client, "acl-lacking", harness.ConsulRunArgs("acl", "--consul-token-file", catalogh.WriteTokenFile(t, lacking),
		"--metrics-addr", harness.MetricsAddr, "--log-format", "json")...)
	harness.Wait(t, 20*time.Second, "/readyz 503 naming "+rule, func() (bool, string) {
		code, reasons := readyzReasons(l.Client.NS)
		return code == 503 && strings.Contains(reasons, rule), fmt.Sprintf("%d %s", code, reasons)
	})
	harness.Wait(t, 10*time.Second, "sink errors counted", func() (bool, string) {
		v, _, err := harness.Metric(l.Client.NS, `udp_discovery_bridge_sink_errors_total{sink="consul"}`)
		return err == nil && v > 0, fmt.Sprintf("%v %v", v, err)
	})
	b.Sigterm(t, 10*time.Second)
}

// hasProbeCheck reports whether every entry of ids carries the consul-esm
// check.
func hasAppCheck(l *catalogh.Lab, ids []string, status, output string) (bool, string) {
	_, byID, _, err := catalogh.Entries(l.T, l.Consul)
	if err != nil {
		return false, err.Error()
	}
	for _, id := range ids {
		e := byID[id]
		if e == nil {
			return false, id + " missing"
		}
		found := false
		for _, chk := range e.Checks {
			found = found || (chk.CheckID == catalog.AppCheckID && chk.Status == status && strings.Contains(chk.Output, output))
		}
		if !found {
			return false, fmt.Sprintf("%s has no %s %s with %q: %v", id, status, catalog.AppCheckID, output, e.Checks)
		}
	}
	return true, ""
}

// TestACLCatalogPolicy: on a three-server default-deny cluster, a bridge
// with a token of exactly the documented catalog-mode policy registers its
// servers, passing; with the app check (the deprecated --consul-check)
// it writes each server's app check too.
func TestACLCatalogPolicy(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	ids := l.Servers("a", 2)
	rules := harness.DocsPolicy(t, "catalog mode")
	tok := catalogh.ACLToken(t, l.Consul, "bridge-catalog", rules)
	tokFile := catalogh.WriteTokenFile(t, tok)

	b := l.Bridge("a1", "--consul-token-file", tokFile)
	took := l.WaitCatalog(40*time.Second, "servers passing with the documented catalog policy", catalogh.All("passing", ids))
	t.Logf("MEASURED: catalog mode with the documented policy: 2 servers passing %s after start", took.Round(100*time.Millisecond))
	ns := l.Hosts["a1"].NS
	// bridge doctor with the full policy: every operation allowed, nothing
	// of others changed (its test server never reaches the catalog).
	idx := l.ServiceIndex()
	res := doctor(l, "a1", "--consul-token-file", tokFile)
	if res.ExitCode != 0 || strings.Contains(res.Stdout, "REFUSED") || strings.Contains(res.Stdout, "FAILED") {
		t.Errorf("doctor with the documented policy: exit %d:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if _, sinks, ok := strings.Cut(res.Stdout, "== sinks"); ok {
		t.Logf("doctor with the documented policy:\n== sinks%s", sinks)
	}
	if n := strings.Count(res.Stdout, "\nok "); n < 8 {
		t.Errorf("doctor: %d operations ok, want at least 8:\n%s", n, res.Stdout)
	}
	if now := l.ServiceIndex(); now != idx {
		t.Errorf("doctor moved the service's index %d -> %d", idx, now)
	}
	if svcs, _, err := l.Consul.Catalog().Service(catalogh.Service, "", nil); err != nil || len(svcs) != len(ids) {
		t.Errorf("after doctor the catalog holds %d instances (%v), want %d", len(svcs), err, len(ids))
	}
	if kv, _, err := l.Consul.KV().List("udp-discovery-bridge/django/doctor", nil); err != nil || len(kv) != 0 {
		t.Errorf("doctor left keys: %v %v", kv, err)
	}
	harness.Wait(t, 10*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(ns)
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})

	// Rotation as Vault Agent or a CSI driver does it: a new token renamed
	// over the file, the old one revoked. The bridge goes on with the new
	// token without a restart: its session is renewed, a new server is
	// registered, /readyz stays 200, no sink error.
	tok2 := catalogh.ACLToken(t, l.Consul, "bridge-catalog-rotated", rules)
	tmp := tokFile + ".new"
	if err := os.WriteFile(tmp, []byte(tok2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tokFile); err != nil {
		t.Fatal(err)
	}
	old, _, err := l.Consul.ACL().TokenReadSelf(&api.QueryOptions{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Consul.ACL().TokenDelete(old.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	const renewals = "udp_discovery_bridge_consul_catalog_session_renewals_total"
	errsBefore := l.MetricSum(`udp_discovery_bridge_sink_errors_total{sink="consul"}`, "a1")
	renewBefore := l.MetricSum(renewals, "a1")
	ids = append(ids, l.Shared())
	took = l.WaitCatalog(40*time.Second, "a new server registered with the rotated token", catalogh.All("passing", ids))
	t.Logf("MEASURED: token rotated and the old one revoked: a new server passing %s later", took.Round(100*time.Millisecond))
	harness.Wait(t, 30*time.Second, "two session renewals with the rotated token", func() (bool, string) {
		n := l.MetricSum(renewals, "a1")
		return n >= renewBefore+2, fmt.Sprintf("%v renewals, %v before", n, renewBefore)
	})
	if code, body := readyz(ns); code != 200 {
		t.Errorf("/readyz after rotation: %d %s", code, body)
	}
	if n := l.MetricSum(`udp_discovery_bridge_sink_errors_total{sink="consul"}`, "a1"); n != errsBefore {
		t.Errorf("sink errors after rotation %v, before %v", n, errsBefore)
	}
	b.Sigterm(t, 10*time.Second)
	_, stderr := b.Output()
	if strings.Contains(stderr, tok2) {
		t.Error("the bridge logged its rotated token")
	}

	// The same policy with the app check, turned on here through the
	// deprecated --consul-check tcp (read as app_check tcp): the leader
	// writes each server's app check. The lab's responders serve no TCP on
	// the port they announce, so every check turns critical (failing)
	// while the servers stay registered.
	b = l.Bridge("a1", "--consul-token-file", tokFile, "--consul-check", "tcp", "--app-check-interval", "1s", "--app-check-timeout", "0.5")
	took = harness.Wait(t, 40*time.Second, "every server's app check written, critical", func() (bool, string) {
		return hasAppCheck(l, ids, api.HealthCritical, "failing: TCP connect")
	})
	t.Logf("MEASURED: with the catalog policy, every server's app check written critical (no app listening) %s after the bridge started", took.Round(100*time.Millisecond))
	b.Sigterm(t, 10*time.Second)
	_, stderr = b.Output()
	if strings.Contains(stderr, tok) || strings.Contains(stderr, tok2) {
		t.Error("the bridge logged its token")
	}
	if !strings.Contains(stderr, "consul_check") || !strings.Contains(stderr, "app_check") {
		t.Errorf("no deprecation warning naming consul_check and app_check:\n%s", harness.Tail(stderr, 20))
	}

	// The same policy in the shared-node layout: the servers move to the
	// fleet's node, passing, their own nodes go (deregister-after 5s), and
	// doctor finds every operation of that layout allowed.
	delete(l.Bridges, "a1")
	b = l.Bridge("a1", "--consul-token-file", tokFile, "--consul-catalog-layout", "shared-node", "--consul-deregister-after", "5s")
	want := map[string]string{}
	for _, id := range ids {
		want["django-servers/"+id] = "passing"
	}
	harness.Wait(t, 40*time.Second, "the servers on the shared node only, with the documented policy", func() (bool, string) {
		got, err := catalogByNode(l.Consul)
		return err == nil && maps.Equal(got, want), fmt.Sprint(got, err)
	})
	res = doctor(l, "a1", "--consul-token-file", tokFile, "--consul-catalog-layout", "shared-node")
	if res.ExitCode != 0 || strings.Contains(res.Stdout, "REFUSED") || strings.Contains(res.Stdout, "FAILED") || !strings.Contains(res.Stdout, "django-servers") {
		t.Errorf("doctor, shared-node layout, with the documented policy: exit %d:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	b.Sigterm(t, 10*time.Second)
}

// catalogByNode is every instance of the service as "<node>/<service ID>"
// with its status.
func catalogByNode(c *api.Client) (map[string]string, error) {
	entries, _, err := c.Health().Service(catalogh.Service, "", false, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Node.Node+"/"+e.Service.ID] = e.Checks.AggregatedStatus()
	}
	return out, nil
}

// TestACLCatalogMissingRule: for each rule of the documented catalog-mode
// policy, a bridge whose token lacks only that rule logs the rule in HCL,
// fails /readyz naming it and counts sink errors (one cluster, a fresh
// token and bridge per rule).
func TestACLCatalogMissingRule(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	l.Servers("a", 1)
	rules := harness.PolicyRules(harness.DocsPolicy(t, "catalog mode"))
	if len(rules) < 5 {
		t.Fatalf("documented catalog policy has %d rules: %q", len(rules), rules)
	}
	for i, missing := range rules {
		t.Run(strings.Fields(missing)[0]+" "+strings.Fields(missing)[1], func(t *testing.T) {
			kept := append(append([]string{}, rules[:i]...), rules[i+1:]...)
			tok := catalogh.ACLToken(t, l.Consul, fmt.Sprintf("bridge-missing-%d", i), strings.Join(kept, "\n"))
			name := fmt.Sprintf("a%d", i+1)
			b := l.Bridge(name, "--consul-token-file", catalogh.WriteTokenFile(t, tok))
			t.Cleanup(func() {
				if !b.Exited() {
					b.Sigterm(t, 10*time.Second)
				}
				resetFleet(l)
			})
			ns := l.Hosts[name].NS
			took := harness.Wait(t, 30*time.Second, "/readyz 503 naming "+missing, func() (bool, string) {
				code, reasons := readyzReasons(ns)
				return code == 503 && strings.Contains(reasons, missing), fmt.Sprintf("%d %s", code, reasons)
			})
			harness.Wait(t, 10*time.Second, "sink errors counted", func() (bool, string) {
				v, _, err := harness.Metric(ns, `udp_discovery_bridge_sink_errors_total{sink="consul"}`)
				return err == nil && v > 0, fmt.Sprintf("%v %v", v, err)
			})
			_, reasons := readyzReasons(ns)
			t.Logf("MEASURED: without %s: /readyz 503 after %s: %s", missing, took.Round(100*time.Millisecond), reasons)
			b.Sigterm(t, 10*time.Second)

			// bridge doctor with the same settings names the rule.
			res := doctor(l, name, "--consul-token-file", catalogh.WriteTokenFile(t, tok))
			if res.ExitCode != 4 || !strings.Contains(res.Stdout, "REFUSED") || !strings.Contains(res.Stdout, missing) {
				t.Errorf("doctor without %s: exit %d, want 4 and a REFUSED line naming the rule:\n%s\n%s", missing, res.ExitCode, res.Stdout, res.Stderr)
			}
			for _, line := range strings.Split(res.Stdout, "\n") {
				if strings.HasPrefix(line, "REFUSED") || strings.HasPrefix(line, "FAILED") || strings.HasPrefix(line, "consul ") {
					t.Logf("doctor: %s", line)
				}
			}
			_, stderr := b.Output()
			var logged string
			for _, line := range strings.Split(stderr, "\n") {
				if (strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`)) &&
					strings.Contains(line, strings.ReplaceAll(missing, `"`, `\"`)) {
					logged = line
					break
				}
			}
			if logged == "" {
				t.Errorf("no warn/error log line names %s", missing)
			}
			if strings.Contains(stderr, tok) {
				t.Error("the bridge logged its token")
			}
		})
	}
}

// readyzReasons GETs /readyz in ns and returns its code and its reasons
// joined by newlines (the body when it is not JSON).
func readyzReasons(ns string) (int, string) {
	code, body := readyz(ns)
	var r struct{ Reasons []string }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return code, body
	}
	return code, strings.Join(r.Reasons, "\n")
}

// resetFleet deletes, with the management token, everything a fleet of
// the default prefix and service made: the servers' nodes, the fleet node
// (and so its sessions) and the KV prefix, so that the next case starts on
// an empty cluster.
func resetFleet(l *catalogh.Lab) {
	l.T.Helper()
	nodes, _, err := l.Consul.Catalog().Nodes(nil)
	if err != nil {
		l.T.Fatalf("list nodes: %v", err)
	}
	for _, n := range nodes {
		if strings.HasPrefix(n.Node, catalogh.Service+"-") || strings.HasPrefix(n.Node, "udp-discovery-bridge-") {
			if _, err := l.Consul.Catalog().Deregister(&api.CatalogDeregistration{Node: n.Node}, nil); err != nil {
				l.T.Fatalf("deregister node %s: %v", n.Node, err)
			}
		}
	}
	if _, err := l.Consul.KV().DeleteTree("udp-discovery-bridge/", nil); err != nil {
		l.T.Fatalf("delete the fleet's keys: %v", err)
	}
}

// doctor runs `bridge doctor` on bridge name's host with that bridge's
// settings (its whitelist pinned to its segment leg) plus extra.
func doctor(l *catalogh.Lab, name string, extra ...string) netns.Result {
	l.T.Helper()
	h := l.Hosts[name]
	seg := name[:1]
	args := []string{"doctor", "--sink", "consul", "--consul-mode", "catalog", "--consul-addr", l.ConsulAddrs,
		"--bridge-id", name, "--whitelist", h.Dev(l.Seg[seg]), "--timeout", "0.5"}
	return harness.RunCmd(l.T, h, append(args, extra...)...)
}

// TestACLAgentLockPolicy: agent mode with --consul-lock and a token of
// exactly the documented policy for it: the bridge takes the lock and
// registers its servers.
func TestACLAgentLockPolicy(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	l.Agent = consulagent.Start(t, consulagent.Options{Netns: l.Client.NS, BindAddr: harness.ClientIP, ACLToken: catalogh.ACLManagement})
	c := l.Agent.Client()
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	tok := catalogh.ACLToken(t, c, "bridge-agent-lock", harness.DocsPolicy(t, "agent mode with `--consul-lock`"))
	harness.StartRun(t, l.Client, "acl", harness.ConsulRunArgs("acl", "--consul-token-file", catalogh.WriteTokenFile(t, tok),
		"--consul-lock", "service/udp-discovery-bridge/lock", "--metrics-addr", harness.MetricsAddr, "--log-format", "json")...)
	took := harness.WantPassing(t, c, catalogh.Service, 40*time.Second, harness.ServerID(catalogh.Service, "10.213.1.11", 8000))
	t.Logf("MEASURED: agent mode with --consul-lock and the documented policy: the server passing %s after start", took.Round(100*time.Millisecond))
	if kv, _, err := c.KV().Get("service/udp-discovery-bridge/lock", nil); err != nil || kv == nil || kv.Session == "" {
		t.Errorf("lock key %+v (%v): want it held", kv, err)
	}
	harness.Wait(t, 10*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(l.Client.NS)
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
}
