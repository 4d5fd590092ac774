package runner_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
)

// fakeChecker is the app check scheduler as the loop sees it: the test
// sets each server's health (flip) and the fake signals Changed, as
// internal/checker does after a transition.
type fakeChecker struct {
	changed chan struct{}

	mu       sync.Mutex
	targets  [][]string // every SetTargets call's addresses
	health   map[netip.AddrPort]endpoint.Health
	decorate int // Decorate calls
}

func newFakeChecker() *fakeChecker {
	return &fakeChecker{changed: make(chan struct{}, 1), health: map[netip.AddrPort]endpoint.Health{}}
}

func (c *fakeChecker) SetTargets(eps []endpoint.Endpoint) {
	var addrs []string
	for _, e := range eps {
		addrs = append(addrs, e.Addr.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.targets = append(c.targets, addrs)
}

// Decorate gives each endpoint the health flip set, pending when none was
// (a server not yet checked), as internal/checker does.
func (c *fakeChecker) Decorate(s endpoint.Snapshot) endpoint.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decorate++
	out := s
	out.Endpoints = slices.Clone(s.Endpoints)
	for i, e := range out.Endpoints {
		h, ok := c.health[e.Addr]
		if !ok {
			h = endpoint.Pending
		}
		out.Endpoints[i].Check = endpoint.Check{State: h, Output: "HTTP GET /healthz: " + h.String(), Since: t0}
	}
	return out
}

func (c *fakeChecker) Changed() <-chan struct{} { return c.changed }

// flip sets the health of addr without signalling; signal signals.
func (c *fakeChecker) flip(addr string, h endpoint.Health) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health[netip.MustParseAddrPort(addr)] = h
}

func (c *fakeChecker) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeChecker) targetCalls() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.targets)
}

// fakeInventory records what the loop tells the Inventory.
type fakeInventory struct {
	mu     sync.Mutex
	events []string // "round <n> <health...>", "arrived <n> <health...>", "failed"
}

func (f *fakeInventory) record(kind string, s endpoint.Snapshot) {
	ev := fmt.Sprintf("%s %d", kind, s.Round)
	for _, e := range s.Endpoints {
		ev += " " + e.Check.State.String()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
}

func (f *fakeInventory) Round(s endpoint.Snapshot)   { f.record("round", s) }
func (f *fakeInventory) Arrived(s endpoint.Snapshot) { f.record("arrived", s) }
func (f *fakeInventory) Failed(error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "failed")
}

func (f *fakeInventory) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// TestHealthReachesSinks: every snapshot the sinks and the Inventory get
// carries the checker's verdicts; a transition between rounds is handed
// over at once with the last completed round's number; one during a round
// rides on the round's own snapshot, with no post of its own; a failed
// round hands the checker the unchanged held set.
func TestHealthReachesSinks(t *testing.T) {
	const a, b = "10.0.0.1:8000", "10.0.0.2:8000"
	ck := newFakeChecker()
	h := newHarness(t,
		roundScript{servers: []string{a, b}},
		roundScript{servers: []string{a, b}, during: func() { ck.flip(b, endpoint.Failing); ck.signal() }},
		roundScript{err: errRefused},
		roundScript{servers: []string{a}},
	)
	s := newSink("fake")
	inv := &fakeInventory{}
	cfg := h.config(s)
	cfg.Checker, cfg.Inventory = ck, inv
	h.start(cfg)

	expect := func(what string, round uint64, addrs, health []string) {
		t.Helper()
		c := s.nextApply(t)
		if c.round != round || !slices.Equal(c.addrs, addrs) || !slices.Equal(c.health, health) {
			t.Fatalf("%s: apply round %d %v %v, want round %d %v %v", what, c.round, c.addrs, c.health, round, addrs, health)
		}
	}
	h.d.nextRound(t)
	expect("round 1", 1, []string{a, b}, []string{"pending", "pending"})
	h.idle()

	ck.flip(a, endpoint.Ready)
	ck.signal()
	expect("transition after round 1", 1, []string{a, b}, []string{"ready", "pending"})

	h.clock.Advance(10 * time.Second) // round 2: b turns failing while it runs
	h.d.nextRound(t)
	expect("round 2", 2, []string{a, b}, []string{"ready", "failing"})
	h.idle()
	// Had round 2's transition been posted again, this apply would be a
	// second round-2 one with the same health.
	ck.flip(b, endpoint.Ready)
	ck.signal()
	expect("transition after round 2", 2, []string{a, b}, []string{"ready", "ready"})

	h.clock.Advance(10 * time.Second) // round 3 fails
	h.d.nextRound(t)
	h.idle()
	ck.flip(a, endpoint.Failing)
	ck.signal()
	expect("transition after a failed round", 2, []string{a, b}, []string{"failing", "ready"})

	h.clock.Advance(10 * time.Second) // round 4: b missed one of two rounds, still held
	h.d.nextRound(t)
	expect("round 4", 4, []string{a, b}, []string{"failing", "ready"})
	h.idle()
	h.stop()

	if got := metricValue(t, h, "health_snapshots_total"); got != 3 {
		t.Errorf("health_snapshots_total = %v, want 3", got)
	}
	ab := []string{a, b}
	if got, want := ck.targetCalls(), [][]string{ab, ab, ab, ab}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("SetTargets calls %v, want the held set after each of the 4 rounds %v", got, want)
	}
	wantInv := []string{"round 1 pending pending", "arrived 1 ready pending", "round 2 ready failing", "arrived 2 ready ready",
		"failed", "arrived 2 failing ready", "round 4 failing ready"}
	if got := inv.list(); !slices.Equal(got, wantInv) {
		t.Errorf("inventory\n got %q\nwant %q", got, wantInv)
	}
}

// TestHealthRemovedServerLeavesTargets: a server removed after its
// missed rounds is no longer among the checker's targets.
func TestHealthRemovedServerLeavesTargets(t *testing.T) {
	const a, b = "10.0.0.1:8000", "10.0.0.2:8000"
	ck := newFakeChecker()
	h := newHarness(t, roundScript{servers: []string{a, b}}, roundScript{servers: []string{a}})
	cfg := h.config(newSink("fake"))
	cfg.Checker = ck
	h.start(cfg)
	for range 3 {
		h.d.nextRound(t)
		h.idle()
		h.clock.Advance(10 * time.Second)
	}
	h.d.nextRound(t)
	h.idle()
	h.stop()
	got := ck.targetCalls()
	if len(got) < 3 || !slices.Equal(got[0], []string{a, b}) || !slices.Equal(got[1], []string{a, b}) || !slices.Equal(got[2], []string{a}) {
		t.Errorf("SetTargets calls %v, want [a b], [a b] (one miss), then [a] (missed_rounds 2)", got)
	}
}

// TestHealthEarlyAdds: servers added as they arrive are the checker's
// targets at once and reach the sinks pending.
func TestHealthEarlyAdds(t *testing.T) {
	h, d := newNotifyHarness(t)
	ck := newFakeChecker()
	s := newSink("fake")
	cfg := h.config(s)
	cfg.Checker = ck
	h.start(cfg)
	ck.flip("10.0.0.1:8000", endpoint.Ready)
	firstRound(t, h, d, []*fakeSink{s}, "10.0.0.1:8000")

	d.play(t, notifyStep{arrive: []string{"10.0.0.2:8000"}})
	h.waitTimers(1) // the add window
	h.clock.Advance(runner.DefaultAddWindow)
	c := s.nextApply(t)
	if c.round != 2 || !slices.Equal(c.addrs, []string{"10.0.0.1:8000", "10.0.0.2:8000"}) || !slices.Equal(c.health, []string{"ready", "pending"}) {
		t.Fatalf("early apply = %+v, want round 2 with 10.0.0.1 ready and the new 10.0.0.2 pending", c)
	}
	if got := ck.targetCalls(); len(got) != 2 || !slices.Equal(got[1], []string{"10.0.0.1:8000", "10.0.0.2:8000"}) {
		t.Fatalf("SetTargets calls %v, want the round 1 set, then it with the early add", got)
	}
	d.play(t, notifyStep{end: true})
	s.nextApply(t)
	h.idle()
	h.stop()
}

// TestHealthDryRunPostsNoTransition: --dry-run's output is one plan per
// round; a transition is not handed over between rounds (the Inventory
// gets each round's decorated snapshot).
func TestHealthDryRunPostsNoTransition(t *testing.T) {
	ck := newFakeChecker()
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	inv := &fakeInventory{}
	cfg := h.config()
	cfg.DryRun, cfg.DryRunOut, cfg.Checker, cfg.Inventory = true, &syncBuffer{}, ck, inv
	h.start(cfg)
	h.d.nextRound(t)
	h.idle()
	for range 2 { // the signal stays pending through two idle waits
		ck.flip("10.0.0.1:8000", endpoint.Ready)
		ck.signal()
		h.clock.Advance(10 * time.Second)
		h.d.nextRound(t)
		h.idle()
	}
	h.stop()
	if got, want := inv.list(), []string{"round 1 pending", "round 2 ready", "round 3 ready"}; !slices.Equal(got, want) {
		t.Errorf("inventory %q, want %q (no post between rounds)", got, want)
	}
	if got := metricValue(t, h, "health_snapshots_total"); got != 0 {
		t.Errorf("health_snapshots_total = %v, want 0", got)
	}
}

// TestOnceChecksEachServerOnce: with --once, each server found is checked
// once after the round, and that result alone makes it ready or failing
// in the one apply; ProbeConcurrency bounds the checks in flight.
func TestOnceChecksEachServerOnce(t *testing.T) {
	const a, b, c = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	h := newHarness(t, roundScript{servers: []string{a, b, c}})
	s := newSink("fake")
	cfg := h.config(s)
	cfg.Once = true
	var calls, inFlight, most atomic.Int32
	cfg.ProbeConcurrency = 2
	cfg.Probe = func(_ context.Context, addr netip.AddrPort) endpoint.Check {
		calls.Add(1)
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond) // lets the checks overlap; nothing is judged on time
		inFlight.Add(-1)
		if addr.String() == b {
			return endpoint.Check{State: endpoint.Failing, Output: "HTTP GET /healthz: 503 in 1 ms", Since: t0}
		}
		return endpoint.Check{State: endpoint.Ready, Output: "HTTP GET /healthz: 200 in 1 ms", Since: t0}
	}
	out, err := runner.Run(context.Background(), h.d, cfg)
	if err != nil || out.Found != 3 {
		t.Fatalf("Run = %+v, %v; want 3 found", out, err)
	}
	got := s.nextApply(t)
	if !slices.Equal(got.health, []string{"ready", "failing", "ready"}) {
		t.Errorf("once apply health %v, want [ready failing ready]", got.health)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d checks, want one per server (3)", n)
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d checks in flight at once, want at most ProbeConcurrency 2", m)
	}
	if l := h.logs.lines(t, "info", "app checks (one per server)"); len(l) != 1 || l[0]["ready"] != float64(2) || l[0]["failing"] != float64(1) {
		t.Errorf("summary lines %v, want one with ready 2, failing 1", l)
	}
}
