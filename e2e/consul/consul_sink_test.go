package consul_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	bendpoint "github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	agentsink "github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// These tests drive the Consul sink library against a real dev agent built
// from Consul's module (see internal/consulbin); no bridge binary is needed.

// newConsulClock is a manual clock for passing Resync without sleeping.
func newConsulClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// consulServers returns a snapshot of n endpoints 10.213.<i/250>.<i%250+1>:8000.
func consulServers(round uint64, n int) bendpoint.Snapshot {
	eps := make([]bendpoint.Endpoint, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 213, byte(i / 250), byte(i%250 + 1)})
		eps = append(eps, bendpoint.Endpoint{
			Addr:      netip.AddrPortFrom(a, 8000),
			Source:    netip.AddrPortFrom(a, 9999),
			Interface: "veth-lab",
		})
	}
	return bendpoint.Snapshot{Round: round, At: time.Now(), Endpoints: bendpoint.Sorted(eps)}
}

// newConsulSink builds a Consul sink against ag; mod adjusts the configuration.
func newConsulSink(t testing.TB, ag *consulagent.Agent, mod func(*agentsink.Config)) *agentsink.Agent {
	t.Helper()
	cfg := agentsink.Config{
		SharedConfig: consulclient.SharedConfig{
			Client:   consulclient.ClientConfig{Addr: ag.Addr},
			Service:  "django",
			BridgeID: "bridge-a",
		},
		Agent: agentsink.Settings{TTL: 30 * time.Second},
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := agentsink.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatalf("NewAgent: %v", err)
	}
	// As the runner does: start (the lock, if any) before the first Apply.
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func consulApply(t testing.TB, s *agentsink.Agent, snap bendpoint.Snapshot) sink.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.Apply(ctx, snap)
	if err != nil {
		t.Fatalf("Apply round %d: %v", snap.Round, err)
	}
	return res
}

func consulClose(t testing.TB, s *agentsink.Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// consulAgentServices returns the agent's services named name.
func consulAgentServices(t testing.TB, c *api.Client, name string) map[string]*api.AgentService {
	t.Helper()
	svcs, err := c.Agent().ServicesWithFilter(fmt.Sprintf("Service == %q", name))
	if err != nil {
		t.Fatalf("agent services: %v", err)
	}
	return svcs
}

// consulWaitFor polls cond every 100ms until it holds or timeout passes.
func consulWaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consulCatalogCount waits until the catalog holds want instances of service and
// returns its X-Consul-Index.
func consulCatalogCount(t testing.TB, c *api.Client, service string, want int) uint64 {
	t.Helper()
	var idx uint64
	consulWaitFor(t, 20*time.Second, fmt.Sprintf("%d catalog instances of %s", want, service), func() (bool, string) {
		svcs, meta, err := c.Catalog().Service(service, "", nil)
		if err != nil {
			return false, err.Error()
		}
		idx = meta.LastIndex
		return len(svcs) == want, fmt.Sprintf("have %d", len(svcs))
	})
	return idx
}

// consulSettledIndex waits until the catalog holds want passing instances
// of service (the agent has synced the registrations and their alias checks'
// first results) and returns its X-Consul-Index once it stops moving.
func consulSettledIndex(t testing.TB, c *api.Client, service string, want int) uint64 {
	t.Helper()
	consulWaitFor(t, 2*time.Minute, fmt.Sprintf("%d passing instances of %s", want, service), func() (bool, string) {
		entries, _, err := c.Health().Service(service, "", true, nil)
		if err != nil {
			return false, err.Error()
		}
		return len(entries) == want, fmt.Sprintf("%d passing", len(entries))
	})
	var last uint64
	consulWaitFor(t, 10*time.Second, "a stable X-Consul-Index", func() (bool, string) {
		_, meta, err := c.Catalog().Service(service, "", nil)
		if err != nil {
			return false, err.Error()
		}
		stable := meta.LastIndex == last
		last = meta.LastIndex
		if !stable {
			time.Sleep(400 * time.Millisecond) // observe it over half a second
		}
		return stable, fmt.Sprintf("index %d", last)
	})
	return last
}

func TestConsulSinkRegistersServers(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{})
	c := ag.Client()
	s := newConsulSink(t, ag, func(cfg *agentsink.Config) { cfg.Tags = []string{"lab", "v1"} })
	snap := consulServers(1, 3)

	res := consulApply(t, s, snap)
	// 1 bridge registration + 3 servers.
	if len(res.Diff.Added) != 3 || res.Writes != 4 {
		t.Fatalf("first Apply: added %d, writes %d; want 3, 4", len(res.Diff.Added), res.Writes)
	}
	svcs := consulAgentServices(t, c, "django")
	if len(svcs) != 3 {
		t.Fatalf("agent has %d django services, want 3", len(svcs))
	}
	got := svcs["django-10.213.0.1-8000"]
	if got == nil {
		t.Fatalf("no service django-10.213.0.1-8000 in %v", svcs)
	}
	if got.Address != "10.213.0.1" || got.Port != 8000 || strings.Join(got.Tags, ",") != "lab,v1" {
		t.Errorf("service = %s:%d tags %v", got.Address, got.Port, got.Tags)
	}
	wantMeta := map[string]string{"managed-by": "udp-discovery-bridge", "bridge-id": "bridge-a", "interface": "veth-lab", "source-address": "10.213.0.1:9999"}
	for k, v := range wantMeta {
		if got.Meta[k] != v {
			t.Errorf("meta[%s] = %q, want %q", k, got.Meta[k], v)
		}
	}
	if b := consulAgentServices(t, c, consulclient.BridgeServiceName); len(b) != 1 || b[s.BridgeServiceID()] == nil {
		t.Errorf("bridge service = %v, want %s", b, s.BridgeServiceID())
	}
	// Every instance is healthy through its alias check on the bridge.
	consulWaitFor(t, 10*time.Second, "3 passing instances", func() (bool, string) {
		entries, _, err := c.Health().Service("django", "", true, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range entries {
			hasAlias := false
			for _, ch := range e.Checks {
				if ch.Type == "alias" && ch.Status == api.HealthPassing {
					hasAlias = true
				}
			}
			if !hasAlias {
				return false, fmt.Sprintf("%s has no passing alias check: %+v", e.Service.ID, e.Checks)
			}
		}
		return len(entries) == 3, fmt.Sprintf("%d passing", len(entries))
	})
	// Plan agrees nothing is left to do; a changed snapshot shows up.
	d, err := s.Plan(context.Background(), snap)
	if err != nil || !d.Empty() || d.Unchanged != 3 {
		t.Errorf("Plan(same) = %+v, %v; want empty with 3 unchanged", d, err)
	}
	d, err = s.Plan(context.Background(), consulServers(2, 2))
	if err != nil || len(d.Removed) != 1 || len(d.Added) != 0 {
		t.Errorf("Plan(2 consulServers) = %+v, %v; want 1 removed", d, err)
	}
	// Removing one server deregisters exactly it.
	res = consulApply(t, s, consulServers(2, 2))
	if len(res.Diff.Removed) != 1 || res.Diff.Removed[0].Addr.String() != "10.213.0.3:8000" {
		t.Errorf("Apply(2 consulServers) removed %+v", res.Diff.Removed)
	}
	consulClose(t, s)
}

func TestConsulSinkQuietRoundsLeaveIndexUnchanged(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{})
	c := ag.Client()
	clk := newConsulClock()
	// The test calls Apply by hand and does not heartbeat while it waits for
	// the agent's 1,000 alias checks to settle, which can take longer than
	// 30 s on a loaded machine: a TTL shorter than that wait would turn the
	// bridge check, and with it every alias check, critical before it ends.
	s := newConsulSink(t, ag, func(cfg *agentsink.Config) {
		cfg.Service = "django-big"
		cfg.Clock = clk
		cfg.Agent.TTL = 10 * time.Minute
	})
	const n = 1000

	start := time.Now()
	res := consulApply(t, s, consulServers(1, n))
	took := time.Since(start)
	if len(res.Diff.Added) != n {
		t.Fatalf("added %d, want %d", len(res.Diff.Added), n)
	}
	t.Logf("MEASURED: registering %d servers in one Apply took %s (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	settle := time.Now()
	idx := consulSettledIndex(t, c, "django-big", n)
	t.Logf("MEASURED: %d alias checks passing and the index stable %s after the Apply", n, time.Since(settle).Round(time.Millisecond))
	before := s.Counters()

	var quiet time.Duration
	for round := uint64(2); round <= 11; round++ {
		if round == 6 {
			clk.Advance(2 * time.Minute) // one resync round among the quiet ones
		}
		start := time.Now()
		res := consulApply(t, s, consulServers(round, n))
		quiet += time.Since(start)
		if !res.Diff.Empty() || res.Writes != 1 || res.Diff.Unchanged != n {
			t.Fatalf("quiet round %d: %+v writes %d; want no change and 1 write (the TTL update)", round, res.Diff, res.Writes)
		}
	}
	after := s.Counters()
	if after.Registers != before.Registers || after.Deregisters != before.Deregisters {
		t.Errorf("quiet rounds registered %d and deregistered %d services, want 0",
			after.Registers-before.Registers, after.Deregisters-before.Deregisters)
	}
	if got := after.TTLUpdates - before.TTLUpdates; got != 10 {
		t.Errorf("quiet rounds made %d TTL updates, want 10", got)
	}
	if got := after.Lists - before.Lists; got != 1 {
		t.Errorf("quiet rounds listed owned services %d times, want 1 (the resync round)", got)
	}
	t.Logf("MEASURED: 10 quiet Applies of %d servers: %s total, writes per round: 0 registers, 0 deregisters, 1 TTL update; 1 filtered read on the resync round",
		n, quiet.Round(time.Millisecond))
	_, meta, err := c.Catalog().Service("django-big", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.LastIndex != idx {
		t.Errorf("X-Consul-Index of django-big moved from %d to %d over 10 quiet rounds", idx, meta.LastIndex)
	}
	// The heartbeat is passing.
	checks, err := c.Agent().ChecksWithFilter(fmt.Sprintf("ServiceID == %q", s.BridgeServiceID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range checks {
		if ch.Status != api.HealthPassing || !strings.Contains(ch.Output, "round 11: 1000 servers") {
			t.Errorf("bridge check %s: %s %q", ch.CheckID, ch.Status, ch.Output)
		}
	}
	if len(checks) != 1 {
		t.Errorf("bridge has %d checks, want 1", len(checks))
	}
}

func TestConsulSinkResyncRestoresDeletedAndLeavesForeign(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{})
	c := ag.Client()
	clk := newConsulClock()
	// Someone else's instances of the same service: one without meta, one
	// claiming another bridge.
	for _, reg := range []*api.AgentServiceRegistration{
		{ID: "django-foreign", Name: "django", Address: "10.213.9.9", Port: 8000},
		{ID: "django-other-bridge", Name: "django", Address: "10.213.9.8", Port: 8000,
			Meta: map[string]string{"managed-by": "udp-discovery-bridge", "bridge-id": "bridge-z"}},
	} {
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	s := newConsulSink(t, ag, func(cfg *agentsink.Config) { cfg.Clock = clk })
	consulApply(t, s, consulServers(1, 3))

	if err := c.Agent().ServiceDeregister("django-10.213.0.2-8000"); err != nil {
		t.Fatal(err)
	}
	// Before the resync is due the sink trusts what it wrote: no write.
	if res := consulApply(t, s, consulServers(2, 3)); res.Writes != 1 {
		t.Errorf("Apply before resync: %d writes, want 1 (TTL)", res.Writes)
	}
	clk.Advance(61 * time.Second)
	res := consulApply(t, s, consulServers(3, 3))
	if len(res.Diff.Added) != 1 || res.Diff.Added[0].Addr.String() != "10.213.0.2:8000" {
		t.Fatalf("resync Apply added %+v, want 10.213.0.2:8000", res.Diff.Added)
	}
	if got := len(consulAgentServices(t, c, "django")); got != 5 {
		t.Errorf("django services = %d, want 5 (3 owned + 2 foreign)", got)
	}
	consulClose(t, s)
	svcs := consulAgentServices(t, c, "django")
	if len(svcs) != 2 || svcs["django-foreign"] == nil || svcs["django-other-bridge"] == nil {
		t.Errorf("after Close: %v, want only the two foreign services", consulKeys(svcs))
	}
}

func consulKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestConsulSinkRestartAndOnExit(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{})
	c := ag.Client()

	first := newConsulSink(t, ag, func(cfg *agentsink.Config) { cfg.OnExit = consulclient.OnExitKeep })
	consulApply(t, first, consulServers(1, 5))
	consulClose(t, first) // keep: everything stays
	if got := len(consulAgentServices(t, c, "django")); got != 5 {
		t.Fatalf("after Close(keep): %d services, want 5", got)
	}
	if got := len(consulAgentServices(t, c, consulclient.BridgeServiceName)); got != 1 {
		t.Fatalf("after Close(keep): %d bridge services, want 1", got)
	}

	// A new process with the same bridge ID and snapshot writes nothing but
	// its own bridge registration, and duplicates nothing.
	second := newConsulSink(t, ag, nil)
	res := consulApply(t, second, consulServers(1, 5))
	if !res.Diff.Empty() || res.Writes != 1 || second.Counters().Registers != 1 {
		t.Errorf("restarted sink: %+v, writes %d, registers %d; want no change, 1 write", res.Diff, res.Writes, second.Counters().Registers)
	}
	consulCatalogCount(t, c, "django", 5)

	// Close(deregister) of a process that never wrote some of them still
	// removes every owned service (it lists by owner), and the bridge itself.
	third := newConsulSink(t, ag, nil)
	consulApply(t, third, consulServers(2, 2)) // knows only 2 after deregistering 3
	consulApply(t, consulKeepSink(t, ag), consulServers(3, 5))
	consulClose(t, third)
	if got := consulAgentServices(t, c, "django"); len(got) != 0 {
		t.Errorf("after Close(deregister): %v remain", consulKeys(got))
	}
	if got := consulAgentServices(t, c, consulclient.BridgeServiceName); len(got) != 0 {
		t.Errorf("after Close(deregister): bridge services %v remain", consulKeys(got))
	}
}

// consulKeepSink is another process of the same bridge that writes 5 services
// behind third's back (leftovers third does not know of).
func consulKeepSink(t testing.TB, ag *consulagent.Agent) *agentsink.Agent {
	return newConsulSink(t, ag, func(cfg *agentsink.Config) { cfg.OnExit = consulclient.OnExitKeep })
}

func TestConsulSinkAgentRestartHeals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		keepState bool
		wantAdded int
	}{
		// A dev agent comes back empty: the failed TTL update tells the sink
		// the agent lost its state, so it re-registers itself and everything
		// although no resync is due.
		{"agent lost its state", false, 20},
		// An agent that restores its local state from disk needs nothing.
		{"agent restored its state", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ag := consulagent.Start(t, consulagent.Options{KeepLocalState: tt.keepState})
			s := newConsulSink(t, ag, nil)
			consulApply(t, s, consulServers(1, 20))

			ag.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := s.Apply(ctx, consulServers(2, 20))
			cancel()
			if err == nil {
				t.Fatal("Apply with the agent down succeeded")
			}
			ag.Start()
			c := ag.Client()
			if got := len(consulAgentServices(t, c, "django")); got != 20-tt.wantAdded {
				t.Fatalf("restarted agent has %d services, want %d", got, 20-tt.wantAdded)
			}
			res := consulApply(t, s, consulServers(3, 20))
			if len(res.Diff.Added) != tt.wantAdded {
				t.Fatalf("Apply after the restart added %d, want %d", len(res.Diff.Added), tt.wantAdded)
			}
			consulCatalogCount(t, c, "django", 20)
			if res := consulApply(t, s, consulServers(4, 20)); res.Writes != 1 {
				t.Errorf("next Apply: %d writes, want 1", res.Writes)
			}
			consulClose(t, s)
		})
	}
}

func TestConsulSinkTokenFileWithACLs(t *testing.T) {
	t.Parallel()
	const token = "7d3c1a9e-5b2f-4e8a-9c61-0f4b2d8e6a17"
	ag := consulagent.Start(t, consulagent.Options{ACLToken: token})
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	bad := filepath.Join(dir, "bad-token")
	const badToken = "00000000-dead-beef-0000-123456789abc"
	if err := os.WriteFile(good, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(badToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := zerolog.New(&logs)

	t.Run("good token", func(t *testing.T) {
		s, err := agentsink.New(agentsink.Config{SharedConfig: consulclient.SharedConfig{Client: consulclient.ClientConfig{Addr: ag.Addr, TokenFile: good}, BridgeID: "acl"}}, logger)
		if err != nil {
			t.Fatal(err)
		}
		consulApply(t, s, consulServers(1, 2))
		if got := len(consulAgentServices(t, ag.Client(), "django")); got != 2 {
			t.Errorf("%d services registered with ACLs, want 2", got)
		}
		consulClose(t, s)
	})
	t.Run("wrong token", func(t *testing.T) {
		s, err := agentsink.New(agentsink.Config{SharedConfig: consulclient.SharedConfig{Client: consulclient.ClientConfig{Addr: ag.Addr, TokenFile: bad}, BridgeID: "acl"}}, logger)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Apply(context.Background(), consulServers(1, 2))
		if err == nil {
			t.Fatal("Apply with a wrong token succeeded")
		}
		t.Logf("error with a wrong token: %v", err)
		logger.Error().Err(err).Msg("apply failed")
		if strings.Contains(err.Error(), badToken) {
			t.Errorf("error leaks the token: %v", err)
		}
		err = s.Close(context.Background())
		if err != nil && strings.Contains(err.Error(), badToken) {
			t.Errorf("Close error leaks the token: %v", err)
		}
	})
	t.Run("missing token file", func(t *testing.T) {
		_, err := agentsink.New(agentsink.Config{SharedConfig: consulclient.SharedConfig{Client: consulclient.ClientConfig{Addr: ag.Addr, TokenFile: filepath.Join(dir, "nope")}, BridgeID: "acl"}}, logger)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
			t.Errorf("NewConsul with a missing token file = %v, want an error naming the path", err)
		}
	})
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), badToken) {
		t.Errorf("logs leak a token:\n%s", logs.String())
	}
}

func TestConsulSinkLockFailover(t *testing.T) {
	t.Parallel()
	ag := consulagent.Start(t, consulagent.Options{})
	c := ag.Client()
	const n = 10
	lockCfg := func(id string) func(*agentsink.Config) {
		return func(cfg *agentsink.Config) {
			cfg.BridgeID = id
			cfg.Agent.LockKey = "udp-discovery-bridge/e2e/leader"
			cfg.Agent.LockSessionTTL = 10 * time.Second
			cfg.Agent.LockWait = time.Second
		}
	}
	a := newConsulSink(t, ag, lockCfg("bridge-a"))
	b := newConsulSink(t, ag, lockCfg("bridge-b"))
	consulApply(t, a, consulServers(1, n))
	consulApply(t, b, consulServers(1, n))
	if !a.Leader() || b.Leader() {
		t.Fatalf("leaders: a=%v b=%v, want only a", a.Leader(), b.Leader())
	}
	consulApply(t, a, consulServers(2, n))
	consulApply(t, b, consulServers(2, n))
	owners := func() map[string]int {
		out := map[string]int{}
		for _, s := range consulAgentServices(t, c, "django") {
			out[s.Meta["bridge-id"]]++
		}
		return out
	}
	if got := owners(); got["bridge-a"] != n || len(got) != 1 {
		t.Fatalf("owners = %v, want only bridge-a with %d", got, n)
	}
	// Both bridges stay visible.
	if got := len(consulAgentServices(t, c, consulclient.BridgeServiceName)); got != 2 {
		t.Errorf("bridge services = %d, want 2", got)
	}

	// The holder exits: it deregisters and releases; b takes over within
	// the session TTL plus a margin.
	consulClose(t, a)
	start := time.Now()
	round := uint64(3)
	consulWaitFor(t, 10*time.Second+5*time.Second, "b to lead and register", func() (bool, string) {
		consulApply(t, b, consulServers(round, n))
		round++
		got := owners()
		return b.Leader() && got["bridge-b"] == n && len(got) == 1, fmt.Sprintf("leader=%v owners=%v", b.Leader(), got)
	})
	t.Logf("MEASURED: takeover after the holder's Close: %s", time.Since(start).Round(10*time.Millisecond))

	// The new holder's session is destroyed (operator intervention): it
	// notices and, as the lock has no lock-delay, takes it again at once
	// under a new session; its registrations stay complete throughout.
	sessionOf := func() string {
		sessions, _, err := c.Session().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, se := range sessions {
			if se.Name == "udp-discovery-bridge bridge-b" {
				return se.ID
			}
		}
		return ""
	}
	old := sessionOf()
	if old == "" {
		t.Fatal("the holder has no lock session")
	}
	if _, err := c.Session().Destroy(old, nil); err != nil {
		t.Fatal(err)
	}
	consulWaitFor(t, 15*time.Second, "b to hold the lock under a new session", func() (bool, string) {
		consulApply(t, b, consulServers(round, n))
		round++
		now := sessionOf()
		return b.Leader() && now != "" && now != old && owners()["bridge-b"] == n,
			fmt.Sprintf("leader=%v session=%q owners=%v", b.Leader(), now, owners())
	})
	if got := owners(); len(got) != 1 || got["bridge-b"] != n {
		t.Errorf("owners after re-acquiring = %v, want only bridge-b with %d", got, n)
	}
	consulClose(t, b)
	if got := owners(); len(got) != 0 {
		t.Errorf("after closing both: %v remain", got)
	}
}

// BenchmarkConsulSinkQuietApply10k measures a quiet Apply with 10,000 owned
// servers: one op is one Apply of the unchanged snapshot, every tenth a
// resync round. Registering the 10,000 first takes about 30 s, so it is a
// benchmark, not a test:
//
//	cd e2e && go test -run '^$' -bench ConsulSink -benchtime 20x .
func BenchmarkConsulSinkQuietApply10k(b *testing.B) {
	ag := consulagent.Start(b, consulagent.Options{})
	clk := newConsulClock()
	s := newConsulSink(b, ag, func(cfg *agentsink.Config) { cfg.Service = "django-10k"; cfg.Clock = clk })
	const n = 10000
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	if _, err := s.Apply(ctx, consulServers(1, n)); err != nil {
		b.Fatalf("registering %d servers: %v", n, err)
	}
	b.Logf("registering %d servers in one Apply took %s", n, time.Since(start).Round(time.Millisecond))
	before := s.Counters()
	b.ResetTimer()
	for i := range b.N {
		if i%10 == 9 {
			clk.Advance(2 * time.Minute)
		}
		res := consulApply(b, s, consulServers(uint64(i+2), n))
		if !res.Diff.Empty() {
			b.Fatalf("quiet Apply changed %+v", res.Diff)
		}
	}
	b.StopTimer()
	after := s.Counters()
	ops := float64(b.N)
	b.ReportMetric(float64(after.Registers-before.Registers)/ops, "registers/op")
	b.ReportMetric(float64(after.Deregisters-before.Deregisters)/ops, "deregisters/op")
	b.ReportMetric(float64(after.TTLUpdates-before.TTLUpdates)/ops, "ttl-updates/op")
	b.ReportMetric(float64(after.Lists-before.Lists)/ops, "lists/op")
}

// BenchmarkConsulSinkRegister1000 measures one Apply that registers 1,000
// new servers (and, untimed, the Apply that deregisters them again).
func BenchmarkConsulSinkRegister1000(b *testing.B) {
	ag := consulagent.Start(b, consulagent.Options{})
	s := newConsulSink(b, ag, nil)
	consulApply(b, s, consulServers(1, 0))
	b.ResetTimer()
	for i := range b.N {
		res := consulApply(b, s, consulServers(uint64(2*i+2), 1000))
		if len(res.Diff.Added) != 1000 {
			b.Fatalf("added %d", len(res.Diff.Added))
		}
		b.StopTimer()
		consulApply(b, s, consulServers(uint64(2*i+3), 0))
		b.StartTimer()
	}
}
