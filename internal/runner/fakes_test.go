package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// wait bounds every synchronisation in these tests; it is a safety net
// against hangs, never a correctness timing.
const wait = 10 * time.Second

func server(ipport string) discover.Server {
	ap := netip.MustParseAddrPort(ipport)
	return discover.Server{IP: ap.Addr(), Port: ap.Port(), PayloadIP: ap.Addr(),
		Source: netip.AddrPortFrom(ap.Addr(), 9999), Interface: "eth0"}
}

// roundScript is what the fake discoverer does in one round.
type roundScript struct {
	servers []string
	err     error
	takes   time.Duration // advances the fake clock during the round
	block   bool          // blocks until ctx is cancelled
	stats   discover.Stats
	during  func() // called while the round runs
}

// fakeDiscoverer plays a script, repeating its last entry.
type fakeDiscoverer struct {
	clock  *clocktest.Clock
	script []roundScript
	calls  chan time.Time // start time of each round

	mu sync.Mutex
	n  int
}

func newDiscoverer(c *clocktest.Clock, script ...roundScript) *fakeDiscoverer {
	return &fakeDiscoverer{clock: c, script: script, calls: make(chan time.Time, 1000)}
}

func (d *fakeDiscoverer) Round(ctx context.Context) (discover.Result, error) {
	d.mu.Lock()
	s := d.script[min(d.n, len(d.script)-1)]
	d.n++
	d.mu.Unlock()
	d.calls <- d.clock.Now()
	if s.during != nil {
		s.during()
	}
	if s.block {
		<-ctx.Done()
		return discover.Result{}, ctx.Err()
	}
	if s.takes > 0 {
		d.clock.Advance(s.takes)
	}
	if s.err != nil {
		return discover.Result{Stats: s.stats}, s.err
	}
	res := discover.Result{Stats: s.stats}
	for _, a := range s.servers {
		res.Servers = append(res.Servers, server(a))
	}
	return res, nil
}

// nextRound waits for the discoverer's next call and returns its start time.
func (d *fakeDiscoverer) nextRound(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-d.calls:
		return at
	case <-time.After(wait):
		t.Fatal("timed out waiting for a discovery round")
		return time.Time{}
	}
}

// call is one Apply seen by a fakeSink.
type call struct {
	round  uint64
	addrs  []string
	health []string // each endpoint's Check.State, as addrs
	err    error
}

// fakeSink records Apply and Close calls. fail decides the error of the n-th
// Apply (1-based); block makes the n-th Apply wait for release (or ctx).
type fakeSink struct {
	name    string
	fail    func(n int) error
	block   func(n int) bool
	release chan struct{}
	applied chan call // notified at the end of each Apply

	mu     sync.Mutex
	calls  []call
	events []string
	closes int
}

func newSink(name string) *fakeSink {
	return &fakeSink{name: name, release: make(chan struct{}), applied: make(chan call, 1000)}
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Apply(ctx context.Context, snap endpoint.Snapshot) (sink.Result, error) {
	s.mu.Lock()
	n := len(s.calls) + 1
	s.calls = append(s.calls, call{round: snap.Round}) // placeholder, completed below
	s.mu.Unlock()
	var err error
	if s.block != nil && s.block(n) {
		select {
		case <-s.release:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err == nil && s.fail != nil {
		err = s.fail(n)
	}
	c := call{round: snap.Round, err: err}
	for _, e := range snap.Endpoints {
		c.addrs = append(c.addrs, e.Addr.String())
		c.health = append(c.health, e.Check.State.String())
	}
	s.mu.Lock()
	s.calls[n-1] = c
	s.events = append(s.events, fmt.Sprintf("apply %d ok=%v", snap.Round, err == nil))
	s.mu.Unlock()
	s.applied <- c
	if err != nil {
		return sink.Result{}, err
	}
	return sink.Result{Writes: len(snap.Endpoints)}, nil
}

func (s *fakeSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	s.events = append(s.events, "close")
	return nil
}

func (s *fakeSink) rounds() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, c := range s.calls {
		out = append(out, c.round)
	}
	return out
}

func (s *fakeSink) history() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events), s.closes
}

// nextApply waits for the sink's next Apply to finish.
func (s *fakeSink) nextApply(t *testing.T) call {
	t.Helper()
	select {
	case c := <-s.applied:
		return c
	case <-time.After(wait):
		t.Fatalf("timed out waiting for an apply on sink %s", s.name)
		return call{}
	}
}

// plannerSink is a fakeSink that also implements sink.Planner.
type plannerSink struct {
	*fakeSink
	diff endpoint.Diff
	err  error
}

func (p plannerSink) Plan(context.Context, endpoint.Snapshot) (endpoint.Diff, error) {
	return p.diff, p.err
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the decoded log lines with the given level and message.
func (b *syncBuffer) lines(t *testing.T, level, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m["level"] == level && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// harness runs the loop in the background.
type harness struct {
	t       *testing.T
	clock   *clocktest.Clock
	d       *fakeDiscoverer
	disc    runner.Discoverer // when set, runs instead of d
	logs    *syncBuffer
	reg     *prometheus.Registry
	health  *runner.Health
	cancel  context.CancelFunc
	done    chan struct{}
	outcome runner.Outcome
	err     error
}

func (h *harness) config(sinks ...sink.Sink) runner.Config {
	return runner.Config{
		Interval:     10 * time.Second,
		MissedRounds: 2,
		Sinks:        sinks,
		Clock:        h.clock,
		Log:          zerolog.New(h.logs).Level(zerolog.DebugLevel),
		Metrics:      runner.NewMetrics(h.reg),
		Health:       h.health,
		Backoff:      runner.BackoffConfig{Min: time.Second, Max: 4 * time.Second},
	}
}

func newHarness(t *testing.T, script ...roundScript) *harness {
	t.Helper()
	c := clocktest.New(t0)
	reg := prometheus.NewRegistry()
	return &harness{t: t, clock: c, d: newDiscoverer(c, script...), logs: &syncBuffer{}, reg: reg,
		health: runner.NewHealth(c, 35*time.Second, reg)}
}

func (h *harness) start(cfg runner.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		var d runner.Discoverer = h.d
		if h.disc != nil {
			d = h.disc
		}
		h.outcome, h.err = runner.Run(ctx, d, cfg)
	}()
	h.t.Cleanup(func() {
		// After a failed test, push time on so shutdown bounds expire
		// instead of hanging the test binary.
		cancel()
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
			select {
			case <-h.done:
				return
			case <-time.After(10 * time.Millisecond):
				h.clock.Advance(time.Hour)
			}
		}
		h.t.Error("Run did not return at cleanup")
	})
}

// stop cancels the loop and waits for Run to return.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(wait):
		h.t.Fatal("Run did not return after cancel")
	}
	if h.err != nil {
		h.t.Fatalf("Run returned %v, want nil", h.err)
	}
}

// waitTimers waits until n fake-clock timers are pending.
func (h *harness) waitTimers(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.clock.WaitForTimers(ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

// idle waits until the loop has finished a round and waits for the next tick
// (its timer is the only one pending).
func (h *harness) idle() { h.t.Helper(); h.waitTimers(1) }

// waitFor polls cond (for state published by other goroutines after a
// notification); the deadline is a safety net only.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errRefused = errors.New("dial tcp 127.0.0.1:8500: connection refused")

func joinReasons(r []string) string { return strings.Join(r, "; ") }
