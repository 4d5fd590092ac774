package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

func TestScheduleDoesNotDrift(t *testing.T) {
	h := newHarness(t,
		roundScript{servers: []string{"10.0.0.1:8000"}, takes: 3 * time.Second},
		roundScript{takes: 15 * time.Second}, // overruns the 10s interval
		roundScript{},
	)
	h.start(h.config())

	if at := h.d.nextRound(t); !at.Equal(t0) {
		t.Fatalf("round 1 started at %v, want at once (%v)", at, t0)
	}
	h.idle()
	if next, _ := h.clock.NextDeadline(); !next.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("round 2 scheduled at %v, want start of round 1 + interval", next)
	}
	h.clock.Advance(7 * time.Second)
	if at := h.d.nextRound(t); !at.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("round 2 started at %v", at)
	}
	// Round 2 took 15s: round 3 starts at once, without a timer.
	if at := h.d.nextRound(t); !at.Equal(t0.Add(25 * time.Second)) {
		t.Fatalf("round 3 started at %v, want at once after the overrun (t0+25s)", at)
	}
	h.idle()
	if next, _ := h.clock.NextDeadline(); !next.Equal(t0.Add(35 * time.Second)) {
		t.Fatalf("round 4 scheduled at %v, want t0+35s", next)
	}
	h.stop()
	if h.outcome.Rounds != 3 {
		t.Fatalf("outcome rounds = %d, want 3", h.outcome.Rounds)
	}
}

func TestSlowSinkDelaysNothingAndGetsNewest(t *testing.T) {
	h := newHarness(t,
		roundScript{servers: []string{"10.0.0.1:8000"}},
		roundScript{servers: []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
		roundScript{servers: []string{"10.0.0.2:8000"}},
		roundScript{servers: []string{"10.0.0.3:8000"}},
	)
	slow, fast := newSink("slow"), newSink("fast")
	slow.block = func(n int) bool { return n == 1 }
	h.start(h.config(slow, fast))

	for round := uint64(1); round <= 4; round++ {
		h.d.nextRound(t)
		if c := fast.nextApply(t); c.round != round {
			t.Fatalf("fast sink applied round %d, want %d", c.round, round)
		}
		if round == 1 {
			waitFor(t, "slow sink to start round 1", func() bool { return len(slow.rounds()) == 1 })
		}
		h.idle()
		if round < 4 {
			h.clock.Advance(10 * time.Second)
		}
	}
	if got := slow.rounds(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("slow sink calls while blocked = %v, want [1]", got)
	}
	close(slow.release)
	slow.nextApply(t)
	c := slow.nextApply(t)
	if c.round != 4 || !slices.Equal(c.addrs, []string{"10.0.0.2:8000", "10.0.0.3:8000"}) {
		t.Fatalf("slow sink caught up with round %d %v, want round 4 [10.0.0.2:8000 10.0.0.3:8000]", c.round, c.addrs)
	}
	h.stop()
	if got := slow.rounds(); !slices.Equal(got, []uint64{1, 4}) {
		t.Fatalf("slow sink rounds = %v, want [1 4] (newest only, no stale queue)", got)
	}
	if got := fast.rounds(); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("fast sink rounds = %v", got)
	}
}

func TestFailingSinkBacksOffAndRecovers(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	flaky := newSink("consul")
	flaky.fail = func(n int) error {
		if n <= 3 {
			return errRefused
		}
		return nil
	}
	h.start(h.config(flaky))

	h.d.nextRound(t)
	// Backoff 1s, 2s, 4s (each with jitter in [d/2, d]); the loop's own
	// timer (10s) stays pending the whole time.
	for i, step := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if c := flaky.nextApply(t); c.err == nil {
			t.Fatalf("attempt %d succeeded, want failure", i+1)
		}
		h.waitTimers(2)
		if i == 0 {
			ok, reasons := h.health.Ready()
			if ok || !strings.Contains(joinReasons(reasons), "sink consul: "+errRefused.Error()) {
				t.Fatalf("ready = %v %q, want not ready naming the sink error", ok, reasons)
			}
		}
		h.clock.Advance(step)
	}
	if c := flaky.nextApply(t); c.err != nil || c.round != 1 {
		t.Fatalf("attempt 4 = %+v, want success of round 1", c)
	}
	waitFor(t, "readiness", func() bool { ok, _ := h.health.Ready(); return ok })
	if got := h.clock.Now(); got.After(t0.Add(10 * time.Second)) {
		t.Fatalf("retries took until %v, want within the first interval", got)
	}
	h.stop()

	if n := len(h.logs.lines(t, "warn", "sink failing; retrying with backoff")); n != 1 {
		t.Errorf("warn lines = %d, want 1 (once per state change)", n)
	}
	rec := h.logs.lines(t, "info", "sink recovered")
	if len(rec) != 1 || rec[0]["attempts"] != float64(4) || rec[0]["sink"] != "consul" {
		t.Errorf("recovered lines = %v, want one with attempts=4", rec)
	}
	if n := len(h.logs.lines(t, "debug", "sink apply failed")); n != 3 {
		t.Errorf("debug attempt lines = %d, want 3", n)
	}
	if got := metricValue(t, h, "sink_errors_total", "consul"); got != 3 {
		t.Errorf("sink_errors_total = %v, want 3", got)
	}
}

// TestNewRoundCutsTheBackoffShort: a sink whose backoff grew longer than a
// round (Consul down for a while) is retried with the next round's snapshot,
// not when its backoff timer fires: once the registry answers again it is
// level within a round.
func TestNewRoundCutsTheBackoffShort(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	flaky := newSink("consul")
	flaky.fail = func(n int) error {
		if n == 1 {
			return errRefused
		}
		return nil
	}
	cfg := h.config(flaky)
	// Every backoff is at least 30s (jitter in [d/2, d]), three rounds.
	cfg.Backoff = runner.BackoffConfig{Min: time.Minute, Max: time.Minute}
	h.start(cfg)
	h.d.nextRound(t)
	if c := flaky.nextApply(t); c.err == nil || c.round != 1 {
		t.Fatalf("first apply = %+v, want the failure of round 1", c)
	}
	h.waitTimers(2) // the loop's next round and the backoff
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	c := flaky.nextApply(t)
	if c.err != nil || c.round != 2 {
		t.Fatalf("second apply = %+v, want round 2 applied at once", c)
	}
	if got := h.clock.Now(); got.After(t0.Add(10 * time.Second)) {
		t.Fatalf("retried at %v, want at round 2 (%v), before the backoff", got, t0.Add(10*time.Second))
	}
	h.stop()
}

// metricValue reads one series (matched by label values) from the
// harness registry: counter or gauge value, histogram sample count.
func metricValue(t *testing.T, h *harness, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "udp_discovery_bridge_"+name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			vals := map[string]bool{}
			for _, l := range m.GetLabel() {
				vals[l.GetValue()] = true
			}
			for _, want := range labels {
				if !vals[want] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func TestFailedRounds(t *testing.T) {
	a := "10.0.0.1:8000"
	h := newHarness(t,
		roundScript{servers: []string{a}, stats: discover.Stats{ProbesSent: 2, Replies: 3, Valid: 3, Duplicates: 2}},
		roundScript{err: fmt.Errorf("round: %w", discover.ErrNoProbeSent)},
		roundScript{err: fmt.Errorf("round: %w", discover.ErrNoInterfaces)},
		roundScript{},             // a missing: 1 miss of 2
		roundScript{servers: nil}, // a missing again: removed
	)
	s := newSink("file")
	h.start(h.config(s))
	srv := h.health.Handler()

	h.d.nextRound(t)
	s.nextApply(t)
	h.idle()
	waitFor(t, "ready", func() bool { ok, _ := h.health.Ready(); return ok })
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("readyz after a completed round = %d %s", code, body)
	}

	for round := 2; round <= 3; round++ {
		h.clock.Advance(10 * time.Second)
		h.d.nextRound(t)
		h.idle()
		code, body := get(t, srv, "/readyz")
		var rz struct {
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons"`
		}
		if err := json.Unmarshal([]byte(body), &rz); err != nil {
			t.Fatalf("readyz body %q: %v", body, err)
		}
		want := map[int]string{2: discover.ErrNoProbeSent.Error(), 3: discover.ErrNoInterfaces.Error()}[round]
		if code != http.StatusServiceUnavailable || rz.Ready || len(rz.Reasons) != 1 ||
			!strings.HasPrefix(rz.Reasons[0], "round: ") || !strings.Contains(rz.Reasons[0], want) {
			t.Fatalf("round %d: readyz = %d %+v, want 503 with reason %q", round, code, rz, want)
		}
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz during failed rounds = %d, want 200 (the loop is alive)", code)
	}

	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	if c := s.nextApply(t); c.round != 4 || !slices.Equal(c.addrs, []string{a}) {
		t.Fatalf("round 4 apply = %+v, want %s kept (failed rounds are no misses)", c, a)
	}
	h.idle()
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	if c := s.nextApply(t); c.round != 5 || len(c.addrs) != 0 {
		t.Fatalf("round 5 apply = %+v, want %s removed after 2 missed complete rounds", c, a)
	}
	h.idle()
	h.stop()

	if got := s.rounds(); !slices.Equal(got, []uint64{1, 4, 5}) {
		t.Errorf("sink rounds = %v, want [1 4 5] (failed rounds are not applied)", got)
	}
	if n := len(h.logs.lines(t, "warn", "discovery round failed; no endpoint counts as missed until a round completes")); n != 1 {
		t.Errorf("warn lines for failed rounds = %d, want 1", n)
	}
	if n := len(h.logs.lines(t, "debug", "discovery round failed")); n != 2 {
		t.Errorf("debug lines for failed rounds = %d, want 2", n)
	}
	back := h.logs.lines(t, "info", "discovery rounds complete again")
	if len(back) != 1 || back[0]["failed_rounds"] != float64(2) {
		t.Errorf("recovery lines = %v, want one with failed_rounds=2", back)
	}
	added, removed := h.logs.lines(t, "debug", "endpoint added"), h.logs.lines(t, "debug", "endpoint removed")
	if len(added) != 1 || len(removed) != 1 || added[0]["ip"] != "10.0.0.1" || added[0]["port"] != float64(8000) ||
		added[0]["source"] != "10.0.0.1:9999" || added[0]["interface"] != "eth0" || added[0]["round"] != float64(1) ||
		removed[0]["ip"] != "10.0.0.1" || removed[0]["round"] != float64(5) || removed[0]["last_seen"] == nil {
		t.Errorf("endpoint lines: added %v removed %v", added, removed)
	}
	changed := h.logs.lines(t, "info", "endpoints changed")
	if len(changed) != 2 || changed[0]["round"] != float64(1) || changed[0]["added"] != float64(1) || changed[0]["removed"] != float64(0) ||
		fmt.Sprint(changed[0]["added_first"]) != "[10.0.0.1:8000]" || changed[0]["removed_first"] != nil ||
		changed[1]["round"] != float64(5) || changed[1]["added"] != float64(0) || changed[1]["removed"] != float64(1) ||
		changed[1]["held"] != float64(0) || fmt.Sprint(changed[1]["removed_first"]) != "[10.0.0.1:8000]" {
		t.Errorf("endpoints changed lines = %v, want round 1 adding and round 5 removing 10.0.0.1:8000", changed)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rounds_total", []string{"ok"}, 3},
		{"rounds_total", []string{"failed"}, 2},
		{"round_duration_seconds", nil, 5},
		{"endpoints", nil, 0},
		{"endpoint_changes_total", []string{"add"}, 1},
		{"endpoint_changes_total", []string{"remove"}, 1},
		{"probes_sent_total", nil, 2},
		{"replies_total", []string{"valid"}, 1},
		{"replies_total", []string{"duplicate"}, 2},
		{"sink_applies_total", []string{"file", "ok"}, 3},
		{"sink_writes_total", []string{"file"}, 2},
	} {
		if got := metricValue(t, h, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

func TestNoSnapshotBeforeFirstCompleteRound(t *testing.T) {
	h := newHarness(t,
		roundScript{err: discover.ErrNoInterfaces},
		roundScript{err: discover.ErrNoInterfaces},
		roundScript{servers: []string{"10.0.0.9:8000"}},
	)
	s := newSink("stdout")
	h.start(h.config(s))
	for range 2 {
		h.d.nextRound(t)
		h.idle()
		if ok, reasons := h.health.Ready(); ok || len(reasons) != 2 {
			t.Fatalf("ready = %v %q, want not ready (round failed, sink not applied)", ok, reasons)
		}
		h.clock.Advance(10 * time.Second)
	}
	h.d.nextRound(t)
	if c := s.nextApply(t); c.round != 3 {
		t.Fatalf("first apply is round %d, want 3", c.round)
	}
	h.stop()
	if got := s.rounds(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("sink rounds = %v, want [3]", got)
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}}, roundScript{servers: []string{"10.0.0.2:8000"}},
		roundScript{block: true})
	busy, retrying, idle := newSink("busy"), newSink("retrying"), newSink("idle")
	busy.block = func(n int) bool { return n == 2 }
	retrying.fail = func(n int) error {
		if n == 2 {
			return errRefused
		}
		return nil
	}
	h.start(h.config(busy, retrying, idle))

	h.d.nextRound(t)
	busy.nextApply(t)
	retrying.nextApply(t)
	idle.nextApply(t)
	h.idle()
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	idle.nextApply(t)
	retrying.nextApply(t) // fails, then waits in backoff
	h.waitTimers(2)       // loop tick + retrying's backoff
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t) // round 3 blocks until cancelled: it is abandoned

	h.cancel()
	// busy is still inside Apply(round 2): shutdown must wait for it.
	select {
	case <-h.done:
		t.Fatal("Run returned while a sink Apply was in flight")
	default:
	}
	close(busy.release)
	h.stop()

	for _, tc := range []struct {
		s    *fakeSink
		want []string
	}{
		{busy, []string{"apply 1 ok=true", "apply 2 ok=true", "close"}},
		{retrying, []string{"apply 1 ok=true", "apply 2 ok=false", "apply 2 ok=true", "close"}},
		{idle, []string{"apply 1 ok=true", "apply 2 ok=true", "close"}},
	} {
		ev, closes := tc.s.history()
		if !slices.Equal(ev, tc.want) || closes != 1 {
			t.Errorf("sink %s history = %q (closes %d), want %q", tc.s.name, ev, closes, tc.want)
		}
	}
	if !h.outcome.Failed || !errors.Is(h.outcome.RoundErr, context.Canceled) {
		t.Errorf("outcome = %+v, want the abandoned round reported", h.outcome)
	}
}

func TestShutdownTimeoutCancelsApply(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	stuck := newSink("stuck")
	stuck.block = func(int) bool { return true } // only ctx releases it
	cfg := h.config(stuck)
	cfg.ShutdownTimeout = 5 * time.Second
	h.start(cfg)
	h.d.nextRound(t)
	h.idle()
	h.cancel()
	// The loop stops its tick timer and starts the shutdown bound.
	waitFor(t, "shutdown bound", func() bool {
		next, ok := h.clock.NextDeadline()
		return ok && h.clock.Pending() == 1 && next.Equal(t0.Add(5*time.Second))
	})
	h.clock.Advance(5 * time.Second)
	h.stop()
	ev, closes := stuck.history()
	if !slices.Equal(ev, []string{"apply 1 ok=false", "close"}) || closes != 1 {
		t.Fatalf("history = %q, want the apply cancelled then close", ev)
	}
	if n := len(h.logs.lines(t, "warn", "sinks did not finish in time; cancelling their applies")); n != 1 {
		t.Fatalf("timeout warn lines = %d, want 1", n)
	}
}

func TestOnce(t *testing.T) {
	tests := []struct {
		name      string
		round     roundScript
		fail      func(n int) error
		wantFound int
		wantFail  bool
		wantCalls int
		wantErr   bool
	}{
		{name: "found", round: roundScript{servers: []string{"10.0.0.1:8000", "10.0.0.2:8000"}}, wantFound: 2, wantCalls: 1},
		{name: "none found", round: roundScript{}, wantFound: 0, wantCalls: 1},
		{name: "flaky sink retried", round: roundScript{servers: []string{"10.0.0.1:8000"}}, wantFound: 1, wantCalls: 3,
			fail: func(n int) error {
				if n < 3 {
					return errRefused
				}
				return nil
			}},
		{name: "sink keeps failing", round: roundScript{servers: []string{"10.0.0.1:8000"}}, wantFound: 1, wantCalls: 3, wantErr: true,
			fail: func(int) error { return errRefused }},
		{name: "failed round applies nothing", round: roundScript{err: discover.ErrNoProbeSent}, wantFail: true, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.round)
			s, other := newSink("consul"), newSink("file")
			s.fail = tt.fail
			cfg := h.config(s, other)
			cfg.Once, cfg.Interval = true, 0
			// Once's backoff runs on the real clock here; its delays are
			// tiny and do not affect what is asserted.
			cfg.Clock = clock.Real()
			cfg.Backoff = runner.BackoffConfig{Min: time.Microsecond, Max: time.Millisecond}
			out, err := runner.Run(context.Background(), h.d, cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, errRefused) || !strings.Contains(err.Error(), "sink consul")) {
				t.Fatalf("err = %v, want it to name the sink and wrap its error", err)
			}
			if out.Found != tt.wantFound || out.Failed != tt.wantFail || out.Rounds != 1 || out.Differs {
				t.Fatalf("outcome = %+v, want found %d failed %v", out, tt.wantFound, tt.wantFail)
			}
			if tt.wantFail && !errors.Is(out.RoundErr, discover.ErrNoProbeSent) {
				t.Fatalf("round err = %v", out.RoundErr)
			}
			if got := len(s.rounds()); got != tt.wantCalls {
				t.Fatalf("apply calls = %d, want %d", got, tt.wantCalls)
			}
			for _, sk := range []*fakeSink{s, other} {
				ev, closes := sk.history()
				if closes != 1 || ev[len(ev)-1] != "close" {
					t.Fatalf("sink %s history = %q, want exactly one close, last", sk.name, ev)
				}
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	a, b, c := "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	ep := func(s string) endpoint.Endpoint {
		return endpoint.Endpoint{Addr: netip.MustParseAddrPort(s), Interface: "reg"}
	}
	tests := []struct {
		name        string
		diff        endpoint.Diff
		withPlain   bool
		want        []string // op ip sink
		wantDiffers bool
	}{
		{
			name: "registry differs", diff: endpoint.Diff{Added: []endpoint.Endpoint{ep(a)}, Removed: []endpoint.Endpoint{ep(c)}, Unchanged: 1},
			withPlain: true, wantDiffers: true,
			want: []string{"add 10.0.0.1 consul", "remove 10.0.0.3 consul", "noop 10.0.0.1 consul" /* replaced below */},
		},
		{
			name: "registry level", diff: endpoint.Diff{Unchanged: 2},
			want: []string{"noop 10.0.0.1 consul", "noop 10.0.0.2 consul"},
		},
	}
	tests[0].want = []string{"add 10.0.0.1 consul", "remove 10.0.0.3 consul", "noop 10.0.0.2 consul",
		"add 10.0.0.1 stdout", "add 10.0.0.2 stdout"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, roundScript{servers: []string{b, a}})
			reg := plannerSink{fakeSink: newSink("consul"), diff: tt.diff}
			plain := newSink("stdout")
			sinks := []sink.Sink{reg}
			if tt.withPlain {
				sinks = append(sinks, plain)
			}
			var out bytes.Buffer
			cfg := h.config(sinks...)
			cfg.Once, cfg.DryRun, cfg.DryRunOut = true, true, &out
			res, err := runner.Run(context.Background(), h.d, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var op plan.Op
				dec := json.NewDecoder(strings.NewReader(sc.Text()))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&op); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				if op.Round != 1 || op.Port != 8000 {
					t.Fatalf("line %q: want round 1 port 8000", sc.Text())
				}
				got = append(got, op.Op+" "+op.IP+" "+op.Sink)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ops =\n%q\nwant\n%q", got, tt.want)
			}
			if res.Differs != tt.wantDiffers || res.Found != 2 {
				t.Fatalf("outcome = %+v, want differs %v", res, tt.wantDiffers)
			}
			for _, s := range []*fakeSink{reg.fakeSink, plain} {
				if ev, closes := s.history(); len(ev) != 0 || closes != 0 {
					t.Fatalf("sink %s touched in dry run: %q", s.name, ev)
				}
			}
		})
	}

	t.Run("plan error fails once", func(t *testing.T) {
		h := newHarness(t, roundScript{servers: []string{a}})
		reg := plannerSink{fakeSink: newSink("consul"), err: errRefused}
		cfg := h.config(reg)
		cfg.Once, cfg.DryRun, cfg.DryRunOut = true, true, io.Discard
		if _, err := runner.Run(context.Background(), h.d, cfg); !errors.Is(err, errRefused) {
			t.Fatalf("err = %v, want the planner error", err)
		}
	})

	t.Run("loop without sinks writes the planner's ops each round", func(t *testing.T) {
		h := newHarness(t, roundScript{servers: []string{a}}, roundScript{servers: []string{a, b}})
		var out syncBuffer
		cfg := h.config()
		cfg.DryRun, cfg.DryRunOut = true, &out
		h.start(cfg)
		h.d.nextRound(t)
		h.idle()
		h.clock.Advance(10 * time.Second)
		h.d.nextRound(t)
		h.idle()
		h.stop()
		want := `{"op":"add","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":1}
{"op":"add","ip":"10.0.0.2","port":8000,"source_address":"10.0.0.2:9999","interface":"eth0","round":2}
{"op":"noop","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":2}
`
		if got := out.buf.String(); got != want {
			t.Fatalf("dry-run output =\n%s\nwant\n%s", got, want)
		}
		if !h.outcome.Differs {
			t.Fatal("outcome.Differs = false")
		}
	})
}

func TestConfigErrors(t *testing.T) {
	good := runner.Config{Interval: time.Second, MissedRounds: 1}
	tests := []struct {
		name string
		mod  func(*runner.Config)
		nilD bool
	}{
		{name: "no interval", mod: func(c *runner.Config) { c.Interval = 0 }},
		{name: "missed rounds 0", mod: func(c *runner.Config) { c.MissedRounds = 0 }},
		{name: "dry run without writer", mod: func(c *runner.Config) { c.DryRun = true }},
		{name: "nil sink", mod: func(c *runner.Config) { c.Sinks = []sink.Sink{nil} }},
		{name: "negative backoff", mod: func(c *runner.Config) { c.Backoff.Min = -1 }},
		{name: "removal fraction above 1", mod: func(c *runner.Config) { c.MaxRemovalFraction = 1.5 }},
		{name: "negative guard rounds", mod: func(c *runner.Config) { c.RemovalGuardRounds = -1 }},
		{name: "nil discoverer", mod: func(*runner.Config) {}, nilD: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			var d runner.Discoverer = newDiscoverer(nil, roundScript{})
			if tt.nilD {
				d = nil
			}
			if _, err := runner.Run(context.Background(), d, cfg); !errors.Is(err, runner.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestHealthHandler(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	s := newSink("consul")
	s.fail = func(n int) error { return errRefused }
	h.start(h.config(s))
	srv := h.health.Handler()

	h.d.nextRound(t)
	s.nextApply(t)
	h.waitTimers(2)
	code, body := get(t, srv, "/readyz")
	wantBody := `{"ready":false,"reasons":["sink consul: ` + errRefused.Error() + `"]}` + "\n"
	if code != http.StatusServiceUnavailable || body != wantBody {
		t.Fatalf("readyz = %d %q, want 503 %q", code, body, wantBody)
	}
	if code, body := get(t, srv, "/metrics"); code != http.StatusOK || !strings.Contains(body, `udp_discovery_bridge_sink_errors_total{sink="consul"} 1`) {
		t.Fatalf("metrics = %d %s", code, body)
	}
	// A scraper offering gzip gets the page plain: a gzip compressor would
	// cost ~1.2 MiB of heap per scrape.
	gz := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	srv.ServeHTTP(gz, req)
	if enc := gz.Header().Get("Content-Encoding"); gz.Code != http.StatusOK || enc != "" || !strings.Contains(gz.Body.String(), "udp_discovery_bridge_sink_errors_total") {
		t.Fatalf("metrics with Accept-Encoding gzip = %d, Content-Encoding %q", gz.Code, enc)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz = %d, want 200", code)
	}
	h.stop()
	// The loop no longer ticks: after 3×interval+timeout it is not alive.
	h.clock.Advance(36 * time.Second)
	if code, _ := get(t, srv, "/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("stale healthz = %d, want 503", code)
	}
	if code, _ := get(t, srv, "/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown path = %d, want 404", code)
	}
}

// get serves one GET through the handler, without sockets.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestAfterRoundRunsOncePerRound: the hook follows every round, failed ones
// included, after the sinks were handed the snapshot.
func TestAfterRoundRunsOncePerRound(t *testing.T) {
	h := newHarness(t,
		roundScript{servers: []string{"10.0.0.1:8000"}},
		roundScript{err: discover.ErrNoProbeSent},
		roundScript{servers: []string{"10.0.0.1:8000"}},
	)
	s := newSink("stdout")
	var calls atomic.Int32
	cfg := h.config(s)
	cfg.AfterRound = func() { calls.Add(1) }
	h.start(cfg)
	for i := range 3 {
		h.d.nextRound(t)
		h.idle()
		if got := calls.Load(); got != int32(i+1) {
			t.Fatalf("after round %d: AfterRound called %d times", i+1, got)
		}
		h.clock.Advance(10 * time.Second)
	}
	h.stop()
}

// TestPausedLoopHandsOnlyAFreshRoundToSinks: the process is paused during
// round 2 for 40 rounds' worth of time (SIGSTOP). That round's replies are
// from before the pause: the round is discarded, and the next one, fresh,
// counts the skipped rounds as misses, so servers it does not see are
// removed at once instead of lingering for missed_rounds more rounds.
func TestPausedLoopHandsOnlyAFreshRoundToSinks(t *testing.T) {
	const a, b, c = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	h := newHarness(t,
		roundScript{servers: []string{a, b, c}},
		roundScript{servers: []string{a, b, c}, takes: 400 * time.Second},
		roundScript{servers: []string{a}},
	)
	s := newSink("file")
	cfg := h.config(s)
	cfg.MissedRounds = 3
	cfg.RoundTimeout = time.Second
	h.start(cfg)
	h.d.nextRound(t)
	if c1 := s.nextApply(t); !slices.Equal(c1.addrs, []string{a, b, c}) {
		t.Fatalf("round 1 applied %v", c1.addrs)
	}
	h.idle()
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t) // the paused round
	h.d.nextRound(t) // started at once: the paused one overran
	c3 := s.nextApply(t)
	if c3.round != 3 || !slices.Equal(c3.addrs, []string{a}) {
		t.Fatalf("after the pause the sink got round %d %v, want round 3 [%s]", c3.round, c3.addrs, a)
	}
	h.stop()
	if got := s.rounds(); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("sink rounds = %v, want [1 3]: the stale round 2 is never applied", got)
	}
	if n := len(h.logs.lines(t, "warn", "rounds were skipped (the process was paused or starved); they count as misses of every server this round did not see")); n != 1 {
		t.Errorf("skipped-rounds warnings = %d, want 1", n)
	}
	if got := metricValue(t, h, "rounds_total", "failed"); got != 1 {
		t.Errorf("rounds_total{outcome=failed} = %v, want 1 (the stale round)", got)
	}
}
