package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// The leader's loop against fakes of its interfaces: a store of
// observations with blocking reads on the manual clock, a registry in
// memory, a reporter that records. Each test runs in a synctest bubble, so
// that it can tell when the leader is idle (pump).

// fakeStore is a Store: the observations of each bridge, an index bumped
// by every change, and reads that block on the clock.
type fakeStore struct {
	clk     clock.Clock
	mu      sync.Mutex
	obs     map[string]observation.Observation
	index   uint64
	changed chan struct{}
	fail    int // the next reads that fail
	reads   atomic.Int64
}

func newFakeStore(clk clock.Clock) *fakeStore {
	return &fakeStore{clk: clk, obs: map[string]observation.Observation{}, index: 1, changed: make(chan struct{})}
}

func (s *fakeStore) set(o ...observation.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range o {
		s.obs[x.Bridge] = x
	}
	s.bumpLocked()
}

func (s *fakeStore) drop(bridge string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.obs, bridge)
	s.bumpLocked()
}

func (s *fakeStore) bumpLocked() {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeStore) Observations(ctx context.Context, index uint64, wait time.Duration) (Observations, error) {
	s.reads.Add(1)
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.mu.Unlock()
		return Observations{}, errors.New("store unreachable")
	}
	if index > 0 && wait > 0 && s.index <= index {
		ch := s.changed
		s.mu.Unlock()
		t := s.clk.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return Observations{}, ctx.Err()
		}
		t.Stop()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	out := Observations{ByBridge: maps.Clone(s.obs), Holders: map[string]string{}, Index: s.index}
	for b := range s.obs {
		out.Holders[b] = "session-" + b
	}
	return out, nil
}

// fakeRegistry is a Registry holding entries in memory.
type fakeRegistry struct {
	mu       sync.Mutex
	entries  map[string]Entry[spec]
	writes   atomic.Int64
	writeErr error // returned by the next Write
}

func (r *fakeRegistry) Entries(context.Context) (map[string]Entry[spec], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.entries), nil
}

func (r *fakeRegistry) Skip(p Plan[spec]) Plan[spec] { return p }

func (r *fakeRegistry) Write(ctx context.Context, p Plan[spec], current map[string]Entry[spec]) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.writeErr; err != nil {
		r.writeErr = nil
		return 0, err
	}
	n := 0
	put := func(e Entry[spec]) {
		r.entries[e.Key], current[e.Key] = e, e
		n++
	}
	for _, e := range p.Register {
		e.New = false
		put(e)
	}
	for _, e := range slices.Concat(p.Update, p.Pass) {
		e.Passing, e.Since = true, time.Time{}
		put(e)
	}
	for _, e := range p.Fail {
		put(e)
	}
	for _, e := range p.Remove {
		delete(r.entries, e.Key)
		delete(current, e.Key)
		n++
	}
	r.writes.Add(int64(n))
	return n, nil
}

func (r *fakeRegistry) state() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for k, e := range r.entries {
		out[k] = map[bool]string{true: "passing", false: "unobserved"}[e.Passing]
	}
	return out
}

// fakeReport is a Reporter that records.
type fakeReport struct {
	mu     sync.Mutex
	failed []Stage
}

func (r *fakeReport) Failed(s Stage, _ error) {
	r.mu.Lock()
	r.failed = append(r.failed, s)
	r.mu.Unlock()
}
func (r *fakeReport) Succeeded() {}
func (r *fakeReport) Merged(int, time.Duration) {
}
func (r *fakeReport) Describe(ev *zerolog.Event, _ error) *zerolog.Event { return ev }

// logLines collects the leader's log lines (zerolog writes one a call)
// for the test's goroutine, which alone reads them.
type logLines struct {
	ch   chan string
	seen []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.ch <- string(p)
	return len(p), nil
}

// grep returns the lines logged so far that contain s.
func (l *logLines) grep(s string) []string {
	for more := true; more; {
		select {
		case line := <-l.ch:
			l.seen = append(l.seen, line)
		default:
			more = false
		}
	}
	var out []string
	for _, line := range l.seen {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

type leaderHarness struct {
	t     *testing.T
	clk   *clocktest.Clock
	store *fakeStore
	reg   *fakeRegistry
	rep   *fakeReport
	logs  *logLines
	rec   *GuardRecord
	// guarded is the last state OnGuard was told.
	guarded atomic.Pointer[GuardState]
	end     context.CancelCauseFunc
	done    chan struct{}
}

const (
	testGrace   = 10 * time.Second
	testDereg   = time.Minute
	testResync  = 5 * time.Minute
	testMaxWait = 30 * time.Second
)

// lead runs a Leader over a registry holding entries for one term.
func lead(t *testing.T, entries map[string]Entry[spec], obs ...observation.Observation) *leaderHarness {
	t.Helper()
	return leadGuarded(t, GuardConfig{}, entries, obs...)
}

// leadGuarded is lead with the fleet's removal guard tuned as g.
func leadGuarded(t *testing.T, g GuardConfig, entries map[string]Entry[spec], obs ...observation.Observation) *leaderHarness {
	t.Helper()
	clk := clocktest.New(t0)
	h := &leaderHarness{t: t, clk: clk, store: newFakeStore(clk), reg: &fakeRegistry{entries: map[string]Entry[spec]{}},
		rep: &fakeReport{}, logs: &logLines{ch: make(chan string, 10000)}, rec: &GuardRecord{}, done: make(chan struct{})}
	maps.Copy(h.reg.entries, entries)
	h.store.set(obs...)
	l := &Leader[spec]{Store: h.store, Registry: h.reg, Shape: shape{}, Report: h.rep, Clock: clk, Backend: "Store", Target: "catalog",
		Log: zerolog.New(h.logs), Timing: Timing{StartupGrace: testGrace, DeregisterAfter: testDereg, Resync: testResync,
			MaxWait: testMaxWait, RetryMin: time.Second, RetryMax: 5 * time.Second}, Guard: g, Record: h.rec,
		OnGuard: func(st GuardState) { h.guarded.Store(&st) }}
	term, end := context.WithCancelCause(context.Background())
	h.end = end
	go func() { defer close(h.done); l.Run(term) }()
	t.Cleanup(func() { end(nil); <-h.done })
	return h
}

// pump checks cond each time the leader is idle (every goroutine of the
// test's synctest bubble is blocked: synctest.Wait) and, until it holds,
// advances the clock by step: only then, so that each step finds the
// leader waiting on the clock, whatever the machine's load. A step of 0
// never moves the clock: cond must hold once the leader is idle. It gives
// up after 1000 steps.
func (h *leaderHarness) pump(what string, step time.Duration, cond func() bool) {
	h.t.Helper()
	for n := 0; ; n++ {
		synctest.Wait()
		if cond() {
			return
		}
		if step == 0 || n == 1000 {
			h.t.Fatalf("no %s after %d steps of %v; registry %v; logs %v", what, n, step, h.reg.state(), h.logs.grep(""))
		}
		h.clk.Advance(step)
	}
}

func (h *leaderHarness) is(want map[string]string) func() bool {
	return func() bool { return maps.Equal(h.reg.state(), want) }
}

func registered(addrs ...string) map[string]Entry[spec] {
	out := map[string]Entry[spec]{}
	for _, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		out[a] = Entry[spec]{Key: a, Spec: shape{}.Spec(a, ap, Observed{Segments: []string{"s"}, Bridges: 1}), Passing: true}
	}
	return out
}

// TestLeaderLifeCycle: a server nobody observes stays passing through the
// start-up grace, turns unobserved after it and is removed deregister_after
// later; each reconcile that wrote something is logged with its writes.
func TestLeaderLifeCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const x, y, z, w = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
		h := lead(t, registered(x, y, z, w), obsOf("a", "s", x))
		h.pump("observed server kept", 0, func() bool { return h.store.reads.Load() > 0 })
		synctest.Wait() // the leader is done with what it read: the clock has not moved
		if got := h.reg.state(); got[y] != "passing" || got[z] != "passing" || got[w] != "passing" {
			t.Fatalf("within the grace: %v, want all passing", got)
		}
		h.pump("three unobserved", time.Second, h.is(map[string]string{x: "passing", y: "unobserved", z: "unobserved", w: "unobserved"}))
		if d := h.clk.Now().Sub(t0); d < testGrace {
			t.Errorf("unobserved %s after the term began, want after the %s grace", d, testGrace)
		}
		h.pump("three removed", 5*time.Second, h.is(map[string]string{x: "passing"}))
		lines := h.logs.grep("catalog reconciled")
		if len(lines) != 2 || !strings.Contains(lines[0], `"critical":3`) || !strings.Contains(lines[0], `"writes":3`) ||
			!strings.Contains(lines[1], `"removed":3`) || !strings.Contains(lines[1], `"writes":3`) {
			t.Errorf("reconcile lines = %v, want one of 3 turned critical and one of 3 removed, 3 writes each", lines)
		}
	})
}

// TestLeaderTermEnds: when the term ends, the leader stops at once (its
// blocking read is cancelled), writes nothing more and says why.
func TestLeaderTermEnds(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cause error
		want  string
	}{
		{"leadership lost", fmt.Errorf("%w: lock lost", ErrLeadershipLost), `"level":"warn","why":"leadership lost: lock lost","message":"leader: leadership lost; stopped writing the catalog"`},
		{"shutdown", nil, `"level":"info","message":"leader: term ended; stopped writing the catalog"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const x = "10.0.0.1:80"
				h := lead(t, nil, obsOf("a", "s", x))
				h.pump("registered", 0, h.is(map[string]string{x: "passing"}))
				h.pump("blocked in a read", 0, func() bool { return h.clk.Pending() > 0 })
				writes := h.reg.writes.Load()
				h.end(tt.cause)
				select {
				case <-h.done:
				case <-time.After(2 * time.Second):
					t.Fatal("Run did not return when the term ended")
				}
				h.store.set(obsOf("a", "s", x, "10.0.0.2:80"))
				h.clk.Advance(time.Minute)
				if h.reg.writes.Load() != writes {
					t.Errorf("wrote after the term ended")
				}
				if got := h.logs.grep("stopped writing the catalog"); len(got) != 1 || !strings.Contains(got[0], tt.want) {
					t.Errorf("stop lines = %v, want one with %s", got, tt.want)
				}
			})
		})
	}
}

// TestLeaderNotLeader: a write whose guard says another bridge leads ends
// the leader's work at once.
func TestLeaderNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := lead(t, nil)
		h.pump("blocked in a read", 0, func() bool { return h.clk.Pending() > 0 })
		h.reg.mu.Lock()
		h.reg.writeErr = fmt.Errorf("guard: %w", ErrNotLeader)
		h.reg.mu.Unlock()
		h.store.set(obsOf("a", "s", "10.0.0.1:80"))
		select {
		case <-h.done:
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return after ErrNotLeader")
		}
		if got := h.logs.grep("the lock moved to another bridge; stopped writing the catalog"); len(got) != 1 {
			t.Errorf("stop lines = %v", h.logs.grep("stopped"))
		}
		if len(h.rep.failed) != 0 {
			t.Errorf("ErrNotLeader reported as a failure: %v", h.rep.failed)
		}
	})
}

// TestLeaderHoldsAfterFailedReads: while the store cannot be read, a
// bridge's observation goes; once reads succeed again its server stays
// passing for a start-up grace, and turns unobserved only after it.
func TestLeaderHoldsAfterFailedReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const x, y = "10.0.0.1:80", "10.0.0.2:80"
		h := lead(t, nil, obsOf("a", "s", x), obsOf("b", "s", y))
		h.pump("registered", 0, h.is(map[string]string{x: "passing", y: "passing"}))
		h.pump("past the first grace", time.Second, func() bool { return h.clk.Now().Sub(t0) > testGrace })
		h.pump("blocked in a read", 0, func() bool { return h.clk.Pending() > 0 })
		h.store.mu.Lock()
		h.store.fail = 3
		h.store.mu.Unlock()
		h.store.set(obsOf("a", "s", x)) // wakes the read under way; the next three fail
		h.pump("a failed read", 0, func() bool { return len(h.logs.grep("cannot read the observations")) > 0 })
		h.store.drop("b")
		h.pump("reads recover", time.Second, func() bool { return len(h.logs.grep(`"message":"leader: Store answers again"`)) == 1 })
		recovered := h.clk.Now()
		if got := h.reg.state(); got[y] != "passing" {
			t.Fatalf("b's server %s right after the store answered again, want passing", got[y])
		}
		h.pump("b's server unobserved", time.Second, h.is(map[string]string{x: "passing", y: "unobserved"}))
		if d := h.clk.Now().Sub(recovered); d < testGrace {
			t.Errorf("unobserved %s after the recovery, want after the %s grace", d, testGrace)
		}
		h.rep.mu.Lock()
		defer h.rep.mu.Unlock()
		if len(h.rep.failed) != 3 || h.rep.failed[0] != StageObservations {
			t.Errorf("failures reported = %v, want 3 of the observations", h.rep.failed)
		}
	})
}

// TestLeaderHealthTransitions: the leader writes a server's merged verdict
// when it changes, once, and nothing in the rounds between: two bridges,
// one of which cannot reach the app, keep it ready; both failing turn it
// failing once; a bridge's rounds that change nothing write nothing.
func TestLeaderHealthTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const x = "10.0.0.1:80"
		a, b := obsOf("a", "s", x), obsOf("b", "s", x)
		h := lead(t, nil, judge(a, x, endpoint.Failing, "TCP connect: connection refused"), judge(b, x, endpoint.Ready, "TCP connect: ok in 1 ms"))
		health := func() string {
			h.reg.mu.Lock()
			defer h.reg.mu.Unlock()
			return h.reg.entries[x].Spec.health
		}
		h.pump("registered ready", 0, func() bool { return health() == "ready TCP connect: ok in 1 ms" })
		h.pump("blocked in a read", 0, func() bool { return h.clk.Pending() > 0 })
		steps := []struct {
			name   string
			obs    []observation.Observation
			health string
			writes int64
		}{
			{"a's round, nothing changed", []observation.Observation{judge(a, x, endpoint.Failing, "TCP connect: connection refused")},
				"ready TCP connect: ok in 1 ms", 0},
			{"b fails too", []observation.Observation{judge(b, x, endpoint.Failing, "TCP connect: timeout after 2s")},
				"failing TCP connect: connection refused", 1},
			{"b's round, nothing changed", []observation.Observation{judge(b, x, endpoint.Failing, "TCP connect: timeout after 2s")},
				"failing TCP connect: connection refused", 0},
			{"a is pending (restarted), b failing", []observation.Observation{judge(a, x, endpoint.Pending, "")},
				"failing TCP connect: timeout after 2s", 1},
			{"a ready", []observation.Observation{judge(a, x, endpoint.Ready, "TCP connect: ok in 2 ms")},
				"ready TCP connect: ok in 2 ms", 1},
		}
		for _, st := range steps {
			writes, reads := h.reg.writes.Load(), h.store.reads.Load()
			h.store.set(st.obs...)
			h.pump(st.name, 0, func() bool { return h.store.reads.Load() >= reads+1 && h.clk.Pending() > 0 })
			if got := health(); got != st.health {
				t.Errorf("%s: %q, want %q", st.name, got, st.health)
			}
			if got := h.reg.writes.Load() - writes; got != st.writes {
				t.Errorf("%s: %d writes, want %d", st.name, got, st.writes)
			}
		}
	})
}

// TestLeaderFleetGuard: four servers on two bridges (3 + 1) go silent
// together, the lone one first. The leader holds all four passing for the
// confirmation, logs the episode once, then turns them unobserved and
// removes them deregister_after later; it does not spin while it holds.
func TestLeaderFleetGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const x, y, z, w = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
		g := GuardConfig{MaxFraction: 0.5, Confirm: 30 * time.Second, Window: 20 * time.Second, Established: 5 * time.Second, HeldReady: true}
		h := leadGuarded(t, g, registered(x, y, z, w), obsOf("a", "s", x, y, z), obsOf("b", "s", w))
		all := func(state string) map[string]string {
			return map[string]string{x: state, y: state, z: state, w: state}
		}
		h.pump("past the grace", time.Second, func() bool { return h.clk.Now().Sub(t0) > testGrace })
		h.store.set(obsOf("b", "s")) // the lone bridge's server first
		h.pump("the lone one unobserved", 0, h.is(map[string]string{x: "passing", y: "passing", z: "passing", w: "unobserved"}))
		h.store.set(obsOf("a", "s")) // the others, within the window
		h.pump("the four held passing", 0, h.is(all("passing")))
		held := h.clk.Now()
		reads := h.store.reads.Load()
		h.pump("released, unobserved", time.Second, h.is(all("unobserved")))
		if d := h.clk.Now().Sub(held); d < g.Confirm {
			t.Errorf("released %s after the hold began, want %s", d, g.Confirm)
		}
		if n := h.store.reads.Load() - reads; n > 100 {
			t.Errorf("%d reads of the observations during a %s hold: the leader spins", n, g.Confirm)
		}
		if l := h.logs.grep("fleet removal guard: too many servers unobserved"); len(l) != 1 || !strings.Contains(l[0], `"held":4`) {
			t.Errorf("episode WARN lines = %v, want one holding 4", l)
		}
		h.pump("removed", 5*time.Second, h.is(map[string]string{}))
	})
}

// TestLeaderGuardRecord: the leader keeps what its guard did in the last
// plan for other goroutines (bridge explain, /readyz): the held servers by
// address with their releases, nothing once they went, and no report at
// all once the term ended.
func TestLeaderGuardRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const x, y, z, w = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
		g := GuardConfig{MaxFraction: 0.5, Confirm: 30 * time.Second, Window: 20 * time.Second, Established: 5 * time.Second, HeldReady: false}
		h := leadGuarded(t, g, registered(x, y, z, w), obsOf("a", "s", x, y, z), obsOf("b", "s", w))
		var heldAt time.Time
		holds := func(want ...string) func() bool {
			return func() bool {
				rep, ok := h.rec.Last()
				if !ok || len(rep.Holds) != len(want) || len(rep.State.Held) != len(want) {
					return false
				}
				for i, a := range want {
					if rep.Holds[i].Addr != netip.MustParseAddrPort(a) || rep.Holds[i].Key != a {
						return false
					}
				}
				return true
			}
		}
		for _, st := range []struct {
			name string
			act  func()
			step time.Duration
			cond func() bool
			// check, when set, is checked once cond holds.
			check func(rep GuardReport, ok bool) string
		}{
			{name: "past the grace, nothing held", step: time.Second,
				cond: func() bool { return h.clk.Now().Sub(t0) > testGrace && holds()() }},
			{name: "three of four unobserved: the four held, by address", act: func() { h.store.set(obsOf("a", "s", w), obsOf("b", "s")) },
				cond: holds(x, y, z), check: func(rep GuardReport, _ bool) string {
					heldAt = rep.State.Since
					for _, hd := range rep.Holds {
						if !hd.Until.Equal(heldAt.Add(g.Confirm)) {
							return fmt.Sprintf("%s until %s, want %s", hd.Addr, hd.Until, heldAt.Add(g.Confirm))
						}
					}
					if rep.State.Going != 3 || rep.State.Known != 4 || rep.Config != g || rep.DeregisterAfter != testDereg {
						return fmt.Sprintf("report %+v", rep)
					}
					if at := rep.At(netip.MustParseAddr("10.0.0.2"), 0); len(at) != 1 || at[0].Key != y {
						return fmt.Sprintf("At(10.0.0.2) = %+v", at)
					}
					return ""
				}},
			{name: "released: nothing held", step: time.Second, cond: func() bool { return h.clk.Now().Sub(heldAt) >= g.Confirm && holds()() }},
			{name: "term ended: no report", act: func() { h.end(nil); <-h.done }, cond: func() bool { return true },
				check: func(rep GuardReport, ok bool) string {
					if ok {
						return fmt.Sprintf("a report after the term: %+v", rep)
					}
					return ""
				}},
		} {
			if st.act != nil {
				st.act()
			}
			h.pump(st.name, st.step, st.cond)
			if st.check != nil {
				if msg := st.check(h.rec.Last()); msg != "" {
					t.Errorf("%s: %s", st.name, msg)
				}
			}
		}
	})
}

// TestLeaderGuardTermEnd: a term that ends during a hold tells OnGuard
// that nothing is held any more (the removals_held metric of a bridge that
// no longer leads goes back to 0), however it ends.
func TestLeaderGuardTermEnd(t *testing.T) {
	const x, y, z = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
	g := GuardConfig{MaxFraction: 0.5, Confirm: time.Hour, Window: 20 * time.Second, Established: 5 * time.Second, HeldReady: true}
	for _, tt := range []struct {
		name  string
		cause error
	}{
		{"shutdown", nil},
		{"leadership lost", fmt.Errorf("%w: session invalidated", ErrLeadershipLost)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := leadGuarded(t, g, registered(x, y, z), obsOf("a", "s", x, y, z))
				h.pump("past the grace", time.Second, func() bool { return h.clk.Now().Sub(t0) > testGrace })
				h.store.set(obsOf("a", "s"))
				h.pump("three held", 0, func() bool { st := h.guarded.Load(); return st != nil && len(st.Held) == 3 })
				h.end(tt.cause)
				<-h.done
				if st := h.guarded.Load(); len(st.Held) != 0 {
					t.Errorf("OnGuard last told %+v after the term ended, want nothing held", *st)
				}
			})
		})
	}
}
