package consul_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	bendpoint "github.com/udp-discovery-bridge/bridge/internal/endpoint"
	agentsink "github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
)

// appServers is a snapshot of the servers 10.213.0.<i+1>:8000 whose app
// checks say states[i] with outputs[i].
func appServers(round uint64, states []bendpoint.Health, outputs []string) bendpoint.Snapshot {
	s := consulServers(round, len(states))
	for i := range s.Endpoints {
		s.Endpoints[i].Check = bendpoint.Check{State: states[i], Output: outputs[i], Since: time.Now()}
	}
	return s
}

// passingIDs returns the IDs of the instances of service that
// /v1/health/service/<service>?passing returns, sorted, and the index.
func passingIDs(t testing.TB, c *api.Client, service string) ([]string, uint64) {
	t.Helper()
	entries, meta, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		t.Fatalf("health of %s: %v", service, err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	slices.Sort(ids)
	return ids, meta.LastIndex
}

// waitPassing waits until ?passing returns exactly want (sorted IDs).
func waitPassing(t testing.TB, c *api.Client, service string, want ...string) {
	t.Helper()
	slices.Sort(want)
	consulWaitFor(t, 30*time.Second, fmt.Sprintf("?passing = %v", want), func() (bool, string) {
		got, _ := passingIDs(t, c, service)
		return slices.Equal(got, want), fmt.Sprintf("?passing = %v", got)
	})
}

// policyToken creates a policy of rules and a token of it whose secret is
// secret (with the management client c): a dev agent forgets its ACL state
// when it restarts, and the same token must then exist again.
func policyToken(t testing.TB, c *api.Client, name, rules, secret string) {
	t.Helper()
	consulWaitFor(t, 30*time.Second, "the policy and token "+name, func() (bool, string) {
		pol, _, err := c.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
		if err != nil {
			return false, err.Error() // right after a start, ACLs may not be bootstrapped yet
		}
		_, _, err = c.ACL().TokenCreate(&api.ACLToken{SecretID: secret, Description: name, Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		if err != nil {
			t.Fatalf("create token of %s: %v", name, err)
		}
		return true, ""
	})
}

// TestConsulSinkAppCheck drives agent mode with app checks against a real
// agent with ACLs on (default deny) and a token of exactly the README's
// agent-mode policy: a server whose app check is pending or failing is
// left out of ?passing, a transition brings it back (or takes it out)
// with one check update, quiet rounds write no check and move no index,
// and the ten-year TTL the check carries is accepted and survives an agent
// restart (the agent restores the persisted state only while now + TTL is
// ahead).
func TestConsulSinkAppCheck(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{ACLToken: catalogh.ACLManagement, KeepLocalState: true})
	mgmt := ag.Client()
	const tok = "5e1d7c2a-9b34-4f60-a8d2-7c0b3e9f1a45"
	rules := harness.DocsPolicy(t, "agent mode")
	policyToken(t, mgmt, "bridge-agent-app", rules, tok)
	s := newConsulSink(t, ag, func(cfg *agentsink.Config) {
		cfg.Client.Token = tok
		cfg.AppCheck = true
		cfg.Agent.TTL = 10 * time.Minute // Apply is called by hand, with waits between
	})
	ids := []string{"django-10.213.0.1-8000", "django-10.213.0.2-8000", "django-10.213.0.3-8000"}
	states := []bendpoint.Health{bendpoint.Ready, bendpoint.Pending, bendpoint.Failing}
	outputs := []string{"HTTP GET /healthz: 200 in 2 ms", "", "HTTP GET /healthz: 503 in 4 ms"}
	round := uint64(1)
	apply := func() {
		t.Helper()
		consulApply(t, s, appServers(round, states, outputs))
		round++
	}
	apply()
	waitPassing(t, mgmt, "django", ids[0])
	// Every instance is there, with its app check: its status in the
	// catalog at once, its output on the agent (the agent syncs an output
	// that changed without its status to the servers only after
	// check_update_interval, 5m by default).
	wantApp := func(status0, status1, status2 string) map[string]string {
		return map[string]string{
			ids[0] + ":app": status0 + " " + outputs[0],
			ids[1] + ":app": status1 + " " + outputs[1],
			ids[2] + ":app": status2 + " " + outputs[2],
		}
	}
	agentApps := func() (map[string]string, error) {
		checks, err := mgmt.Agent().ChecksWithFilter(fmt.Sprintf("Name == %q", agentsink.AppCheckName))
		if err != nil {
			return nil, err
		}
		got := map[string]string{}
		for id, ch := range checks {
			got[id] = ch.Status + " " + ch.Output
			if ch.Type != "ttl" || ch.Notes == "" || ch.ServiceName != "django" {
				return nil, fmt.Errorf("%s: type %q notes %q service %q", id, ch.Type, ch.Notes, ch.ServiceName)
			}
		}
		return got, nil
	}
	// Pending: registered without output, which the check's notes explain.
	if got, err := agentApps(); err != nil || fmt.Sprint(got) != fmt.Sprint(wantApp("passing", "critical", "critical")) {
		t.Fatalf("app checks on the agent = %v, %v; want %v", got, err, wantApp("passing", "critical", "critical"))
	}
	consulWaitFor(t, 30*time.Second, "app checks in the catalog", func() (bool, string) {
		entries, _, err := mgmt.Health().Service("django", "", false, nil)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, e := range entries {
			for _, ch := range e.Checks {
				if ch.Name == agentsink.AppCheckName {
					got[ch.CheckID] = ch.Status
				}
			}
		}
		want := map[string]string{ids[0] + ":app": "passing", ids[1] + ":app": "critical", ids[2] + ":app": "critical"}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("app checks %v, want %v", got, want)
	})
	_, idx := passingIDs(t, mgmt, "django")
	before := s.Counters()

	// Quiet rounds: no check written, no index moved.
	for range 3 {
		apply()
	}
	time.Sleep(2 * time.Second) // give anti-entropy a chance to move something
	if _, now := passingIDs(t, mgmt, "django"); now != idx {
		t.Errorf("quiet rounds moved the index of django from %d to %d", idx, now)
	}
	if d := s.Counters(); d.AppUpdates != before.AppUpdates || d.Registers != before.Registers {
		t.Errorf("quiet rounds: %d app updates, %d registrations; want none", d.AppUpdates-before.AppUpdates, d.Registers-before.Registers)
	}

	// The pending server turns ready: one check update, back in ?passing.
	states[1], outputs[1] = bendpoint.Ready, "HTTP GET /healthz: 200 in 3 ms"
	apply()
	if d := s.Counters(); d.AppUpdates != before.AppUpdates+1 || d.Registers != before.Registers {
		t.Errorf("transition: %d app updates, %d registrations; want 1 and 0", d.AppUpdates-before.AppUpdates, d.Registers-before.Registers)
	}
	waitPassing(t, mgmt, "django", ids[0], ids[1])
	// The failing one comes back; a ready one fails.
	states[0], outputs[0] = bendpoint.Failing, "TCP connect: connection refused"
	states[2], outputs[2] = bendpoint.Ready, "HTTP GET /healthz: 200 in 1 ms"
	apply()
	waitPassing(t, mgmt, "django", ids[1], ids[2])
	if d := s.Counters(); d.AppUpdates != before.AppUpdates+3 {
		t.Errorf("three transitions: %d app updates, want 3", d.AppUpdates-before.AppUpdates)
	}
	if got, err := agentApps(); err != nil || fmt.Sprint(got) != fmt.Sprint(wantApp("critical", "passing", "passing")) {
		t.Errorf("app checks on the agent = %v, %v; want %v", got, err, wantApp("critical", "passing", "passing"))
	}
	// A transition's output reaches the catalog with its status.
	entries, _, err := mgmt.Health().Service("django", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, ch := range e.Checks {
			if ch.CheckID == ids[0]+":app" && (ch.Status != api.HealthCritical || ch.Output != outputs[0]) {
				t.Errorf("catalog: %s %s %q, want critical %q", ch.CheckID, ch.Status, ch.Output, outputs[0])
			}
		}
	}

	// The agent restarts: it restores every check's last state (the TTL has
	// not run out), and the bridge has nothing to write.
	ag.Stop()
	ag.Start()
	mgmt = ag.Client()
	policyToken(t, mgmt, "bridge-agent-app", rules, tok)
	waitPassing(t, mgmt, "django", ids[1], ids[2])
	if got, err := agentApps(); err != nil || fmt.Sprint(got) != fmt.Sprint(wantApp("critical", "passing", "passing")) {
		t.Errorf("app checks after the agent's restart = %v, %v; want %v", got, err, wantApp("critical", "passing", "passing"))
	}
	mid := s.Counters()
	res := consulApply(t, s, appServers(round, states, outputs))
	round++
	if d := s.Counters(); d.AppUpdates != mid.AppUpdates || d.Registers != mid.Registers || res.Writes != 1 {
		t.Errorf("first round after the agent's restart: %+v, %d app updates, %d registrations; want the heartbeat only",
			res, d.AppUpdates-mid.AppUpdates, d.Registers-mid.Registers)
	}
	// A failing server is never removed for failing.
	if n := len(consulAgentServices(t, mgmt, "django")); n != 3 {
		t.Errorf("%d django services, want 3", n)
	}
	consulClose(t, s)
}
