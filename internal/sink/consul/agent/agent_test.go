package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// Unit tests of the agent-mode sink through the in-memory agent of
// fake_test.go.

const (
	testBridgeID  = "host-1"
	testBridgeSvc = "udp-discovery-bridge-host-1"
	testCheckID   = "udp-discovery-bridge-host-1:ttl"
)

var testStart = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// harness is a sink over a fake agent, a manual clock and a log buffer.
type harness struct {
	t    *testing.T
	fa   *fakeAgent
	clk  *clocktest.Clock
	logs *consultest.LogBuffer
	cfg  Config
	sink *Agent
	lk   *consultest.Locker // nil without a lock

	redact func(error) error
}

type harnessOpt func(*harness)

// withConfig changes the configuration before defaults are applied.
func withConfig(mod func(*Config)) harnessOpt {
	return func(h *harness) { mod(&h.cfg) }
}

// withLock gives the sink a Lock over a consultest.Locker.
func withLock() harnessOpt {
	return func(h *harness) { h.lk = consultest.NewLocker(); h.cfg.Agent.LockKey = "bridge/lock" }
}

// withFake builds the sink on fa (an agent another sink already used).
func withFake(fa *fakeAgent) harnessOpt {
	return func(h *harness) { h.fa = fa }
}

// withRedact passes redact to the sink and its lock.
func withRedact(redact func(error) error) harnessOpt {
	return func(h *harness) { h.redact = redact }
}

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	log, logs := consultest.NewLogger()
	h := &harness{
		t: t, fa: newFakeAgent(t), clk: clocktest.New(testStart), logs: logs,
		cfg: Config{SharedConfig: consulclient.SharedConfig{BridgeID: testBridgeID, Tags: []string{"lab"}}},
	}
	for _, o := range opts {
		o(h)
	}
	h.cfg.Clock = h.clk
	h.cfg = h.cfg.WithDefaults()
	if err := h.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var lock *consulclient.Lock
	if h.lk != nil {
		lock = consulclient.NewLockOn(context.Background(), h.lk, h.cfg.Agent.LockKey, consulclient.LockConfig{Log: log, Clock: h.clk, Redact: h.redact})
	}
	s, err := newAgent(h.cfg, log, h.fa, lock, h.redact)
	if err != nil {
		t.Fatal(err)
	}
	h.sink = s
	if lock != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = lock.Close(ctx)
		})
	}
	return h
}

// apply runs one Apply and fails the test on error.
func (h *harness) apply(s endpoint.Snapshot) sink.Result {
	h.t.Helper()
	res, err := h.sink.Apply(context.Background(), s)
	if err != nil {
		h.t.Fatalf("Apply(round %d): %v", s.Round, err)
	}
	return res
}

// ep is an endpoint at addr seen from addr's IP on eth0.
func ep(addr string) endpoint.Endpoint {
	a := netip.MustParseAddrPort(addr)
	return endpoint.Endpoint{Addr: a, Source: netip.AddrPortFrom(a.Addr(), 9999), Interface: "eth0"}
}

func snap(round uint64, addrs ...string) endpoint.Snapshot {
	s := endpoint.Snapshot{Round: round, At: testStart}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, ep(a))
	}
	s.Endpoints = endpoint.Sorted(s.Endpoints)
	return s
}

// sid is the service ID of a django server at addr.
func sid(addr string) string { return consulclient.ServiceID("django", netip.MustParseAddrPort(addr)) }

func addrsOf(eps []endpoint.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Addr.String())
	}
	return out
}

func sameStrings(got, want []string) bool {
	return slices.Equal(got, want) || (len(got) == 0 && len(want) == 0)
}

// TestAgentFirstApply checks the first round: the bridge service with its
// TTL check first, then the owned-services read, then each server with an
// alias check on the bridge service and DeregisterCriticalServiceAfter.
func TestAgentFirstApply(t *testing.T) {
	h := newHarness(t)
	res := h.apply(snap(1, "10.0.0.2:8000", "10.0.0.1:8000"))

	calls := h.fa.Calls()
	var got []string
	for _, c := range calls {
		got = append(got, string(c.Op)+" "+c.ID)
	}
	filter, _ := ownedFilter(testBridgeID)
	want := []string{
		"register " + testBridgeSvc,
		"list " + filter,
		"register " + sid("10.0.0.1:8000"),
		"register " + sid("10.0.0.2:8000"),
	}
	// Servers are written in parallel: compare them as a set.
	if len(got) != len(want) || !slices.Equal(got[:2], want[:2]) || !sameStrings(slices.Sorted(slices.Values(got[2:])), want[2:]) {
		t.Fatalf("calls = %q\nwant %q", got, want)
	}
	if res.Writes != 3 || len(res.Diff.Added) != 2 || len(res.Diff.Removed) != 0 || res.Diff.Unchanged != 0 {
		t.Errorf("result = %+v, want 3 writes, 2 added", res)
	}
	if got := addrsOf(res.Diff.Added); !slices.Equal(got, []string{"10.0.0.1:8000", "10.0.0.2:8000"}) {
		t.Errorf("added = %v", got)
	}
	if c := h.sink.Counters(); c != (Counters{Registers: 3, Lists: 1}) {
		t.Errorf("counters = %+v", c)
	}

	// The bridge service: owned meta, one TTL check, passing at once.
	svc, checks, ok := h.fa.Service(testBridgeSvc)
	if !ok {
		t.Fatal("bridge service not registered")
	}
	if svc.Service != consulclient.BridgeServiceName || svc.Meta[consulclient.MetaManagedBy] != consulclient.ManagedByValue || svc.Meta[consulclient.MetaBridgeID] != testBridgeID {
		t.Errorf("bridge service = %+v", svc)
	}
	if len(checks) != 1 || checks[0].ID != testCheckID || checks[0].TTL != "30s" || checks[0].Status != api.HealthPassing {
		t.Errorf("bridge checks = %+v, want one passing 30s TTL check %s", checks, testCheckID)
	}

	// Each server: address, port, tags, meta, and only an alias check.
	for _, addr := range []string{"10.0.0.1:8000", "10.0.0.2:8000"} {
		id := sid(addr)
		svc, checks, ok := h.fa.Service(id)
		if !ok {
			t.Fatalf("%s not registered", id)
		}
		ap := netip.MustParseAddrPort(addr)
		if svc.Service != "django" || svc.Address != ap.Addr().String() || svc.Port != int(ap.Port()) || !slices.Equal(svc.Tags, []string{"lab"}) {
			t.Errorf("%s = %+v", id, svc)
		}
		wantMeta := map[string]string{
			consulclient.MetaManagedBy: consulclient.ManagedByValue, consulclient.MetaBridgeID: testBridgeID, consulclient.MetaChecks: "alias/1m0s",
			consulclient.MetaInterface: "eth0", consulclient.MetaSourceAddress: ap.Addr().String() + ":9999",
		}
		if fmt.Sprint(svc.Meta) != fmt.Sprint(wantMeta) {
			t.Errorf("%s meta = %v, want %v", id, svc.Meta, wantMeta)
		}
		if len(checks) != 1 || checks[0].ID != id+":alias" || checks[0].Alias != testBridgeSvc || checks[0].DeregAfter != "1m0s" || checks[0].TTL != "" {
			t.Errorf("%s checks = %+v, want one alias check on %s with DeregisterCriticalServiceAfter 1m0s", id, checks, testBridgeSvc)
		}
	}
}

// TestAgentServerChecks checks the checks on each server next to the alias
// check: the bridge's app check when it runs app checks, and never a check
// the agent would run itself, not for the deprecated consul_check either
// (the bridge runs that check: cmd/bridge maps it to app_check).
func TestAgentServerChecks(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*Config)
		wantApp   bool
		wantPrint string
	}{
		{"none", func(*Config) {}, false, "alias/1m0s"},
		{"deprecated consul_check tcp", func(c *Config) { c.Check = consulclient.CheckTCP }, false, "alias/1m0s"},
		{"deprecated consul_check http", func(c *Config) { c.Check = consulclient.CheckHTTP; c.HTTPPath = "/health" }, false, "alias/1m0s"},
		{"app check", func(c *Config) { c.AppCheck = true }, true, "alias/1m0s+app"},
		{"app check and consul_check", func(c *Config) { c.AppCheck = true; c.Check = consulclient.CheckHTTP }, true, "alias/1m0s+app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withConfig(tt.mod))
			h.apply(snap(1, "10.0.0.1:8000"))
			id := sid("10.0.0.1:8000")
			svc, checks, _ := h.fa.Service(id)
			want := 1
			if tt.wantApp {
				want = 2
			}
			if len(checks) != want || checks[0].Alias != testBridgeSvc {
				t.Fatalf("checks = %+v, want the alias check (and the app check: %v)", checks, tt.wantApp)
			}
			for _, c := range checks {
				if c.TCP != "" || c.HTTP != "" {
					t.Errorf("check %s is run by the agent: %+v", c.ID, c)
				}
			}
			if tt.wantApp {
				c := checks[1]
				if c.ID != id+":app" || c.Name != AppCheckName || c.TTL != "87600h0m0s" || c.DeregAfter != "" || c.Notes == "" {
					t.Errorf("app check = %+v, want %s:app, a 87600h TTL, notes, no DeregisterCriticalServiceAfter", c, id)
				}
			}
			if svc.Meta[consulclient.MetaChecks] != tt.wantPrint {
				t.Errorf("checks fingerprint = %q, want %q", svc.Meta[consulclient.MetaChecks], tt.wantPrint)
			}
		})
	}
}

// TestAgentHeartbeatEveryRound checks that every Apply after the first makes
// exactly one TTL update, marking the check passing with a note.
func TestAgentHeartbeatEveryRound(t *testing.T) {
	h := newHarness(t)
	h.apply(snap(1, "10.0.0.1:8000"))
	if n := h.fa.Count(opTTL); n != 0 {
		t.Fatalf("first round made %d TTL updates, want 0 (the registration sets it passing)", n)
	}
	for round := uint64(2); round <= 5; round++ {
		h.clk.Advance(10 * time.Second)
		h.apply(snap(round, "10.0.0.1:8000", "10.0.0.2:8000"))
		if got, want := h.fa.Count(opTTL), int(round-1); got != want {
			t.Fatalf("after round %d: %d TTL updates, want %d", round, got, want)
		}
		c, _ := h.fa.Check(testCheckID)
		if want := fmt.Sprintf("round %d: 2 servers", round); c.Status != api.HealthPassing || c.Output != want {
			t.Errorf("round %d: check = %s %q, want passing %q", round, c.Status, c.Output, want)
		}
	}
	if got := h.sink.Counters().TTLUpdates; got != 4 {
		t.Errorf("Counters.TTLUpdates = %d, want 4", got)
	}
	for _, id := range h.fa.CallIDs(opTTL) {
		if id != testCheckID {
			t.Errorf("TTL update of %q, want only %q", id, testCheckID)
		}
	}
}

// TestAgentQuietRound checks that a round with nothing to change costs one
// write, the TTL update.
func TestAgentQuietRound(t *testing.T) {
	h := newHarness(t)
	s := snap(1, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")
	h.apply(s)
	h.fa.Reset()
	h.clk.Advance(10 * time.Second) // less than Resync
	s.Round = 2
	res := h.apply(s)
	if res.Writes != 1 || !res.Diff.Empty() || res.Diff.Unchanged != 3 {
		t.Errorf("quiet round = %+v, want 1 write, empty diff, 3 unchanged", res)
	}
	if calls := h.fa.Calls(); len(calls) != 1 || calls[0].Op != opTTL {
		t.Errorf("quiet round calls = %+v, want one TTL update", calls)
	}
}

// TestAgentResync checks anti-entropy: a service deleted behind the bridge's
// back comes back on the first round after Resync, not before; foreign
// services with the same service name are never touched, not on Close
// either.
func TestAgentResync(t *testing.T) {
	h := newHarness(t)
	foreign := []api.AgentService{
		{ID: "django-other", Service: "django", Address: "10.0.0.9", Port: 8000},
		{ID: "django-other-bridge", Service: "django", Address: "10.0.0.8", Port: 8000,
			Meta: map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, consulclient.MetaBridgeID: "host-2"}},
		{ID: "django-hand-made", Service: "django", Address: "10.0.0.7", Port: 8000,
			Meta: map[string]string{consulclient.MetaBridgeID: testBridgeID}},
		{ID: "django-other-tool", Service: "django", Address: "10.0.0.6", Port: 8000,
			Meta: map[string]string{consulclient.MetaManagedBy: "someone", consulclient.MetaBridgeID: testBridgeID}},
	}
	for _, s := range foreign {
		h.fa.Put(s)
	}
	s := snap(1, "10.0.0.1:8000", "10.0.0.2:8000")
	h.apply(s)

	gone := sid("10.0.0.1:8000")
	if !h.fa.Delete(gone) {
		t.Fatal("nothing to delete")
	}
	h.clk.Advance(h.cfg.Resync - time.Second)
	s.Round = 2
	if res := h.apply(s); res.Writes != 1 || h.fa.Count(opList) != 1 {
		t.Fatalf("round before resync = %+v, %d lists; want 1 write and no new read", res, h.fa.Count(opList))
	}
	if _, _, ok := h.fa.Service(gone); ok {
		t.Fatal("restored before Resync passed")
	}
	h.clk.Advance(time.Second)
	s.Round = 3
	h.fa.Reset()
	res := h.apply(s)
	if h.fa.Count(opList) != 1 || !slices.Equal(h.fa.CallIDs(opRegister), []string{gone}) {
		t.Errorf("resync round calls = %+v, want a read and the re-registration of %s", h.fa.Calls(), gone)
	}
	if res.Writes != 2 || !slices.Equal(addrsOf(res.Diff.Added), []string{"10.0.0.1:8000"}) || res.Diff.Unchanged != 1 {
		t.Errorf("resync round = %+v, want 2 writes, 10.0.0.1 added, 1 unchanged", res)
	}
	if _, _, ok := h.fa.Service(gone); !ok {
		t.Error("not restored on the resync round")
	}

	if err := h.sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.fa.Calls() {
		if strings.HasPrefix(c.ID, "django-other") || strings.HasPrefix(c.ID, "django-hand") {
			t.Errorf("foreign service touched: %+v", c)
		}
	}
	want := []string{"django-hand-made", "django-other", "django-other-bridge", "django-other-tool"}
	if got := h.fa.IDs(); !slices.Equal(got, want) {
		t.Errorf("after Close the agent holds %v, want only the foreign %v", got, want)
	}
}

// TestAgentRestart checks recovery from an agent that lost everything: the
// TTL update fails as "check missing", and the same Apply re-registers the
// bridge service and every server.
func TestAgentRestart(t *testing.T) {
	h := newHarness(t)
	s := snap(1, "10.0.0.1:8000", "10.0.0.2:8000")
	h.apply(s)
	h.fa.Restart()
	h.fa.Reset()
	h.clk.Advance(10 * time.Second)
	s.Round = 2
	res := h.apply(s)

	var got []string
	for _, c := range h.fa.Calls() {
		got = append(got, string(c.Op)+" "+c.ID)
	}
	if len(got) != 5 || got[0] != "ttl "+testCheckID || got[1] != "register "+testBridgeSvc || !strings.HasPrefix(got[2], "list ") {
		t.Fatalf("calls = %q, want failed ttl, bridge register, list, 2 registers", got)
	}
	if res.Writes != 3 || len(res.Diff.Added) != 2 {
		t.Errorf("result = %+v, want 3 writes (bridge + 2 servers), 2 added", res)
	}
	want := []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000"), testBridgeSvc}
	if ids := h.fa.IDs(); !slices.Equal(ids, want) {
		t.Errorf("agent holds %v, want %v", ids, want)
	}
	if c, ok := h.fa.Check(testCheckID); !ok || c.Status != api.HealthPassing {
		t.Errorf("heartbeat check = %+v, %v; want passing", c, ok)
	}
	if n := len(h.logs.Grep("agent lost the bridge heartbeat check")); n != 1 {
		t.Errorf("%d warnings about the lost check, want 1", n)
	}
	// The next round is quiet again.
	s.Round = 3
	if res := h.apply(s); res.Writes != 1 {
		t.Errorf("round after recovery = %+v, want 1 write", res)
	}
}

// TestAgentTTLErrorNotMissing checks that a TTL failure other than a missing
// check fails the round without re-registering anything.
func TestAgentTTLErrorNotMissing(t *testing.T) {
	h := newHarness(t)
	s := snap(1, "10.0.0.1:8000")
	h.apply(s)
	h.fa.Reset()
	h.fa.FailNext(opTTL, 1, api.StatusError{Code: 403, Body: "Permission denied"})
	s.Round = 2
	_, err := h.sink.Apply(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "update ttl of check "+testCheckID) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Apply = %v, want the TTL update error", err)
	}
	if n := len(h.fa.Calls()); n != 1 {
		t.Errorf("calls = %+v, want only the TTL update", h.fa.Calls())
	}
	s.Round = 3
	if res := h.apply(s); res.Writes != 1 || h.fa.Count(opRegister) != 0 {
		t.Errorf("next round = %+v, registers %d; want the one TTL write", res, h.fa.Count(opRegister))
	}
}

// TestAgentRemovesOnlyWhatLeft checks that an endpoint leaving the snapshot
// is deregistered by its own ID, and nothing else.
func TestAgentRemovesOnlyWhatLeft(t *testing.T) {
	h := newHarness(t)
	h.apply(snap(1, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"))
	h.fa.Reset()
	res := h.apply(snap(2, "10.0.0.1:8000", "10.0.0.3:8000"))
	if got := h.fa.CallIDs(opDeregister); !slices.Equal(got, []string{sid("10.0.0.2:8000")}) {
		t.Errorf("deregistered %v, want only %s", got, sid("10.0.0.2:8000"))
	}
	if h.fa.Count(opRegister) != 0 {
		t.Errorf("registered %v, want nothing", h.fa.CallIDs(opRegister))
	}
	if res.Writes != 2 || len(res.Diff.Removed) != 1 || res.Diff.Unchanged != 2 || len(res.Diff.Added) != 0 {
		t.Fatalf("result = %+v, want 2 writes, 1 removed, 2 unchanged", res)
	}
	if got, want := res.Diff.Removed[0], ep("10.0.0.2:8000"); got != want {
		t.Errorf("removed %+v, want %+v (rebuilt from the service)", got, want)
	}
	want := []string{sid("10.0.0.1:8000"), sid("10.0.0.3:8000"), testBridgeSvc}
	if ids := h.fa.IDs(); !slices.Equal(ids, want) {
		t.Errorf("agent holds %v, want %v", ids, want)
	}
}

// TestAgentLeftoversOfEarlierRun checks that services this bridge ID owns
// from an earlier run are found on the first read and removed when not
// desired, and kept without a write when desired.
func TestAgentLeftoversOfEarlierRun(t *testing.T) {
	prev := newHarness(t)
	prev.apply(snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))

	h := newHarness(t, withFake(prev.fa)) // same agent, new process
	h.fa.Reset()
	res := h.apply(snap(1, "10.0.0.1:8000"))
	if got := h.fa.CallIDs(opRegister); !slices.Equal(got, []string{testBridgeSvc}) {
		t.Errorf("registered %v, want only the bridge service", got)
	}
	if got := h.fa.CallIDs(opDeregister); !slices.Equal(got, []string{sid("10.0.0.2:8000")}) {
		t.Errorf("deregistered %v, want the leftover %s", got, sid("10.0.0.2:8000"))
	}
	if res.Writes != 2 || res.Diff.Unchanged != 1 {
		t.Errorf("result = %+v, want 2 writes, 1 unchanged", res)
	}
}

// TestAgentWriteFailures checks what a failing write does to the rest of
// its round: a transport error stops it (the rest is not tried, removals
// included), an HTTP status error concerns one service only. Errors name the
// operation and the service ID. A refusal for Consul's rate limit stops the
// round too (back-pressure) and is counted.
func TestAgentWriteFailures(t *testing.T) {
	tests := []struct {
		name        string
		err         error // injected on the second new server
		wantTried   []string
		wantMsg     []string
		wantNotTry  bool
		wantDeregs  int
		wantWrites  int
		wantAdded   []string
		wantInError int
		wantLimits  uint64 // refusals for the rate limit counted
	}{
		{
			name:       "transport error stops the round",
			err:        nil,
			wantTried:  []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000")},
			wantMsg:    []string{"consul register " + sid("10.0.0.2:8000") + " (10.0.0.2:8000)", "connection refused", errNotTried.Error(), "3 of 5 writes failed"},
			wantNotTry: true,
			wantDeregs: 0,
			wantWrites: 2, // TTL + 10.0.0.1
			wantAdded:  []string{"10.0.0.1:8000"},
		},
		{
			name:       "rate limit is back-pressure",
			err:        api.StatusError{Code: 429, Body: "rate limit exceeded, try again later or against a different server"},
			wantTried:  []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000")},
			wantMsg:    []string{"consul register " + sid("10.0.0.2:8000") + " (10.0.0.2:8000)", "rate limit exceeded", errNotTried.Error(), "3 of 5 writes failed"},
			wantNotTry: true,
			wantDeregs: 0,
			wantWrites: 2, // TTL + 10.0.0.1
			wantAdded:  []string{"10.0.0.1:8000"},
			wantLimits: 1,
		},
		{
			name:       "status error concerns one service",
			err:        api.StatusError{Code: 400, Body: "Invalid service address"},
			wantTried:  []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000"), sid("10.0.0.3:8000"), sid("10.0.0.4:8000")},
			wantMsg:    []string{"consul register " + sid("10.0.0.2:8000") + " (10.0.0.2:8000)", "Invalid service address", "1 of 5 writes failed"},
			wantDeregs: 1,
			wantWrites: 5, // TTL + 3 servers + 1 removal
			wantAdded:  []string{"10.0.0.1:8000", "10.0.0.3:8000", "10.0.0.4:8000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.Agent.Parallel = 1 }))
			h.apply(snap(1, "10.0.0.9:8000"))
			h.fa.Reset()
			h.fa.FailOn(opRegister, sid("10.0.0.2:8000"), tt.err)
			res, err := h.sink.Apply(context.Background(), snap(2, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"))
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			if got := errors.Is(err, errNotTried); got != tt.wantNotTry {
				t.Errorf("errors.Is(err, errNotTried) = %v, want %v", got, tt.wantNotTry)
			}
			if got := h.fa.CallIDs(opRegister); !slices.Equal(got, tt.wantTried) {
				t.Errorf("tried to register %v, want %v", got, tt.wantTried)
			}
			if got := h.fa.Count(opDeregister); got != tt.wantDeregs {
				t.Errorf("%d deregistrations, want %d", got, tt.wantDeregs)
			}
			if res.Writes != tt.wantWrites || !slices.Equal(addrsOf(res.Diff.Added), tt.wantAdded) {
				t.Errorf("result = %+v, want %d writes, added %v", res, tt.wantWrites, tt.wantAdded)
			}
			if got := h.sink.Counters().RateLimited; got != tt.wantLimits {
				t.Errorf("Counters().RateLimited = %d, want %d", got, tt.wantLimits)
			}

			// The next round writes exactly what is still missing.
			h.fa.Reset()
			res = h.apply(snap(3, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"))
			wantReg := 4 - len(tt.wantAdded)
			wantDereg := 1 - tt.wantDeregs
			if h.fa.Count(opRegister) != wantReg || h.fa.Count(opDeregister) != wantDereg || res.Writes != 1+wantReg+wantDereg {
				t.Errorf("next round: calls %+v, result %+v; want %d registers, %d deregisters", h.fa.Calls(), res, wantReg, wantDereg)
			}
		})
	}
}

// TestAgentListFailure checks that a failed read fails the round before
// any server write, and that the next round reads again.
func TestAgentListFailure(t *testing.T) {
	h := newHarness(t)
	h.fa.FailNext(opList, 1, nil)
	res, err := h.sink.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	if err == nil || !strings.Contains(err.Error(), `list services owned by bridge "host-1"`) {
		t.Fatalf("Apply = %v, want the list error", err)
	}
	if res.Writes != 1 || !slices.Equal(h.fa.CallIDs(opRegister), []string{testBridgeSvc}) {
		t.Errorf("result %+v, registers %v; want only the bridge service", res, h.fa.CallIDs(opRegister))
	}
	h.fa.Reset()
	res = h.apply(snap(2, "10.0.0.1:8000"))
	if h.fa.Count(opList) != 1 || res.Writes != 2 {
		t.Errorf("next round: calls %+v, result %+v; want a read, TTL and 1 register", h.fa.Calls(), res)
	}
}

// TestAgentProgress checks that under sink.WithProgress every write is
// reported once, while Apply runs, and the reports add up to Result.Writes.
func TestAgentProgress(t *testing.T) {
	h := newHarness(t)
	var applying atomic.Bool
	var reported, outside atomic.Int64
	ctx := sink.WithProgress(context.Background(), func(n int) {
		if n != 1 {
			t.Errorf("progress(%d), want one call per write", n)
		}
		if !applying.Load() {
			outside.Add(1)
		}
		reported.Add(int64(n))
	})
	rounds := []struct {
		name   string
		before func()
		snap   endpoint.Snapshot
		writes int
	}{
		{"first", nil, snap(1, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"), 4},
		{"quiet", nil, snap(2, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"), 1},
		{"change", nil, snap(3, "10.0.0.1:8000", "10.0.0.4:8000"), 4},
		{"restart", h.fa.Restart, snap(4, "10.0.0.1:8000", "10.0.0.4:8000"), 3},
		// Removal of a server someone else already deleted: the PUT is made
		// and answered 404.
		{"removal of a deleted service", func() { h.fa.Delete(sid("10.0.0.4:8000")) }, snap(5, "10.0.0.1:8000"), 2},
	}
	for _, r := range rounds {
		if r.before != nil {
			r.before()
		}
		reported.Store(0)
		applying.Store(true)
		res, err := h.sink.Apply(ctx, r.snap)
		applying.Store(false)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if res.Writes != r.writes || reported.Load() != int64(res.Writes) {
			t.Errorf("%s: Result.Writes %d, progress reported %d; want %d both", r.name, res.Writes, reported.Load(), r.writes)
		}
	}
	if outside.Load() != 0 {
		t.Errorf("%d progress reports outside Apply", outside.Load())
	}
	// The counters agree: 14 writes in all.
	if c := h.sink.Counters(); c.Registers+c.Deregisters+c.TTLUpdates != 14 || c.Deregisters != 3 {
		t.Errorf("counters = %+v, want 14 writes, 3 of them deregistrations", c)
	}
}

// TestAgentLongRoundKeepsHeartbeat checks that a batch long enough for half
// the TTL to pass refreshes the heartbeat in the middle, and counts it.
func TestAgentLongRoundKeepsHeartbeat(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.Agent.Parallel = 1 }))
	h.apply(snap(1))
	h.fa.Reset()
	// Every registration takes TTL/100 of (fake) time: 128 of them span
	// 1.28 TTL, and the check would lapse without refreshes.
	h.fa.onCall = func(op fakeOp, _ string) {
		if op == opRegister {
			h.clk.Advance(h.cfg.Agent.TTL / 100)
		}
	}
	var addrs []string
	for i := range 128 {
		addrs = append(addrs, fmt.Sprintf("10.0.%d.%d:8000", i/100, i%100+1))
	}
	res := h.apply(snap(2, addrs...))
	// TTL at the start, then after registrations 64 (0.64 TTL since) and 128
	// (0.64 TTL since the previous) the ticker finds half the TTL passed.
	if got := h.fa.Count(opTTL); got != 3 {
		t.Errorf("%d TTL updates in a 1.28 TTL round, want 3", got)
	}
	if res.Writes != 128+3 {
		t.Errorf("Writes = %d, want %d (128 registers + 3 TTL updates)", res.Writes, 128+3)
	}
}

// TestAgentClose checks what Close does for each OnExit.
func TestAgentClose(t *testing.T) {
	tests := []struct {
		onExit    string
		wantIDs   []string // left on the agent
		wantDereg []string
	}{
		{consulclient.OnExitDeregister, []string{"django-foreign"}, []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000"), sid("10.0.0.3:8000"), testBridgeSvc}},
		{consulclient.OnExitKeep, []string{"django-10.0.0.1-8000", "django-10.0.0.2-8000", "django-10.0.0.3-8000", "django-foreign", testBridgeSvc}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.onExit, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.OnExit = tt.onExit }))
			h.fa.Put(api.AgentService{ID: "django-foreign", Service: "django", Address: "10.0.0.9", Port: 8000})
			h.apply(snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
			// Owned by this bridge ID but unknown to this process (an
			// earlier run's): Close reads the agent and removes it too.
			h.fa.Put(api.AgentService{ID: sid("10.0.0.3:8000"), Service: "django", Address: "10.0.0.3", Port: 8000,
				Meta: map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, consulclient.MetaBridgeID: testBridgeID}})
			h.fa.Reset()
			if err := h.sink.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := h.fa.CallIDs(opDeregister); !sameStrings(got, tt.wantDereg) {
				t.Errorf("deregistered %v, want %v (bridge service last)", got, tt.wantDereg)
			}
			if got := h.fa.IDs(); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("agent holds %v, want %v", got, tt.wantIDs)
			}
			if tt.onExit == consulclient.OnExitKeep && len(h.fa.Calls()) != 0 {
				t.Errorf("keep: calls %+v, want none", h.fa.Calls())
			}
		})
	}
}

// TestAgentCloseUnreachable checks that Close gives up on the first
// transport error instead of trying every service, and says what failed.
func TestAgentCloseUnreachable(t *testing.T) {
	h := newHarness(t)
	h.apply(snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
	h.fa.Reset()
	h.fa.FailNext(opList, -1, nil)
	h.fa.FailNext(opDeregister, -1, nil)
	err := h.sink.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "consul list services") || !strings.Contains(err.Error(), "consul deregister "+sid("10.0.0.1:8000")) {
		t.Fatalf("Close = %v, want the list and first deregister errors", err)
	}
	// One server (the first, from what it knew) and then the bridge service.
	if got, want := h.fa.CallIDs(opDeregister), []string{sid("10.0.0.1:8000"), testBridgeSvc}; !slices.Equal(got, want) {
		t.Errorf("tried to deregister %v, want %v", got, want)
	}
}

// TestAgentPlan checks that Plan reads and reports without writing.
func TestAgentPlan(t *testing.T) {
	h := newHarness(t)
	h.apply(snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
	h.fa.Reset()
	d, err := h.sink.Plan(context.Background(), snap(2, "10.0.0.2:8000", "10.0.0.3:8000"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(addrsOf(d.Added), []string{"10.0.0.3:8000"}) || !slices.Equal(addrsOf(d.Removed), []string{"10.0.0.1:8000"}) || d.Unchanged != 1 {
		t.Errorf("Plan = %+v", d)
	}
	if calls := h.fa.Calls(); len(calls) != 1 || calls[0].Op != opList {
		t.Errorf("Plan calls = %+v, want one read", calls)
	}
}

// redacting hides secret in error messages, as the client does (its
// errors still unwrap to the original).
func redacting(secret string) func(error) error {
	return func(err error) error {
		if err == nil || !strings.Contains(err.Error(), secret) {
			return err
		}
		return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[redacted]"), err: err}
	}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// TestAgentTokenNeverShown checks that the ACL token, should an error carry
// it, appears in no returned error and no log line, at debug level, on any
// path: register, TTL, list, deregister, Close, and the lock.
func TestAgentTokenNeverShown(t *testing.T) {
	const tok = "s3cr3t-0f-the-acl"
	leak := func(what string) error {
		return fmt.Errorf("%s: Put \"http://127.0.0.1:8500/v1/agent?token=%s\": connection reset", what, tok)
	}
	h := newHarness(t, withLock(), withRedact(redacting(tok)))
	h.lk.FailLocks(leak("lock"))
	h.lk.FailUnlocks(leak("unlock"))

	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the lock
	check(h.sink.Start(ctx))
	// The first Lock fails (logged), the loop sleeps consulclient.LockRetryMin, then waits.
	if err := h.clk.WaitForTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(consulclient.LockRetryMin)
	<-h.lk.Waiting
	h.lk.Grant <- struct{}{}
	consultest.WaitFor(t, "leadership", h.sink.Leader)

	h.fa.FailNext(opRegister, 1, leak("register bridge"))
	_, err := h.sink.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	check(err)
	h.fa.FailNext(opList, 1, leak("list"))
	_, err = h.sink.Apply(context.Background(), snap(2, "10.0.0.1:8000"))
	check(err)
	h.fa.FailNext(opRegister, 1, api.StatusError{Code: 403, Body: "token " + tok + " lacks service:write"})
	_, err = h.sink.Apply(context.Background(), snap(3, "10.0.0.1:8000"))
	check(err)
	h.fa.FailNext(opTTL, 1, leak("ttl"))
	_, err = h.sink.Apply(context.Background(), snap(4, "10.0.0.1:8000"))
	check(err)
	h.apply(snap(5, "10.0.0.1:8000", "10.0.0.2:8000"))
	h.fa.FailNext(opDeregister, 1, leak("deregister"))
	_, err = h.sink.Apply(context.Background(), snap(6, "10.0.0.1:8000"))
	check(err)
	// Losing the lock: Unlock fails after a loss (logged at debug).
	h.lk.Revoke()
	consultest.WaitFor(t, "lock loss", func() bool { return h.lk.Unlocks() == 1 })
	h.fa.FailNext(opList, -1, leak("list on close"))
	h.fa.FailNext(opDeregister, -1, leak("deregister on close"))
	check(h.sink.Close(context.Background()))

	if len(errs) != 6 {
		t.Errorf("got %d errors, want 6 (5 applies and Close): %v", len(errs), errs)
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), tok) {
			t.Errorf("error leaks the token: %v", err)
		}
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("error %q does not show it was redacted (did the fake's error reach it?)", err)
		}
	}
	lines := h.logs.Lines()
	if len(h.logs.Grep("[redacted]")) < 2 {
		t.Errorf("want the lock's failure and release logged redacted; log:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if strings.Contains(l, tok) {
			t.Errorf("log line leaks the token: %s", l)
		}
	}
}
