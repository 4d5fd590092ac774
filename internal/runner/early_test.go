package runner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// notifyStep is one step of a round of the notifyingDiscoverer: the clock
// moves on by advance, then the servers of arrive answer (each reported
// once per round, as discover.Client.RoundNotify does); with end the round
// then returns every server that answered in it.
type notifyStep struct {
	advance time.Duration
	arrive  []string
	end     bool
	err     error         // with end: the round's error
	done    chan struct{} // closed once the step was played
}

// notifyingDiscoverer is a Notifier whose rounds the test plays step by
// step: a round blocks between steps, so the test sees what the loop does
// while a round is in progress.
type notifyingDiscoverer struct {
	clock  *clocktest.Clock
	steps  chan notifyStep
	rounds chan struct{} // a round started
}

func newNotifying(c *clocktest.Clock) *notifyingDiscoverer {
	return &notifyingDiscoverer{clock: c, steps: make(chan notifyStep), rounds: make(chan struct{}, 100)}
}

func (d *notifyingDiscoverer) Round(ctx context.Context) (discover.Result, error) {
	return d.RoundNotify(ctx, nil)
}

func (d *notifyingDiscoverer) RoundNotify(ctx context.Context, onServer func(discover.Server)) (discover.Result, error) {
	d.rounds <- struct{}{}
	var res discover.Result
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case st := <-d.steps:
			d.clock.Advance(st.advance)
			for _, a := range st.arrive {
				if seen[a] {
					continue
				}
				seen[a] = true
				s := server(a)
				s.Received = d.clock.Now()
				res.Servers = append(res.Servers, s)
				if onServer != nil {
					onServer(s)
				}
			}
			close(st.done)
			if st.end {
				return res, st.err
			}
		}
	}
}

// play plays one step of the round in progress and waits until it was.
func (d *notifyingDiscoverer) play(t *testing.T, st notifyStep) {
	t.Helper()
	st.done = make(chan struct{})
	select {
	case d.steps <- st:
	case <-time.After(wait):
		t.Fatal("timed out handing a step to the round")
	}
	select {
	case <-st.done:
	case <-time.After(wait):
		t.Fatal("timed out waiting for the round to play a step")
	}
}

// nextRound waits until a round started.
func (d *notifyingDiscoverer) nextRound(t *testing.T) {
	t.Helper()
	select {
	case <-d.rounds:
	case <-time.After(wait):
		t.Fatal("timed out waiting for a discovery round")
	}
}

func newNotifyHarness(t *testing.T) (*harness, *notifyingDiscoverer) {
	t.Helper()
	h := newHarness(t, roundScript{})
	d := newNotifying(h.clock)
	h.disc = d
	return h, d
}

// addrList is "10.0.<i/250>.<i%250+1>:8000" for i in [from, to).
func addrList(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("10.%d.%d.%d:8000", i/62500, i/250%250, i%250+1))
	}
	return out
}

// gathered waits until round's arrivals were gathered n times (the early
// adds goroutine logs each batch at debug) and returns the last batch's
// line.
func gathered(t *testing.T, h *harness, round uint64, n int) map[string]any {
	t.Helper()
	var last map[string]any
	waitFor(t, fmt.Sprintf("%d batches of arrivals in round %d", n, round), func() bool {
		k := 0
		for _, l := range h.logs.lines(t, "debug", "arrivals gathered") {
			if l["round"] == float64(round) {
				k, last = k+1, l
			}
		}
		return k >= n
	})
	return last
}

// firstRound plays round 1 (early adds are off until a round completed):
// servers answer 1 s into it and it ends; then it waits for the sinks'
// applies and starts round 2, at t0+10s.
func firstRound(t *testing.T, h *harness, d *notifyingDiscoverer, sinks []*fakeSink, servers ...string) {
	t.Helper()
	d.nextRound(t)
	d.play(t, notifyStep{advance: time.Second, arrive: servers, end: true})
	for _, s := range sinks {
		if c := s.nextApply(t); c.round != 1 {
			t.Fatalf("sink %s applied round %d, want 1", s.name, c.round)
		}
	}
	h.idle()
	h.clock.Advance(9 * time.Second)
	d.nextRound(t)
}

// TestEarlyAddReachesSinkBeforeRoundEnds: a reply 1 s into a 5 s round is
// applied AddWindow later, while the round is still running; the round's
// end applies the same set again (heartbeat sinks refresh) and reports no
// add of its own.
func TestEarlyAddReachesSinkBeforeRoundEnds(t *testing.T) {
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	cfg := h.config(s)
	cfg.RoundTimeout = 5 * time.Second
	h.start(cfg)
	firstRound(t, h, d, []*fakeSink{s})

	round2 := t0.Add(10 * time.Second)
	d.play(t, notifyStep{advance: time.Second, arrive: []string{"10.0.0.1:8000"}})
	h.waitTimers(1) // the add window
	h.clock.Advance(runner.DefaultAddWindow)
	c := s.nextApply(t)
	if c.round != 2 || !slices.Equal(c.addrs, []string{"10.0.0.1:8000"}) {
		t.Fatalf("early apply = %+v, want round 2 (in progress) with 10.0.0.1:8000", c)
	}
	if now, end := h.clock.Now(), round2.Add(5*time.Second); !now.Before(end) || !now.Equal(round2.Add(time.Second+runner.DefaultAddWindow)) {
		t.Fatalf("applied at %v, want at the reply + the add window (%v), before the round's end %v", now, round2.Add(time.Second+runner.DefaultAddWindow), end)
	}
	d.play(t, notifyStep{advance: 4*time.Second - runner.DefaultAddWindow, end: true})
	if c := s.nextApply(t); c.round != 2 || !slices.Equal(c.addrs, []string{"10.0.0.1:8000"}) {
		t.Fatalf("round end apply = %+v, want round 2 with 10.0.0.1:8000", c)
	}
	h.idle()
	for _, m := range []struct {
		name  string
		label []string
		want  float64
	}{
		{"endpoint_changes_total", []string{"add"}, 1},
		{"early_adds_total", nil, 1},
		{"early_snapshots_total", nil, 1},
		{"endpoints", nil, 1},
	} {
		if got := metricValue(t, h, m.name, m.label...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.label, got, m.want)
		}
	}
	changed := h.logs.lines(t, "info", "endpoints changed")
	if len(changed) != 1 || changed[0]["early"] != true || changed[0]["added"] != float64(1) || changed[0]["round"] != float64(2) {
		t.Errorf("endpoints changed lines %v, want one early add of round 2 and none at the round's end", changed)
	}
	done := h.logs.lines(t, "debug", "round complete")
	if len(done) != 2 || done[1]["added"] != float64(0) || done[1]["added_early"] != float64(1) {
		t.Errorf("round complete lines %v, want round 2 with added 0, added_early 1", done)
	}
	h.stop()
}

// TestEarlyAddsBurst: bursts of 10,000 replies are one apply each, and
// the stdout sink prints every server's added line exactly once.
func TestEarlyAddsBurst(t *testing.T) {
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	var out syncBuffer
	cfg := h.config(s, sink.NewStdout(&out))
	h.start(cfg)
	firstRound(t, h, d, []*fakeSink{s})

	first, second := addrList(0, 10000), addrList(10000, 20000)
	d.play(t, notifyStep{advance: time.Second, arrive: first})
	h.waitTimers(1)
	h.clock.Advance(runner.DefaultAddWindow)
	if c := s.nextApply(t); c.round != 2 || len(c.addrs) != 10000 {
		t.Fatalf("first early apply: round %d, %d endpoints; want round 2, 10000", c.round, len(c.addrs))
	}
	// Duplicates of the first burst and a second burst.
	d.play(t, notifyStep{advance: time.Second, arrive: append(slices.Clone(first[:5000]), second...)})
	h.waitTimers(1)
	h.clock.Advance(runner.DefaultAddWindow)
	if c := s.nextApply(t); c.round != 2 || len(c.addrs) != 20000 {
		t.Fatalf("second early apply: round %d, %d endpoints; want round 2, 20000", c.round, len(c.addrs))
	}
	d.play(t, notifyStep{advance: time.Second, end: true})
	if c := s.nextApply(t); c.round != 2 || len(c.addrs) != 20000 {
		t.Fatalf("round end apply: round %d, %d endpoints; want round 2, 20000", c.round, len(c.addrs))
	}
	h.idle()
	if got := s.rounds(); !slices.Equal(got, []uint64{1, 2, 2, 2}) {
		t.Errorf("applies of rounds %v, want round 1's and 3 of round 2 (two bursts of 10,000 and its end)", got)
	}
	if n := metricValue(t, h, "early_snapshots_total"); n != 2 {
		t.Errorf("early_snapshots_total = %v, want 2", n)
	}
	h.stop() // the stdout worker has applied the newest snapshot
	out.mu.Lock()
	text := out.buf.String()
	out.mu.Unlock()
	if n, lines := strings.Count(text, `"event":"added"`), strings.Count(text, "\n"); n != 20000 || lines != 20000 {
		t.Errorf("stdout printed %d added lines of %d lines, want each of the 20000 servers once", n, lines)
	}
}

// TestEarlyKnownServerNoApply: the reply of a server the bridge holds
// adds nothing: the round's only apply is its end's.
func TestEarlyKnownServerNoApply(t *testing.T) {
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	h.start(h.config(s))
	firstRound(t, h, d, []*fakeSink{s}, "10.0.0.1:8000")
	d.play(t, notifyStep{advance: time.Second, arrive: []string{"10.0.0.1:8000"}})
	h.waitTimers(1)
	h.clock.Advance(runner.DefaultAddWindow)
	if l := gathered(t, h, 2, 1); l["arrived"] != float64(1) || l["added"] != float64(0) {
		t.Fatalf("arrivals of round 2: %v, want 1 arrived, none added", l)
	}
	d.play(t, notifyStep{advance: time.Second, end: true})
	if c := s.nextApply(t); c.round != 2 || !slices.Equal(c.addrs, []string{"10.0.0.1:8000"}) {
		t.Fatalf("apply %+v, want round 2's end with 10.0.0.1:8000", c)
	}
	h.idle()
	if got := s.rounds(); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("applies of rounds %v, want one per round (the rounds' ends)", got)
	}
	if n := metricValue(t, h, "early_snapshots_total"); n != 0 {
		t.Errorf("early_snapshots_total = %v, want 0", n)
	}
	h.stop()
}

// TestEarlyAddsRemovalsWait: with missed_rounds 2, a server that stops
// answering stays in the early snapshots of the round that misses it and
// goes at the end of the second round that misses it.
func TestEarlyAddsRemovalsWait(t *testing.T) {
	const a, b, c = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	h.start(h.config(s)) // missed_rounds 2

	type want struct {
		round uint64
		addrs []string
	}
	var got []want
	apply := func() {
		t.Helper()
		c := s.nextApply(t)
		got = append(got, want{c.round, c.addrs})
	}
	early := func(st notifyStep) {
		t.Helper()
		d.play(t, st)
		h.waitTimers(1)
		h.clock.Advance(runner.DefaultAddWindow)
		apply()
	}
	// Round 1: a and b answer (the first round adds at its end).
	firstRound(t, h, d, []*fakeSink{s}, a, b)
	got = append(got, want{1, []string{a, b}})
	// Round 2: a answers, b does not, c is new.
	d.play(t, notifyStep{advance: time.Second, arrive: []string{a}})
	h.waitTimers(1)
	h.clock.Advance(runner.DefaultAddWindow)
	if l := gathered(t, h, 2, 1); l["added"] != float64(0) {
		t.Fatalf("a's reply in round 2 added %v, want 0", l["added"])
	}
	early(notifyStep{advance: time.Second - runner.DefaultAddWindow, arrive: []string{c}})
	d.play(t, notifyStep{advance: time.Second, end: true})
	apply()
	// Round 3: b's second miss.
	h.idle()
	h.clock.Advance(10*time.Second - 3*time.Second - runner.DefaultAddWindow)
	d.nextRound(t)
	d.play(t, notifyStep{advance: time.Second, arrive: []string{a, c}, end: true})
	apply()
	h.idle()

	wantSeq := []want{{1, []string{a, b}}, {2, []string{a, b, c}}, {2, []string{a, b, c}}, {3, []string{a, c}}}
	if !slices.EqualFunc(got, wantSeq, func(x, y want) bool { return x.round == y.round && slices.Equal(x.addrs, y.addrs) }) {
		t.Errorf("applies %v, want %v", got, wantSeq)
	}
	if n := metricValue(t, h, "endpoint_changes_total", "remove"); n != 1 {
		t.Errorf("removes %v, want 1", n)
	}
	h.stop()
}

// TestEarlyAddsModes: --once and --dry-run keep one output per round (at
// its end), and a negative AddWindow turns adds as they arrive off.
func TestEarlyAddsModes(t *testing.T) {
	const a = "10.0.0.1:8000"
	tests := []struct {
		name   string
		mutate func(*runner.Config, *syncBuffer)
	}{
		{"once", func(c *runner.Config, _ *syncBuffer) { c.Once = true }},
		{"dry run", func(c *runner.Config, out *syncBuffer) { c.DryRun, c.DryRunOut = true, out }},
		{"once dry run", func(c *runner.Config, out *syncBuffer) { c.Once, c.DryRun, c.DryRunOut = true, true, out }},
		{"add window off", func(c *runner.Config, _ *syncBuffer) { c.AddWindow = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, d := newNotifyHarness(t)
			s := newSink("fake")
			var out syncBuffer
			cfg := h.config(s)
			tt.mutate(&cfg, &out)
			h.start(cfg)
			if !cfg.Once {
				var sinks []*fakeSink
				if !cfg.DryRun {
					sinks = []*fakeSink{s}
				}
				firstRound(t, h, d, sinks)
			} else {
				d.nextRound(t)
			}
			round := uint64(1)
			if !cfg.Once {
				round = 2
			}
			d.play(t, notifyStep{advance: time.Second, arrive: []string{a}})
			if n := h.clock.Pending(); n != 0 {
				t.Fatalf("%d timers pending after an arrival, want none (no add window)", n)
			}
			if got := s.rounds(); len(got) != int(round-1) && !cfg.DryRun || cfg.DryRun && len(got) != 0 {
				t.Fatalf("applies %v before the round's end, want none of round %d", got, round)
			}
			out.mu.Lock()
			early := out.buf.String()
			out.mu.Unlock()
			if early != "" {
				t.Fatalf("dry-run output before the round's end: %q", early)
			}
			d.play(t, notifyStep{advance: time.Second, end: true})
			if cfg.Once {
				select {
				case <-h.done:
				case <-time.After(wait):
					t.Fatal("Run with Once did not return after its round")
				}
				if h.err != nil {
					t.Fatalf("Run: %v", h.err)
				}
			} else {
				h.idle()
				h.stop()
			}
			wantApplies := []uint64{1}
			if !cfg.Once {
				wantApplies = []uint64{1, 2}
			}
			if cfg.DryRun {
				wantApplies = nil
			}
			if got := s.rounds(); !slices.Equal(got, wantApplies) {
				t.Errorf("applies of rounds %v, want %v", got, wantApplies)
			}
			if cfg.DryRun {
				out.mu.Lock()
				got := out.buf.String()
				out.mu.Unlock()
				want := fmt.Sprintf(`{"op":"add","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":%d,"sink":"fake"}`+"\n", round)
				if got != want {
					t.Errorf("dry-run output %q, want %q", got, want)
				}
			}
			if n := metricValue(t, h, "early_adds_total"); n != 0 {
				t.Errorf("early_adds_total = %v, want 0", n)
			}
			if n := metricValue(t, h, "endpoint_changes_total", "add"); n != 1 {
				t.Errorf("endpoint_changes_total{add} = %v, want 1 (at the round's end)", n)
			}
		})
	}
}

// TestEarlyAddsPausedWindow: when the process was paused inside the add
// window (the window took longer than a stale round), the batch is not
// added early; the round's end judges it.
func TestEarlyAddsPausedWindow(t *testing.T) {
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	cfg := h.config(s)
	cfg.RoundTimeout = time.Second
	h.start(cfg)
	firstRound(t, h, d, []*fakeSink{s})

	d.play(t, notifyStep{advance: 100 * time.Millisecond, arrive: []string{"10.0.0.1:8000"}})
	h.waitTimers(1)
	h.clock.Advance(3 * time.Second) // > 2 × RoundTimeout and 1 s over it
	waitFor(t, "the batch to be dropped", func() bool { return len(h.logs.lines(t, "debug", "early adds dropped")) == 1 })
	d.play(t, notifyStep{end: true})
	h.idle()
	if got := s.rounds(); !slices.Equal(got, []uint64{1}) {
		t.Errorf("applies of rounds %v, want only round 1's (the stale round 2 adds nothing)", got)
	}
	if n := metricValue(t, h, "early_adds_total"); n != 0 {
		t.Errorf("early_adds_total = %v, want 0", n)
	}
	h.stop()
}

// TestEarlyAddsWaitForFirstCompleteRound: until a round completed, the
// state is no full view (a registry may hold every server of a previous
// run), so the rounds before, a failed one included, add at their end.
func TestEarlyAddsWaitForFirstCompleteRound(t *testing.T) {
	const a, b = "10.0.0.1:8000", "10.0.0.2:8000"
	h, d := newNotifyHarness(t)
	s := newSink("fake")
	h.start(h.config(s))

	// Round 1 fails (after a reply): nothing is added.
	d.nextRound(t)
	d.play(t, notifyStep{advance: time.Second, arrive: []string{a}})
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers pending in round 1, want no add window before a complete round", n)
	}
	d.play(t, notifyStep{advance: time.Second, end: true, err: discover.ErrNoProbeSent})
	h.idle()
	h.clock.Advance(8 * time.Second)
	// Round 2 completes: its servers are added at its end.
	d.nextRound(t)
	d.play(t, notifyStep{advance: time.Second, arrive: []string{a}})
	if n := h.clock.Pending(); n != 0 {
		t.Fatalf("%d timers pending in round 2, want no add window before a complete round", n)
	}
	d.play(t, notifyStep{advance: time.Second, end: true})
	if c := s.nextApply(t); c.round != 2 || !slices.Equal(c.addrs, []string{a}) {
		t.Fatalf("apply %+v, want round 2's end with %s", c, a)
	}
	h.idle()
	h.clock.Advance(8 * time.Second)
	// Round 3: b is added as it arrives.
	d.nextRound(t)
	d.play(t, notifyStep{advance: time.Second, arrive: []string{a, b}})
	h.waitTimers(1)
	h.clock.Advance(runner.DefaultAddWindow)
	if c := s.nextApply(t); c.round != 3 || !slices.Equal(c.addrs, []string{a, b}) {
		t.Fatalf("apply %+v, want round 3 in progress with %s and %s", c, a, b)
	}
	d.play(t, notifyStep{advance: time.Second, end: true})
	s.nextApply(t)
	h.idle()
	if got := s.rounds(); !slices.Equal(got, []uint64{2, 3, 3}) {
		t.Errorf("applies of rounds %v, want [2 3 3]", got)
	}
	h.stop()
}
