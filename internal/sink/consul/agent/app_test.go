package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Unit tests of agent mode's app check (the bridge runs app_check, the
// agent carries its verdict) through the in-memory agent of fake_test.go.

// server is one endpoint of a snapshot with its app check's verdict.
type server struct {
	addr   string
	state  endpoint.Health
	output string
}

// health is a snapshot of servers with their Check.
func health(round uint64, servers ...server) endpoint.Snapshot {
	s := endpoint.Snapshot{Round: round, At: testStart}
	for _, v := range servers {
		e := ep(v.addr)
		e.Check = endpoint.Check{State: v.state, Output: v.output, Since: testStart}
		s.Endpoints = append(s.Endpoints, e)
	}
	s.Endpoints = endpoint.Sorted(s.Endpoints)
	return s
}

func withAppCheck() harnessOpt {
	return withConfig(func(c *Config) { c.AppCheck = true })
}

// appCheck returns the app check of the server at addr as the agent holds
// it.
func (h *harness) appCheck(addr string) fakeCheck {
	h.t.Helper()
	c, ok := h.fa.Check(sid(addr) + ":app")
	if !ok {
		h.t.Fatalf("no app check on %s", sid(addr))
	}
	return c
}

// appUpdates returns the IDs of the app check updates made (the TTL
// updates of checks other than the heartbeat).
func (h *harness) appUpdates() []string {
	var out []string
	for _, id := range h.fa.CallIDs(opTTL) {
		if id != testCheckID {
			out = append(out, id)
		}
	}
	return out
}

// TestAgentAppCheckRegistration checks the status a new server's app check
// is registered with, for each state, and that the output follows in the
// same round (the registration cannot carry one) unless it is a pending
// server's with no output of its own.
func TestAgentAppCheckRegistration(t *testing.T) {
	tests := []struct {
		name       string
		srv        server
		wantStatus string
		wantOutput string
		wantWrites int // besides the bridge's registration
	}{
		{"pending, no output", server{"10.0.0.1:8000", endpoint.Pending, ""}, api.HealthCritical, "", 1},
		{"pending with output", server{"10.0.0.1:8000", endpoint.Pending, "HTTP GET /healthz: 200 in 3 ms"}, api.HealthCritical, "HTTP GET /healthz: 200 in 3 ms", 2},
		{"ready", server{"10.0.0.1:8000", endpoint.Ready, "HTTP GET /healthz: 200 in 3 ms"}, api.HealthPassing, "HTTP GET /healthz: 200 in 3 ms", 2},
		{"failing", server{"10.0.0.1:8000", endpoint.Failing, "HTTP GET /healthz: 503 in 4 ms"}, api.HealthCritical, "HTTP GET /healthz: 503 in 4 ms", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withAppCheck())
			res := h.apply(health(1, tt.srv))
			if res.Writes != 1+tt.wantWrites || len(res.Diff.Added) != 1 || len(res.Diff.Changed) != 0 {
				t.Errorf("result = %+v, want %d writes, 1 added, nothing changed", res, 1+tt.wantWrites)
			}
			c := h.appCheck(tt.srv.addr)
			if c.Status != tt.wantStatus || c.Output != tt.wantOutput {
				t.Errorf("app check = %s %q, want %s %q", c.Status, c.Output, tt.wantStatus, tt.wantOutput)
			}
			// The next round is quiet: the heartbeat only.
			h.fa.Reset()
			if res := h.apply(health(2, tt.srv)); res.Writes != 1 || h.fa.Count(opTTL) != 1 || len(h.fa.Calls()) != 1 {
				t.Errorf("quiet round: %+v, calls %+v; want the heartbeat only", res, h.fa.Calls())
			}
		})
	}
}

// TestAgentAppCheckTransitions checks that the check is written on
// transitions only: quiet rounds write no check, a transition writes
// exactly one check update, of that server only, with its status and
// output; a failing server is kept however long it fails.
func TestAgentAppCheckTransitions(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a, b, c := "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	h.apply(health(1, server{a, endpoint.Pending, ""}, server{b, endpoint.Pending, ""}, server{c, endpoint.Pending, ""}))

	steps := []struct {
		name        string
		servers     []server
		wantUpdates []string // app check updates
		wantStatus  map[string]string
	}{
		{"quiet, all pending", []server{{a, endpoint.Pending, ""}, {b, endpoint.Pending, ""}, {c, endpoint.Pending, ""}}, nil,
			map[string]string{a: api.HealthCritical, b: api.HealthCritical, c: api.HealthCritical}},
		{"a turns ready", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Pending, ""}, {c, endpoint.Pending, ""}}, []string{sid(a) + ":app"},
			map[string]string{a: api.HealthPassing, b: api.HealthCritical}},
		{"quiet again", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Pending, ""}, {c, endpoint.Pending, ""}}, nil, nil},
		{"b and c turn ready", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}, {c, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}},
			[]string{sid(b) + ":app", sid(c) + ":app"}, map[string]string{b: api.HealthPassing, c: api.HealthPassing}},
		{"b fails", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}, {c, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}},
			[]string{sid(b) + ":app"}, map[string]string{a: api.HealthPassing, b: api.HealthCritical, c: api.HealthPassing}},
		{"b still failing", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}, {c, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}}, nil, nil},
		{"b back", []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Ready, "HTTP GET /: 200 in 3 ms"}, {c, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}},
			[]string{sid(b) + ":app"}, map[string]string{b: api.HealthPassing}},
	}
	for i, st := range steps {
		h.fa.Reset()
		h.clk.Advance(10 * time.Second)
		res := h.apply(health(uint64(i+2), st.servers...))
		if got := slices.Sorted(slices.Values(h.appUpdates())); !sameStrings(got, st.wantUpdates) {
			t.Errorf("%s: app check updates %v, want %v", st.name, got, st.wantUpdates)
		}
		if n := h.fa.Count(opRegister) + h.fa.Count(opDeregister); n != 0 {
			t.Errorf("%s: %d registrations or deregistrations, want none: %+v", st.name, n, h.fa.Calls())
		}
		if res.Writes != 1+len(st.wantUpdates) || len(res.Diff.Changed) != len(st.wantUpdates) || res.Diff.Unchanged != 3 {
			t.Errorf("%s: result %+v, want %d writes, %d changed, 3 unchanged", st.name, res, 1+len(st.wantUpdates), len(st.wantUpdates))
		}
		for addr, want := range st.wantStatus {
			if got := h.appCheck(addr); got.Status != want {
				t.Errorf("%s: %s is %s %q, want %s", st.name, addr, got.Status, got.Output, want)
			}
		}
		for _, s := range st.servers {
			if s.output != "" {
				if got := h.appCheck(s.addr).Output; got != s.output {
					t.Errorf("%s: %s output %q, want %q", st.name, s.addr, got, s.output)
				}
			}
		}
	}
	if got := h.sink.Counters().AppUpdates; got != 5 {
		t.Errorf("Counters().AppUpdates = %d, want 5", got)
	}

	// Failing for far longer than deregister_after, resyncs included: kept,
	// and nothing written but the heartbeat.
	failing := []server{{a, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}, {b, endpoint.Ready, "HTTP GET /: 200 in 3 ms"}, {c, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}}
	h.apply(health(20, failing...))
	h.fa.Reset()
	for round := uint64(21); round < 40; round++ {
		h.clk.Advance(30 * time.Second)
		h.apply(health(round, failing...))
	}
	if n := len(h.appUpdates()) + h.fa.Count(opRegister) + h.fa.Count(opDeregister); n != 0 {
		t.Errorf("a failing server's rounds made %d writes besides the heartbeat", n)
	}
	if _, _, ok := h.fa.Service(sid(a)); !ok || h.appCheck(a).Status != api.HealthCritical {
		t.Errorf("the failing server is gone or not critical")
	}
}

// TestAgentAppCheckAgentRestart checks that a server the agent lost is
// registered again with its status of the moment, and its output.
func TestAgentAppCheckAgentRestart(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a, b := "10.0.0.1:8000", "10.0.0.2:8000"
	servers := []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}}
	h.apply(health(1, servers...))
	h.fa.Restart()
	h.fa.Reset()
	h.clk.Advance(10 * time.Second)
	res := h.apply(health(2, servers...))
	if got := h.fa.CallIDs(opRegister); len(got) != 3 || got[0] != testBridgeSvc {
		t.Errorf("registered %v, want the bridge and both servers", got)
	}
	if got := h.appUpdates(); !sameStrings(slices.Sorted(slices.Values(got)), []string{sid(a) + ":app", sid(b) + ":app"}) {
		t.Errorf("app updates %v, want the output of both", got)
	}
	if c := h.appCheck(a); c.Status != api.HealthPassing || c.Output != servers[0].output {
		t.Errorf("a = %s %q", c.Status, c.Output)
	}
	if c := h.appCheck(b); c.Status != api.HealthCritical || c.Output != servers[1].output {
		t.Errorf("b = %s %q", c.Status, c.Output)
	}
	if len(res.Diff.Added) != 2 || len(res.Diff.Changed) != 0 {
		t.Errorf("result %+v, want 2 added, none changed", res)
	}
}

// TestAgentAppCheckResync checks anti-entropy of the check: a status
// changed behind the bridge's back is written back on the first resync
// round, not before, and a new process finds what the agent holds and
// writes only what differs.
func TestAgentAppCheckResync(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a, b := "10.0.0.1:8000", "10.0.0.2:8000"
	servers := []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}}
	h.apply(health(1, servers...))
	h.fa.SetCheck(sid(b)+":app", api.HealthPassing, "set by hand")
	h.fa.Reset()
	h.clk.Advance(h.cfg.Resync - time.Second)
	h.apply(health(2, servers...))
	if n := len(h.appUpdates()); n != 0 {
		t.Fatalf("%d app updates before the resync", n)
	}
	h.clk.Advance(time.Second)
	res := h.apply(health(3, servers...))
	if got := h.appUpdates(); !slices.Equal(got, []string{sid(b) + ":app"}) || h.fa.Count(opChecks) != 1 {
		t.Errorf("resync round: app updates %v, %d check reads; want %s:app and one read", got, h.fa.Count(opChecks), sid(b))
	}
	if c := h.appCheck(b); c.Status != api.HealthCritical || c.Output != servers[1].output {
		t.Errorf("b after resync = %s %q", c.Status, c.Output)
	}
	if !slices.Equal(addrsOf(res.Diff.Changed), []string{b}) {
		t.Errorf("changed %v, want %s", addrsOf(res.Diff.Changed), b)
	}

	// A new process on the same agent: a turned failing meanwhile.
	h2 := newHarness(t, withAppCheck(), withFake(h.fa))
	h2.fa.Reset()
	servers[0] = server{a, endpoint.Failing, "TCP connect: connection refused"}
	h2.apply(health(1, servers...))
	if got := h2.appUpdates(); !slices.Equal(got, []string{sid(a) + ":app"}) {
		t.Errorf("new process: app updates %v, want only %s:app", got, sid(a))
	}
	if got := h2.fa.CallIDs(opRegister); !slices.Equal(got, []string{testBridgeSvc}) {
		t.Errorf("new process registered %v, want only the bridge", got)
	}
}

// TestAgentAppCheckPersistedState checks a re-registration on an agent with
// a data dir: the agent gives the check the state it persisted at the last
// update instead of the status the registration carries, so the bridge
// writes the status again.
func TestAgentAppCheckPersistedState(t *testing.T) {
	h := newHarness(t, withAppCheck())
	h.fa.persist = true
	a := "10.0.0.1:8000"
	h.apply(health(1, server{a, endpoint.Pending, ""}))
	h.apply(health(2, server{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"})) // persisted: passing

	// A new process with other tags re-registers the server, pending (as
	// every server is when a bridge starts).
	h2 := newHarness(t, withAppCheck(), withFake(h.fa), withConfig(func(c *Config) { c.Tags = []string{"lab", "new"} }))
	h2.fa.Reset()
	h2.apply(health(1, server{a, endpoint.Pending, ""}))
	if got := h2.fa.CallIDs(opRegister); !slices.Contains(got, sid(a)) {
		t.Fatalf("registered %v, want %s again", got, sid(a))
	}
	if c := h2.appCheck(a); c.Status != api.HealthCritical || c.Output != pendingOutput {
		t.Errorf("after re-registration: %s %q, want critical %q", c.Status, c.Output, pendingOutput)
	}
	h2.fa.Reset()
	h2.apply(health(2, server{a, endpoint.Pending, ""}))
	if n := len(h2.appUpdates()); n != 0 {
		t.Errorf("quiet round after: %d app updates", n)
	}
}

// TestAgentAppCheckMissing checks a server removed behind the bridge's back
// between resyncs: its transition's update fails naming the check, and the
// next round registers it again with its status.
func TestAgentAppCheckMissing(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a, b := "10.0.0.1:8000", "10.0.0.2:8000"
	h.apply(health(1, server{a, endpoint.Pending, ""}, server{b, endpoint.Pending, ""}))
	h.fa.Delete(sid(a))
	h.fa.Reset()
	servers := []server{{a, endpoint.Ready, "HTTP GET /: 200 in 2 ms"}, {b, endpoint.Ready, "HTTP GET /: 200 in 1 ms"}}
	_, err := h.sink.Apply(context.Background(), health(2, servers...))
	if err == nil || !errors.Is(err, errAppCheckMissing) || !strings.Contains(err.Error(), "update app check "+sid(a)+":app") {
		t.Fatalf("Apply = %v, want the failed update of %s:app", err, sid(a))
	}
	if c := h.appCheck(b); c.Status != api.HealthPassing {
		t.Errorf("b = %s, want passing (written despite a's failure)", c.Status)
	}
	h.fa.Reset()
	h.apply(health(3, servers...))
	if got := h.fa.CallIDs(opRegister); !slices.Equal(got, []string{sid(a)}) {
		t.Errorf("registered %v, want %s", got, sid(a))
	}
	if c := h.appCheck(a); c.Status != api.HealthPassing || c.Output != servers[0].output {
		t.Errorf("a = %s %q, want passing with its output", c.Status, c.Output)
	}
}

// TestAgentAppCheckPlan checks that Plan reports the servers whose check
// would be updated as Changed, and writes nothing.
func TestAgentAppCheckPlan(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a, b := "10.0.0.1:8000", "10.0.0.2:8000"
	h.apply(health(1, server{a, endpoint.Pending, ""}, server{b, endpoint.Pending, ""}))
	h.fa.Reset()
	d, err := h.sink.Plan(context.Background(), health(2, server{a, endpoint.Ready, "ok"}, server{b, endpoint.Pending, ""}, server{"10.0.0.3:8000", endpoint.Pending, ""}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(addrsOf(d.Changed), []string{a}) || !slices.Equal(addrsOf(d.Added), []string{"10.0.0.3:8000"}) || d.Unchanged != 2 {
		t.Errorf("Plan = %+v", d)
	}
	for _, c := range h.fa.Calls() {
		if c.Op != opList && c.Op != opChecks {
			t.Errorf("Plan wrote: %+v", c)
		}
	}
}

// TestAgentAppCheckTurnedOff checks that a bridge restarted without app
// checks registers its servers again without the app check (the checks
// fingerprint differs), and then writes no check.
func TestAgentAppCheckTurnedOff(t *testing.T) {
	h := newHarness(t, withAppCheck())
	a := "10.0.0.1:8000"
	h.apply(health(1, server{a, endpoint.Failing, "HTTP GET /: 503 in 4 ms"}))
	h2 := newHarness(t, withFake(h.fa))
	h2.fa.Reset()
	h2.apply(snap(1, a))
	if got := h2.fa.CallIDs(opRegister); !slices.Equal(got, []string{testBridgeSvc, sid(a)}) {
		t.Errorf("registered %v, want the bridge and %s", got, sid(a))
	}
	if _, ok := h2.fa.Check(sid(a) + ":app"); ok {
		t.Error("the app check is still there")
	}
	if n := h2.fa.Count(opChecks) + len(h2.appUpdates()); n != 0 {
		t.Errorf("%d app check reads or writes without app checks", n)
	}
}

// TestConsulAppState checks the mapping of a Check to the app check and
// when the agent's check already says it.
func TestConsulAppState(t *testing.T) {
	long := strings.Repeat("é", maxAppOutput) // 2 bytes a rune
	tests := []struct {
		name  string
		check endpoint.Check
		want  appState
	}{
		{"ready", endpoint.Check{State: endpoint.Ready, Output: "HTTP GET /: 200 in 1 ms"}, appState{api.HealthPassing, "HTTP GET /: 200 in 1 ms"}},
		{"no app check", endpoint.Check{}, appState{api.HealthPassing, ""}},
		{"pending", endpoint.Check{State: endpoint.Pending}, appState{api.HealthCritical, pendingOutput}},
		{"pending with output", endpoint.Check{State: endpoint.Pending, Output: "1 of 2"}, appState{api.HealthCritical, "1 of 2"}},
		{"failing", endpoint.Check{State: endpoint.Failing, Output: "TCP connect: connection refused"}, appState{api.HealthCritical, "TCP connect: connection refused"}},
		{"long output cut on a rune", endpoint.Check{State: endpoint.Failing, Output: long}, appState{api.HealthCritical, long[:maxAppOutput]}},
		{"long output cut inside a rune", endpoint.Check{State: endpoint.Failing, Output: "x" + long}, appState{api.HealthCritical, ("x" + long)[:maxAppOutput-1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appStateOf(tt.check); got != tt.want {
				t.Errorf("appStateOf(%+v) = %+v, want %+v", tt.check, got, tt.want)
			}
		})
	}
	holds := []struct {
		held, want appState
		ok         bool
	}{
		{appState{api.HealthCritical, ""}, appState{api.HealthCritical, pendingOutput}, true},
		{appState{api.HealthCritical, pendingOutput}, appState{api.HealthCritical, pendingOutput}, true},
		{appState{api.HealthCritical, ""}, appState{api.HealthCritical, "HTTP GET /: 503 in 4 ms"}, false},
		{appState{api.HealthPassing, "x"}, appState{api.HealthCritical, "x"}, false},
		{appState{api.HealthCritical, "old"}, appState{api.HealthCritical, pendingOutput}, false},
		{appState{api.HealthPassing, ""}, appState{api.HealthPassing, ""}, true},
	}
	for _, tt := range holds {
		if got := tt.held.holds(tt.want); got != tt.ok {
			t.Errorf("%+v.holds(%+v) = %v, want %v", tt.held, tt.want, got, tt.ok)
		}
	}
}
